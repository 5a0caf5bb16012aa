#!/usr/bin/env bash
# Every test: the Rust tests of the whole workspace (the core crate and the Python binding
# crate), then the Python package built into a virtualenv and its tests (python/tests, which
# compare the package with the CLI built by the first step and with scikit-learn), then the
# command line's fit parity with scikit-learn for every kernel.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo test --release --workspace

# The Python tests compare against this CLI; with the variable set, a missing CLI fails them
# instead of skipping them.
export BATCHGP_CLI="$PWD/target/release/batchgp"
[ -x "$BATCHGP_CLI" ] || cargo build --release --bin batchgp

# CI's disk is small (a fresh machine once ran out at this step): with BATCHGP_CI_PRUNE=1 (set by
# .ci/run) the Rust test executables and examples, each carrying the 34 MB kernel fatbin, go
# before the Python packages arrive. The CLI above and the libraries maturin links stay.
if [ "${BATCHGP_CI_PRUNE:-0}" = 1 ]; then
    find target/release/deps -maxdepth 1 -type f -perm -u+x ! -name '*.*' -delete
    rm -rf target/release/examples target/debug
    df -h . | tail -1
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# Every package pinned as tested (.ci/requirements.txt: numpy, scipy, scikit-learn, pytest, dask;
# statsmodels for the real series and autograd for the independent SVGP reference of
# tests/python/quality_*.py; torch, gpytorch and botorch for python/tests/test_torch.py). PyPI's
# torch for Linux brings its CUDA libraries (about 3 GB of wheels, 6 GB installed; the CPU-only
# wheels live on an index CI does not reach), so pip keeps no cache and each wheel over 50 MB is
# installed by its own call: the disk holds at most one downloaded wheel beside the tree.
export PIP_NO_CACHE_DIR=1
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
big='^(torch|nvidia-|cuda-|scipy|pandas|sympy|statsmodels|scikit-learn|numpy)'
mapfile -t pins < <(grep -v '^#' .ci/requirements.txt | grep -v '^$')
small=()
for pin in "${pins[@]}"; do
    if [[ "$pin" =~ $big ]]; then
        "${pip[@]}" --no-deps "$pin"
    else
        small+=("$pin")
    fi
done
"${pip[@]}" --no-deps "${small[@]}"
# torch requires triton (its compiler for torch.compile, 1 GB), which no test uses and which is
# left out; every other requirement must hold.
problems="$(.venv/bin/python -m pip check --disable-pip-version-check 2>&1 \
    | grep -v -e 'requires triton' -e '^No broken' || true)"
[ -z "$problems" ] || { echo "$problems" >&2; exit 1; }
# maturin (fetched by pip as the build backend) compiles the extension into the workspace's target/.
"${pip[@]}" ./python
.venv/bin/python -m pytest python/tests -q

# Parity with scikit-learn for every kernel: MLL and gradient, and fits from the same start.
.venv/bin/python tests/python/sklearn_parity.py "$BATCHGP_CLI"

# Fit quality (issue 23): the SVGP on the pyrox notebook's problem against an independent
# full-batch L-BFGS (one draw of 4 members), and exact fits of shipped real series against
# scikit-learn's optimum, scored by one reference likelihood (a subset: scikit-learn's five
# restarts per series are the slow side; the full set runs without QUALITY_SERIES).
.venv/bin/python tests/python/quality_svgp.py "$BATCHGP_CLI" 1
QUALITY_SERIES=co2,macro.realgdp,elnino.monthly,sunspots \
    .venv/bin/python tests/python/quality_real_data.py "$BATCHGP_CLI"
