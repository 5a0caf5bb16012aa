# shellcheck shell=bash
# Installs the CUDA 13.0 compiler from PyPI into a virtualenv (.venv-nvcc in the repository root)
# and exports NVCC so that build.rs compiles kernels/*.cu into the embedded fatbin.
#
# Meant to be sourced (`source .ci/install-nvcc.sh`) by .ci/run; also works when executed, but
# then the exports do not reach the caller. Idempotent: when the pinned wheels are already in the
# virtualenv, it only checks nvcc and exports its path (well under a second).
#
# The four wheels are pinned together (docs/design.md section 8): an unpinned nvvm is newer than the
# 13.0 ptxas and emits PTX it rejects.

_batchgp_install_nvcc() {
    local root venv py site nvcc_bin cu
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="${BATCHGP_NVCC_VENV:-$root/.venv-nvcc}"
    local pins=(
        "nvidia-cuda-nvcc==13.0.88"
        "nvidia-nvvm==13.0.88"
        "nvidia-cuda-crt==13.0.88"
        "nvidia-cuda-runtime==13.0.96"
    )
    py="${PYTHON:-python3}"
    if [ ! -x "$venv/bin/python" ]; then
        "$py" -m venv "$venv" || { echo "install-nvcc: cannot create $venv" >&2; return 1; }
    fi
    local stamp="$venv/.batchgp-pins"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "${pins[*]}" ]; then
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" \
            || { echo "install-nvcc: pip install failed" >&2; return 1; }
        echo "${pins[*]}" > "$stamp"
    fi
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    # The wheels share one CUDA tree: site-packages/nvidia/cu13/{bin,include,lib,nvvm}.
    nvcc_bin=""
    for cu in "$site/nvidia/cu13" "$site/nvidia/cuda_nvcc" "$site/nvidia"; do
        if [ -x "$cu/bin/nvcc" ]; then
            nvcc_bin="$cu/bin/nvcc"
            break
        fi
    done
    if [ -z "$nvcc_bin" ]; then
        nvcc_bin="$(find "$site/nvidia" -path '*/bin/nvcc' -type f 2>/dev/null | head -n 1)"
    fi
    if [ -z "$nvcc_bin" ] || [ ! -x "$nvcc_bin" ]; then
        echo "install-nvcc: no bin/nvcc under $site/nvidia" >&2
        return 1
    fi
    cu="$(cd "$(dirname "$nvcc_bin")/.." && pwd)"
    export NVCC="$nvcc_bin"
    export CUDA_HOME="$cu"
    export PATH="$cu/bin:$PATH"
    if ! "$NVCC" --version >/dev/null 2>&1; then
        echo "install-nvcc: $NVCC does not run" >&2
        return 1
    fi
    echo "install-nvcc: NVCC=$NVCC ($("$NVCC" --version | grep -o 'release [0-9.]*'))"
}

_batchgp_install_nvcc
