#!/usr/bin/env bash
# Runs on a lent GPU machine, over the binaries scripts/gpu/bundle.sh put in .carry/gpu/.
#   bash scripts/gpu/device.sh STEP...     STEP: env tests bench torch peers sanitize profile fit, or all
# Logs go to $OUT (or ./gpu-out): log.txt (env, tests, sanitizer), bench.json, torch.json and
# the peers harness's gpu-*.md/json. Each step has its own time limit so that one call of the
# device tool (10 minutes) ends in time; a test binary that cannot find its GPU fails.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bin=.carry/gpu
out="${OUT:-$root/gpu-out}"
mkdir -p "$out"
log="$out/log.txt"
export PYTHONUNBUFFERED=1
export BATCHGP_REQUIRE_CUDA=1  # `batchgp info` fails where the GPU cannot be had
say() { echo "== $*" | tee -a "$log"; }
steps=("$@")
[ "${#steps[@]}" -eq 0 ] || [ "${steps[0]}" = "--help" ] && { sed -n 2,6p "$0"; exit 0; }
[ "${steps[0]}" = all ] && steps=(env tests bench torch peers sanitize profile fit)
fails=0

step_env() {
    say "env"
    nvidia-smi --query-gpu=name,driver_version,pstate,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu,memory.used --format=csv 2>&1 | tee -a "$log"
    "$bin/batchgp" info 2>&1 | tee -a "$log" || fails=$((fails + 1))
}

step_tests() {
    say "tests (each in its own process, --include-ignored --exact)"
    local t s rc tb
    for tb in cuda_agreement svgp_cuda; do
    [ -x "$bin/$tb" ] || continue
    for t in $("$bin/$tb" --list --include-ignored 2>/dev/null | sed -n 's/: test$//p'); do
        [ "$t" = kernels_in_host_emulation ] && continue
        [ "$t" = svgp_kernels_in_host_emulation ] && continue
        s=$(date +%s%N)
        timeout "${TEST_LIMIT:-150}" "$bin/$tb" --include-ignored --exact "$t" --nocapture --test-threads=1 >"$out/t.log" 2>&1
        rc=$?
        if [ $rc -eq 0 ]; then
            printf 'PASS %-45s %6d ms\n' "$t" $((($(date +%s%N) - s) / 1000000)) | tee -a "$log"
        else
            fails=$((fails + 1))
            printf 'FAIL %-45s rc=%d\n' "$t" "$rc" | tee -a "$log"
            grep -v '^$' "$out/t.log" | tail -n 25 | tee -a "$log"
        fi
    done
    done
    rm -f "$out/t.log"
}

step_bench() {
    say "bench (kernel = device events around the launches; wall = the whole backend call)"
    timeout "${BENCH_LIMIT:-200}" "$bin/gpu_bench" --bench ${BENCH_ARGS:-} --json "$out/bench.json" 2>&1 | tee -a "$log" || fails=$((fails + 1))
}

step_torch() {
    say "torch.linalg.cholesky"
    timeout "${TORCH_LIMIT:-120}" python3 benches/peers/torch_cholesky.py --json "$out/torch.json" 2>&1 | tee -a "$log" || fails=$((fails + 1))
}

step_peers() {
    say "peers harness (GPU only)"
    timeout "${PEERS_LIMIT:-200}" python3 benches/peers/compare.py --gpu-only --no-sklearn --skip-fit --batchgp "$bin/batchgp" \
        --shapes "${PEERS_SHAPES:-1000x256x8,100000x32x3,10x1000x3,100x264x3}" --budget 8 --out-dir "$out" \
        --tag "gpu-$(date +%Y-%m-%d)" 2>&1 | tail -n 40 | tee -a "$log"
    # (its .png, the plot for the README, comes back too)
}

step_sanitize() {
    say "compute-sanitizer"
    local cs
    cs=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -1)
    if [ -z "$cs" ]; then echo "no compute-sanitizer" | tee -a "$log"; return; fi
    local d=/tmp/san
    mkdir -p $d
    python3 - <<'PY'
