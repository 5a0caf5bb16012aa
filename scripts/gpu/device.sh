#!/usr/bin/env bash
# The one command of a lent GPU session (issue 19): runs over the binaries scripts/gpu/bundle.sh
# put in .carry/gpu/ and answers every open question of the GPU path in one call of the device
# tool, under 9 minutes, writing everything to $OUT (at most 8 files come back).
#   bash scripts/gpu/device.sh [--dry-run] STEP...    STEP: env tests vendor bench peers torch svgp
#                                                     sanitize (all: these, in this order), profile, fit
#   device run: command "bash scripts/gpu/device.sh all", carry [".carry"], timeout_s 600
# Steps (seconds: each step's own limit; the whole run stops starting steps at DEADLINE, 530 s):
#   env      nvidia-smi (card, driver, clocks), `batchgp info` (fails without the GPU), where
#            cuBLAS/cuSOLVER load from (LD_LIBRARY_PATH is extended to them)                 ~10
#   tests    every test of cuda_agreement and svgp_cuda in its own process (--include-ignored
#            --exact; the host emulation tests are skipped: they ran where the binaries were built;
#            a sticky kernel fault cannot hide the rest)                                        ~150
#   vendor   the MLL agreement tests again with BATCHGP_CUDA_VENDOR=on (every N past the fused
#            block kernel through cuSOLVER/cuBLAS) and =off (the fused global kernel only)      ~90
#   bench    benches/gpu.rs: kernel and wall times, old (fused global) and new (vendor) variants
#            side by side at N = 264, 512, 1000, 2048, and the repeated-call host path         ~100
#   torch    torch.linalg.cholesky (cuSOLVER) at the Cholesky shapes                           ~40
#   peers    GPyTorch 1.15 batch mode against `batchgp mll --repeat` at the goal shapes         ~100
#   svgp     GPyTorch's batch SVGP against `batchgp elbo` (agreement and time), (1024,1000,32,3) ~60
#   sanitize compute-sanitizer memcheck on the new kernels (gp_mll_prep, dense_*)              ~30
# Logs: $OUT/log.txt (everything, a summary table last), bench.json, torch.json, the peers and
# svgp tables (.md, .json). --dry-run prints the commands and checks the binaries and scripts
# without running anything (what bundle.sh runs here after building).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bin=.carry/gpu
dry=0
[ "${1:-}" = --dry-run ] && { dry=1; shift; }
out="${OUT:-$root/gpu-out}"
mkdir -p "$out"
log="$out/log.txt"
export PYTHONUNBUFFERED=1
export BATCHGP_REQUIRE_CUDA=1 # `batchgp info` fails where the GPU cannot be had
start=$(date +%s)
deadline=$((start + ${DEADLINE:-530}))
say() { echo "== $* ($(($(date +%s) - start)) s)" | tee -a "$log"; }
steps=("$@")
if [ "${#steps[@]}" -eq 0 ] || [ "${steps[0]}" = "--help" ]; then
    sed -n 2,23p "$0"
    exit 0
fi
[ "${steps[0]}" = all ] && steps=(env tests vendor bench peers torch svgp sanitize)
fails=0
summary=()

# Runs "$@" under `timeout $1`, or prints it with --dry-run.
run() {
    local limit=$1
    shift
    if [ $dry -eq 1 ]; then
        echo "would run (limit ${limit} s): $*"
        return 0
    fi
    timeout "$limit" "$@"
}

# Seconds left before the deadline, at most $1, at least 1.
left() {
    local l=$((deadline - $(date +%s)))
    [ $l -gt "$1" ] && l=$1
    [ $l -lt 1 ] && l=1
    echo $l
}

