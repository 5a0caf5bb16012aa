#!/usr/bin/env bash
# Builds everything a lent GPU machine runs (it has no Rust toolchain) with the CUDA kernels
# embedded, and copies it, stripped, into .carry/gpu/ (gitignored):
#   batchgp          the CLI (info, mll, fit, predict, demo)
#   cuda_agreement   tests/cuda_agreement.rs (CPU == CUDA; its GPU tests are #[ignore]d here)
#   svgp_cuda        tests/svgp_cuda.rs (the SVGP, CPU == CUDA; likewise #[ignore]d)
#   gpu_bench        benches/gpu.rs (kernel times with device events, wall times)
# Then the device command is scripts/gpu/device.sh, with `.carry` carried:
#   device run: command "bash scripts/gpu/device.sh all", carry [".carry"], timeout_s 600
# and bundle.sh ends with that script's dry run (binaries there, Python scripts compile, every
# step's command printed), so a bundle that would fail on the GPU fails here first.
# BATCHGP_NVCC_VENV names an existing nvcc virtualenv to use (.ci/install-nvcc.sh).
# (scripts/gpu/device.sh --help lists the steps; each test runs in its own process with
# --include-ignored --exact --nocapture, so one sticky kernel fault cannot hide the rest.)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
# shellcheck source=/dev/null
source .ci/install-nvcc.sh
cargo build --release --bin batchgp
tests=$(cargo test --release --no-run --test cuda_agreement --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="cuda_agreement": print(m["executable"])')
svgp=$(cargo test --release --no-run --test svgp_cuda --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="svgp_cuda": print(m["executable"])')
bench=$(cargo bench --no-run --bench gpu --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="gpu": print(m["executable"])')
mkdir -p .carry/gpu
cp target/release/batchgp .carry/gpu/batchgp
cp "$tests" .carry/gpu/cuda_agreement
cp "$svgp" .carry/gpu/svgp_cuda
cp "$bench" .carry/gpu/gpu_bench
strip .carry/gpu/batchgp .carry/gpu/cuda_agreement .carry/gpu/svgp_cuda .carry/gpu/gpu_bench
.carry/gpu/batchgp info | sed -n 3p
du -sh .carry/gpu/*
OUT="${TMPDIR:-/tmp}/batchgp-device-dry-run" bash scripts/gpu/device.sh --dry-run all
echo 'device: command "bash scripts/gpu/device.sh all", carry [".carry"], timeout_s 600'