import numpy as np
rng = np.random.default_rng(0)
for n in (20, 60, 200):
    b, d = 3, 2
    x = rng.uniform(0, 1, (b, n, d)); y = np.sin(3 * x.sum(-1)) + 0.1 * rng.standard_normal((b, n))
    mask = np.ones((b, n), bool); mask[1, n // 2:] = False
    np.savez(f"/tmp/san/D{n}.npz", x=x, y=y, mask=mask.astype(np.uint8))
    np.savez(f"/tmp/san/P{n}.npz", log_lengthscale=np.log(0.4) * np.ones((b, d)), log_outputscale=np.zeros(b),
             log_noise=np.log(0.05) * np.ones(b), mean=np.zeros(b))
    np.savez(f"/tmp/san/T{n}.npz", x=rng.uniform(0, 1, (9, d)))
PY
    local n tool k
    # (tool, kernel, n): memcheck on the three variants (warp 20, block 60, global 200) and
    # predict; racecheck (slow) on every variant (the global one stages tiles in shared memory).
    for spec in memcheck:rbf:20 memcheck:matern52:60 memcheck:matern32:200 racecheck:rbf:20 racecheck:matern52:60 racecheck:rbf:200; do
        IFS=: read -r tool k n <<<"$spec"
        timeout "${SAN_LIMIT:-45}" "$cs" --tool "$tool" --error-exitcode 9 "$bin/batchgp" mll --backend cuda --kernel "$k" \
            --data $d/D$n.npz --params $d/P$n.npz --out $d/o.npz >$d/s.log 2>&1
        echo "$tool mll $k n=$n rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $d/s.log | tr '\n' ' ')" | tee -a "$log"
    done
    timeout "${SAN_LIMIT:-45}" "$cs" --tool memcheck --error-exitcode 9 "$bin/batchgp" predict --backend cuda --covariance \
        --data $d/D60.npz --params $d/P60.npz --test $d/T60.npz --out $d/o.npz >$d/s.log 2>&1
    echo "memcheck predict n=60 rc=$? $(grep -E 'ERROR SUMMARY' $d/s.log | tr '\n' ' ')" | tee -a "$log"
}

step_profile() {
    say "ncu (hardware counters, clocks as found) of one gp_mll launch per variant"
    local ncu
    ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
    if [ -z "$ncu" ]; then echo "no ncu" | tee -a "$log"; return; fi
    python3 - <<'PY'
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
        timeout 120 "$ncu" --clock-control none --kernel-name regex:gp_mll --launch-count 1 \
            --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
            --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
            "$bin/batchgp" mll --backend cuda --data /tmp/prof$n.npz --params /tmp/profP$n.npz --out /tmp/o.npz 2>&1 |
            grep -vE '^\s*$|^==PROF==|----' | sed -n '/gp_mll/,$p' | tee -a "$log"
    done
}

step_fit() {
    say "demo (backend auto) and fits on the GPU against the CPU"
    local d=/tmp/fitcheck
    mkdir -p $d
    timeout 120 "$bin/batchgp" demo --out-dir $d/demo 2>&1 | grep -iE "backend|cuda|cpu" | head -3 | tee -a "$log"
    python3 - <<'PY'
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
            timeout 120 "$bin/batchgp" fit --data $d/D.npz --kernel $k --backend $be --out $d/F_${k}_$be.npz >/dev/null 2>&1 || echo "fit $k $be failed" | tee -a "$log"
        done
        K=$k python3 - <<'PY' 2>&1 | tee -a "$log"
import os, numpy as np
k = os.environ["K"]; a = np.load(f"/tmp/fitcheck/F_{k}_cpu.npz"); g = np.load(f"/tmp/fitcheck/F_{k}_cuda.npz")
oa, og = a["objective"], g["objective"]
print(f"fit {k}: members {len(oa)}, status equal {np.array_equal(a['status'], g['status'])}, "
      f"max |objective cpu - cuda| {np.nanmax(np.abs(oa - og)):.2e}, cuda >= cpu - 1e-6|cpu| on {np.sum(og >= oa - 1e-6 * np.abs(oa))}, "
      f"max |log lengthscale diff| {np.nanmax(np.abs(a['log_lengthscale'] - g['log_lengthscale'])):.2e}, "
      f"seconds cpu {float(np.sum(a['seconds'])):.2f} cuda {float(np.sum(g['seconds'])):.2f}")
PY
    done
}

for s in "${steps[@]}"; do
    "step_$s"
done
say "done: $fails failing step(s) or test(s)"
exit $((fails > 0))
