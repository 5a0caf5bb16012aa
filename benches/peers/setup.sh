#!/usr/bin/env bash
# Creates benches/peers/.venv with what compare.py needs: numpy, scipy, scikit-learn,
# matplotlib, threadpoolctl, torch (run on the CPU here) and gpytorch 1.15 with linear_operator.
#
# Why torch is installed the way it is: PyPI carries no CPU-only Linux torch wheel (the +cpu
# builds live on another index that is not reachable here), and the default `pip install torch`
# pulls about 3 GB of nvidia-* wheels plus triton. `torch --no-deps` alone does not import:
# libtorch_cuda.so, which torch loads at import even on a machine without a GPU, links against
# cudart, cublas(Lt), cufft, cufile, curand, cusparse(Lt), cudnn, nccl, nvshmem and cupti. So
# torch goes in with --no-deps, followed by exactly those runtime libraries (also --no-deps)
# and torch's pure-Python dependencies; triton, cuda-bindings, cusolver, nvrtc, nvtx and the
# cuda-toolkit meta-package are left out. That is about 3.9 GB on disk (torch 1.2 GB, the CUDA
# libraries 2.3 GB) instead of about 5 GB, and torch runs on the CPU only (`pip check`
# complains about the left-out packages; that is expected).
#
# The GPU machines have their own torch, gpytorch, scikit-learn and matplotlib: there, run
# compare.py with the machine's python3 and skip this script (see README.md).
#
# Usage: bash benches/peers/setup.sh [PYTHON]     (default python3; needs Python >= 3.10)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${1:-python3}"
venv="$here/.venv"
TORCH=2.11.0

"$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
"${pip[@]}" --upgrade pip

# torch and the CUDA libraries it links against (versions as torch 2.11.0's metadata pins them)
"${pip[@]}" --no-deps "torch==$TORCH" \
    "nvidia-cuda-runtime==13.0.96.*" "nvidia-cublas==13.1.0.3.*" "nvidia-cufft==12.0.0.61.*" \
    "nvidia-cufile==1.15.1.6.*" "nvidia-curand==10.4.0.35.*" "nvidia-cusparse==12.6.3.3.*" \
    "nvidia-nvjitlink==13.0.88.*" "nvidia-cuda-cupti==13.0.85.*" "nvidia-cudnn-cu13==9.19.0.56" \
    "nvidia-cusparselt-cu13==0.8.0" "nvidia-nccl-cu13==2.28.9" "nvidia-nvshmem-cu13==3.4.5"
"${pip[@]}" filelock "typing-extensions>=4.10" "setuptools<82" "sympy>=1.13.3" networkx jinja2 fsspec

# gpytorch without its dependency resolution (which would pull torch's CUDA stack back in)
"${pip[@]}" --no-deps "gpytorch==1.15.*" "linear_operator>=0.6"
"${pip[@]}" numpy scipy scikit-learn matplotlib threadpoolctl jaxtyping mpmath

"$venv/bin/python" - <<'EOF'
import torch, gpytorch, linear_operator, sklearn, numpy, scipy, matplotlib
a = torch.randn(8, 8, dtype=torch.float64)
torch.linalg.cholesky(a @ a.T + 8 * torch.eye(8, dtype=torch.float64))
print(f"ok: torch {torch.__version__} (cuda usable: {torch.cuda.is_available()}), "
      f"gpytorch {gpytorch.__version__}, linear_operator {linear_operator.__version__}, "
      f"scikit-learn {sklearn.__version__}, numpy {numpy.__version__}, scipy {scipy.__version__}, "
      f"matplotlib {matplotlib.__version__}")
EOF