# Points the dynamic linker at cuBLAS and cuSOLVER (a CUDA toolkit, or the wheels beside torch).
find_vendor_libs() {
    local lib dir
    for lib in libcusolver.so libcublas.so; do
        dir=$(ls -d /usr/local/cuda*/lib64/$lib* /usr/local/cuda*/targets/*/lib/$lib* \
            /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib/$lib* \
            /usr/lib/x86_64-linux-gnu/$lib* 2>/dev/null | head -1)
        [ -n "$dir" ] && export LD_LIBRARY_PATH="$(dirname "$dir")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    done
}

# Runs every test of binary $1 whose name matches $2 (a grep -E pattern), each in its own process,
# with the environment "${@:3}"; counts failures.
run_tests() {
    local tb=$1 pat=$2 t s rc
    shift 2
    [ -x "$bin/$tb" ] || { echo "missing $bin/$tb" | tee -a "$log"; fails=$((fails + 1)); return; }
    for t in $("$bin/$tb" --list --include-ignored 2>/dev/null | sed -n 's/: test$//p' | grep -E "$pat"); do
        case $t in *host_emulation*) continue ;; esac
        if [ $dry -eq 1 ]; then
            echo "would run: $* $bin/$tb --include-ignored --exact $t"
            continue
        fi
        s=$(date +%s%N)
        env "$@" timeout "${TEST_LIMIT:-120}" "$bin/$tb" --include-ignored --exact "$t" --nocapture --test-threads=1 >"$out/t.log" 2>&1
        rc=$?
        if [ $rc -eq 0 ]; then
            printf 'PASS %-48s %6d ms %s\n' "$t" $((($(date +%s%N) - s) / 1000000)) "$*" | tee -a "$log"
        else
            fails=$((fails + 1))
            summary+=("FAIL $tb $t $*")
            printf 'FAIL %-48s rc=%d %s\n' "$t" "$rc" "$*" | tee -a "$log"
            grep -v '^$' "$out/t.log" | tail -n 25 | tee -a "$log"
        fi
        [ "$(date +%s)" -ge "$deadline" ] && { echo "deadline: stopping the tests" | tee -a "$log"; break; }
    done
    rm -f "$out/t.log"
}

step_env() {
    say "env"
    echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" | tee -a "$log"
    run 20 nvidia-smi --query-gpu=name,driver_version,pstate,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu,memory.used --format=csv 2>&1 | tee -a "$log"
    run 30 "$bin/batchgp" info 2>&1 | tee -a "$log" || fails=$((fails + 1))
}

step_tests() {
    say "tests (each in its own process)"
    run_tests cuda_agreement . BATCHGP_CUDA_VENDOR=auto
    run_tests svgp_cuda . BATCHGP_CUDA_VENDOR=auto
}

step_vendor() {
    say "MLL agreement through cuSOLVER/cuBLAS for every N past the block kernel, and without them"
    run_tests cuda_agreement 'mll_and_gradient_agree_f64|mll_of_listed|chunking|cached|resident' BATCHGP_CUDA_VENDOR=on
    run_tests cuda_agreement 'mll_and_gradient_agree_f64' BATCHGP_CUDA_VENDOR=off
}

step_bench() {
    say "bench (kernel = device events around the launches; wall = the whole backend call)"
    run "$(left 150)" "$bin/gpu_bench" --bench ${BENCH_ARGS:-} --json "$out/bench.json" 2>&1 | tee -a "$log" || fails=$((fails + 1))
}

step_torch() {
    say "torch.linalg.cholesky"
    run "$(left 60)" python3 benches/peers/torch_cholesky.py --json "$out/torch.json" 2>&1 | tee -a "$log" || fails=$((fails + 1))
}

step_peers() {
    say "peers harness (GPU only, the goal shapes)"
    run "$(left 130)" python3 benches/peers/compare.py --gpu-only --no-sklearn --skip-fit --batchgp "$bin/batchgp" \
        --shapes "${PEERS_SHAPES:-100000x32x3,10000x64x3,1000x256x8,10x1000x3,4x264x3}" --budget 8 --out-dir "$out" \
        --tag "gpu-$(date +%Y-%m-%d)" 2>&1 | tail -n 30 | tee -a "$log"
}

step_svgp() {
    say "SVGP: batchgp elbo against GPyTorch's batch SVGP"
    run "$(left 100)" python3 benches/peers/svgp.py --gpu-only --skip-fit --batchgp "$bin/batchgp" --shapes "${SVGP_SHAPES:-1024x1000x32x3}" \
        --budget 8 --out-dir "$out" 2>&1 | tail -n 20 | tee -a "$log" || fails=$((fails + 1))
}

step_sanitize() {
    say "compute-sanitizer on the new kernels"
    local cs
    cs=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -1)
    if [ -z "$cs" ]; then
        echo "no compute-sanitizer" | tee -a "$log"
        return
    fi
    local d=/tmp/san
    mkdir -p $d
    run 60 python3 - <<'PY'
import numpy as np
rng = np.random.default_rng(0)
for n in (20, 400):
    b, d = 5, 2
    x = rng.uniform(0, 1, (b, n, d)); y = np.sin(3 * x.sum(-1)) + 0.1 * rng.standard_normal((b, n))
    mask = np.ones((b, n), bool); mask[1, n // 2:] = False; mask[3] = False
    np.savez(f"/tmp/san/D{n}.npz", x=x, y=y, mask=mask.astype(np.uint8))
    np.savez(f"/tmp/san/P{n}.npz", log_lengthscale=np.log(0.4) * np.ones((b, d)), log_outputscale=np.zeros(b),
             log_noise=np.log(0.05) * np.ones(b), mean=np.zeros(b))
PY
    local spec tool k n
    # gp_mll_prep (every MLL call: N = 20) and dense_shift/dense_pairs (the vendor path: N = 400).
    for spec in memcheck:rbf:20 memcheck:rq:400 racecheck:matern52:400; do
        IFS=: read -r tool k n <<<"$spec"
        BATCHGP_CUDA_VENDOR=on run 60 "$cs" --tool "$tool" --error-exitcode 9 "$bin/batchgp" mll --backend cuda --kernel "$k" \
            --data $d/D$n.npz --params $d/P$n.npz --out $d/o.npz >$d/s.log 2>&1
        echo "$tool mll $k n=$n rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $d/s.log 2>/dev/null | tr '\n' ' ')" | tee -a "$log"
    done
}

step_profile() {
    say "ncu (hardware counters, clocks as found) of one gp_mll launch per variant"
    local ncu
    ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
    if [ -z "$ncu" ]; then
        echo "no ncu" | tee -a "$log"
        return
    fi
    run 60 python3 - <<'PY'
import numpy as np
rng = np.random.default_rng(1)
for b, n, d in ((100000, 32, 3), (10000, 64, 3), (1000, 256, 8)):
    x = rng.uniform(0, 1, (b, n, d)); y = np.sin(6 * x[..., 0]) + 0.1 * rng.standard_normal((b, n))
    np.savez(f"/tmp/prof{n}.npz", x=x, y=y)
    np.savez(f"/tmp/profP{n}.npz", log_lengthscale=np.log(0.5) * np.ones((b, d)), log_outputscale=np.zeros(b),
             log_noise=np.log(0.05) * np.ones(b), mean=np.zeros(b))
PY
    local n
    for n in 32 64 256; do
        run 120 "$ncu" --clock-control none --kernel-name regex:gp_mll --launch-count 1 \
            --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
            --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
            "$bin/batchgp" mll --backend cuda --data /tmp/prof$n.npz --params /tmp/profP$n.npz --out /tmp/o.npz 2>&1 |
            grep -vE '^\s*$|^==PROF==|----' | sed -n '/gp_mll/,$p' | tee -a "$log"
    done
}

step_fit() {
    say "fits on the GPU against the CPU"
    local d=/tmp/fitcheck
    mkdir -p $d
    run 60 python3 - <<'PY'
import numpy as np
rng = np.random.default_rng(3)
b, n, d = 300, 40, 2
x = rng.uniform(0, 4, (b, n, d)); f = np.sin(2 * x[..., 0]) * np.cos(x[..., 1])
y = f + 0.1 * rng.standard_normal((b, n)); mask = rng.uniform(size=(b, n)) > 0.2
np.savez("/tmp/fitcheck/D.npz", x=x, y=y, mask=mask.astype(np.uint8))
PY
    local k be
    for k in rbf matern52; do
        for be in cpu cuda; do
            run 120 "$bin/batchgp" fit --data $d/D.npz --kernel $k --backend $be --out $d/F_${k}_$be.npz >/dev/null 2>&1 || echo "fit $k $be failed" | tee -a "$log"
        done
    done
}

find_vendor_libs

# With --dry-run: the binaries and the Python scripts the steps use must be there.
if [ $dry -eq 1 ]; then
    for f in batchgp cuda_agreement svgp_cuda gpu_bench; do
        [ -x "$bin/$f" ] && echo "ok $bin/$f" || { echo "missing $bin/$f (run scripts/gpu/bundle.sh)"; fails=$((fails + 1)); }
    done
    for f in benches/peers/torch_cholesky.py benches/peers/compare.py benches/peers/svgp.py; do
        python3 -m py_compile "$f" && echo "ok $f" || fails=$((fails + 1))
    done
fi

for s in "${steps[@]}"; do
    if ! declare -F "step_$s" >/dev/null; then
        echo "no step $s" | tee -a "$log"
        fails=$((fails + 1))
        continue
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        summary+=("SKIPPED $s (deadline)")
        continue
    fi
    "step_$s"
done
say "summary"
for l in "${summary[@]}"; do echo "$l" | tee -a "$log"; done
grep -E '^(mll|cholesky|vendor|host)' "$log" 2>/dev/null | tail -n 40
say "done: $fails failing step(s) or test(s)"
exit $((fails > 0))
