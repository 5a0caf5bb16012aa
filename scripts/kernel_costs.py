#!/usr/bin/env python3
"""Static costs of the fused per-member kernels, v1 beside v0, without a GPU.

Compiles kernels/gp.cu for one architecture (default sm_90) with `-Xptxas -v`, disassembles the
cubin with cuobjdump, and prints a markdown table per entry point: registers, static shared
memory, stack and spills (ptxas), SASS instructions in all, and the instructions the v1 changes
target: MUFU.RCP64H (the seed of every FP64 division or reciprocal, one per inlined division
sequence), BAR.SYNC (block barriers), SHFL (warp shuffles), and FP64 arithmetic (DFMA, DMUL,
DADD). These are static counts (code size, not instructions executed per member); the host
emulation's barrier counts per member (tests/emulation/harness.cpp, "COUNT" lines) are dynamic.

    source .ci/install-nvcc.sh                  # nvcc 13.0
    pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm   # cuobjdump (any 13.x), into a venv
    python3 scripts/kernel_costs.py --cuobjdump PATH [--filter rbf_f64] [--arch sm_90]

--ptxas-log and --sass reuse an earlier compile's outputs instead of compiling (several minutes on
two cores).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import OrderedDict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNTED = [("MUFU.RCP64H", "rcp64"), ("BAR.SYNC", "bar"), ("SHFL", "shfl"), ("DFMA", "dfma"), ("DMUL", "dmul"),
           ("DADD", "dadd")]


def compile_gp(nvcc, arch, out_dir):
    cubin = os.path.join(out_dir, "gp.cubin")
    cmd = [nvcc, "-cubin", "-O3", "-std=c++17", f"-arch={arch}", "-Xptxas", "-v", "-I",
           os.path.join(ROOT, "kernels"), os.path.join(ROOT, "kernels", "gp.cu"), "-o", cubin]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"nvcc failed:\n{res.stderr}")
    return cubin, res.stderr


def ptxas_resources(log):
    """{function: {regs, smem, stack, spill}} from `-Xptxas -v` output."""
    out, cur = {}, None
    for line in log.splitlines():
        m = re.search(r"Function properties for (\S+)", line)
        if m:
            cur = m.group(1)
            out[cur] = {"regs": 0, "smem": 0, "stack": 0, "spill": 0}
            continue
        if cur is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            out[cur]["stack"] = int(m.group(1))
            out[cur]["spill"] = int(m.group(2)) + int(m.group(3))
        m = re.search(r"Used (\d+) registers", line)
        if m:
            out[cur]["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            out[cur]["smem"] = int(s.group(1)) if s else 0
    return out


def sass_counts(sass):
    """{function: {total, rcp64, bar, ...}} from cuobjdump -sass output."""
    out, cur = OrderedDict(), None
    for line in sass.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            cur = m.group(1)
            out[cur] = {"total": 0, **{k: 0 for _, k in COUNTED}}
            continue
        m = re.match(r"\s+/\*[0-9a-f]{4,}\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", line)
        if cur is None or not m:
            continue
        op = m.group(2)
        if op == "NOP":
            continue
        out[cur]["total"] += 1
        for prefix, key in COUNTED:
            if op.startswith(prefix):
                out[cur][key] += 1
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nvcc", default=os.environ.get("NVCC", "nvcc"))
    ap.add_argument("--cuobjdump", default="cuobjdump")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--filter", default="", help="only entry points whose name contains this")
    ap.add_argument("--ptxas-log", help="reuse this -Xptxas -v log (with --sass)")
    ap.add_argument("--sass", help="reuse this cuobjdump -sass listing (with --ptxas-log)")
    args = ap.parse_args()
    if args.ptxas_log and args.sass:
        log, sass = open(args.ptxas_log).read(), open(args.sass).read()
    else:
        with tempfile.TemporaryDirectory() as d:
            cubin, log = compile_gp(args.nvcc, args.arch, d)
            sass = subprocess.run([args.cuobjdump, "-sass", cubin], capture_output=True, text=True, check=True).stdout
    res, counts = ptxas_resources(log), sass_counts(sass)
    names = sorted(n for n in counts if args.filter in n and "_v0" not in n)
    print("| entry point | gen | registers | static smem B | stack/spill B | SASS instr | MUFU.RCP64H | BAR.SYNC "
          "| SHFL | DFMA+DMUL+DADD |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in names:
        # v0's name: the op's stem gets _v0 (gp_mll_warp_rbf_f64 -> gp_mll_warp_v0_rbf_f64).
        parts = n.split("_")
        stem_len = 3 if n.startswith("gp_mll_") else 2
        v0 = "_".join(parts[:stem_len] + ["v0"] + parts[stem_len:])
        for gen, name in (("v0", v0), ("v1", n)):
            if name not in counts:
                continue
            c, r = counts[name], res.get(name, {})
            fp64 = c["dfma"] + c["dmul"] + c["dadd"]
            print(f"| {n} | {gen} | {r.get('regs', '?')} | {r.get('smem', '?')} | {r.get('stack', '?')}/"
                  f"{r.get('spill', '?')} | {c['total']} | {c['rcp64']} | {c['bar']} | {c['shfl']} | {fp64} |")


if __name__ == "__main__":
    main()
