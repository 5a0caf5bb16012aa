"""What the two peers harnesses share (compare.py: exact GPs against GPyTorch and scikit-learn;
svgp.py: SVGPs against GPyTorch): the options every run takes, thread counts and shapes, the seeded
data, the batchgp CLI runner, GPyTorch's kernel and hyperparameters in batchgp's coordinates, the
agreement test, the timing, the machine's description, the report's common parts and the loop
over shapes.

Only the standard library is imported here at module level (numpy and torch inside functions), so
importing this module does not fix the thread counts before set_threads runs.
"""

import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

# --kernel: batchgp's name -> Matérn nu (None for rbf). rq is left out: scikit-learn's
# RationalQuadratic has one length scale, not one per dimension.
KERNELS = {"rbf": None, "matern12": 0.5, "matern32": 1.5, "matern52": 2.5}

MLL_RTOL = 1e-8
GRAD_RTOL = 1e-6


# ---------------------------------------------------------------------------------------------
# options, threads, shapes


def add_common_args(p):
    """The options both harnesses take, with the same meaning."""
    p.add_argument("--repeats", type=int, default=7, help="timed evaluations per system and shape "
                   "(median reported; fewer for slow shapes, see --budget)")
    p.add_argument("--budget", type=float, default=20.0,
                   help="seconds of timed evaluations per system and shape at most (the repeat count "
                   "is lowered to fit, never below 3)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for every system (RAYON_NUM_THREADS, torch.set_num_threads, BLAS); "
                   "default: RAYON_NUM_THREADS or all cores")
    p.add_argument("--out-dir", default=os.path.join(ROOT, "benches", "results"))
    p.add_argument("--batchgp", default=os.path.join(ROOT, "target", "release", "batchgp"),
                   help="path of the batchgp binary (default target/release/batchgp)")
    p.add_argument("--no-cuda", action="store_true", help="CPU only even when torch sees a GPU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the .npz files (printed path)")


def finish_args(a):
    """The thread count's default (RAYON_NUM_THREADS, else every core)."""
    if a.threads is None:
        a.threads = int(os.environ.get("RAYON_NUM_THREADS", "0")) or os.cpu_count()
    return a


def set_threads(n):
    """Before numpy is imported: one thread count for BLAS, OpenMP and rayon."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[var] = str(n)


def limit_threadpools(n):
    """threadpoolctl's limit on the BLAS and OpenMP pools already loaded, when it is installed."""
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError:
        pass


def parse_shapes(s, fields=3):
    """'100x264x3,1000x50x3' -> [(100, 264, 3), (1000, 50, 3)]; `fields` numbers per shape
    (3 for compare.py: B x N x D; 4 for svgp.py: B x N x M x D)."""
    out = []
    for item in s.split(","):
        shape = tuple(int(v) for v in item.lower().strip().split("x"))
        if len(shape) != fields:
            raise ValueError(f"shape {item.strip()!r}: expected {fields} numbers separated by x")
        out.append(shape)
    return out


# ---------------------------------------------------------------------------------------------
# data


def smooth_targets(rng, x, freq):
    """y (B, N) for x (B, N, D): per member a weighted sum of sines, sum_d sin(f_d x_d + p_d) / (1 + d)
    with f_d uniform in `freq` and p_d in [0, 2 pi), plus noise of sd 0.1 and an offset uniform in
    [-1, 1]. Draws freq, phase, noise, offset from `rng`, in that order."""
    import numpy as np
    b, n, d = x.shape
    f_d = rng.uniform(freq[0], freq[1], size=(b, d))
    phase = rng.uniform(0.0, 2 * np.pi, size=(b, d))
    weight = 1.0 / (1.0 + np.arange(d))
    f = (weight * np.sin(f_d[:, None, :] * x + phase[:, None, :])).sum(-1)
    return f + 0.1 * rng.standard_normal((b, n)) + rng.uniform(-1, 1, size=(b, 1))


def save_npz(path, **arrays):
    """f64 arrays; a str value becomes a 0-d numpy string (the CLI reads `kernel` that way)."""
    import numpy as np
    np.savez(path, **{k: (np.array(v) if isinstance(v, str) else np.ascontiguousarray(v, dtype=np.float64))
                      for k, v in arrays.items()})


def load_npz(path):
    """Every array of an .npz file, in memory."""
    import numpy as np
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


# ---------------------------------------------------------------------------------------------
# batchgp (through its CLI)


class CliError(RuntimeError):
    pass


def check_batchgp(args):
    """The absolute path of --batchgp, None with --no-batchgp; exits when there is no binary."""
    exe = None if args.no_batchgp else os.path.abspath(args.batchgp)
    if exe and not os.access(exe, os.X_OK):
        sys.exit(f"no batchgp binary at {exe}: `cargo build --release`, pass --batchgp PATH, or --no-batchgp")
    return exe


def run_cli(args, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    r = subprocess.run(args, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise CliError(f"{' '.join(args)} exited {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r


def batchgp_evaluate(exe, command, dpath, ppath, opath, backend, repeat, threads, extra, required=()):
    """`batchgp mll` or `batchgp elbo` with --repeat: the output file's arrays, `seconds` among
    them (and every name in `required`)."""
    run_cli([exe, command, "--data", dpath, "--params", ppath, "--out", opath, "--backend", backend,
             "--repeat", str(repeat)] + list(extra), threads)
    out = load_npz(opath)
    missing = [k for k in required if k not in out]
    if missing:
        raise CliError(f"batchgp {command} wrote no {', '.join(missing)}")
    if "seconds" not in out:
        raise CliError(f"batchgp {command} --repeat wrote no `seconds` array")
    return out


def batchgp_fit_run(args, threads, fpath):
    """A `batchgp fit` command line run: the output file's arrays plus `wall` (the subprocess's
    wall time), `time` (the fit's own `seconds`, else the wall time) and `time_from` (which)."""
    import numpy as np
    t0 = time.perf_counter()
    run_cli(args, threads)
    wall = time.perf_counter() - t0
    out = load_npz(fpath)
    out["wall"] = wall
    out["time"] = float(np.asarray(out["seconds"]).ravel()[0]) if "seconds" in out else wall
    out["time_from"] = "seconds" if "seconds" in out else "subprocess wall time (process start and I/O included)"
    return out


# ---------------------------------------------------------------------------------------------
# GPyTorch: what the exact GP and the SVGP share


def gpytorch_base_kernel(kernel, d, bs):
    import gpytorch
    nu = KERNELS[kernel]
    if nu is None:
        return gpytorch.kernels.RBFKernel(ard_num_dims=d, batch_shape=bs)
    return gpytorch.kernels.MaternKernel(nu=nu, ard_num_dims=d, batch_shape=bs)


def as_tensors(device, *arrays):
    """f64 torch tensors on `device`."""
    import torch
    return tuple(torch.as_tensor(a, dtype=torch.float64, device=device) for a in arrays)


def set_gpytorch_params(model, params, device):
    import numpy as np
    import torch

    def t(a):
        return torch.as_tensor(np.asarray(a), dtype=torch.float64, device=device)

    b = params["mean"].shape[0]
    model.covar_module.base_kernel.lengthscale = t(np.exp(params["log_lengthscale"]))[:, None, :]
    model.covar_module.outputscale = t(np.exp(params["log_outputscale"]))
    model.likelihood.noise = t(np.exp(params["log_noise"])).reshape(b, 1)
    model.mean_module.constant = t(params["mean"]).reshape(model.mean_module.constant.shape)


def gpytorch_values(model):
    """Actual hyperparameters (B, ...) as numpy, in batchgp's log form."""
    import numpy as np
    ls = model.covar_module.base_kernel.lengthscale.detach().cpu().numpy()[:, 0, :]
    os_ = model.covar_module.outputscale.detach().cpu().numpy()
    nz = model.likelihood.noise.detach().cpu().numpy().reshape(-1)
    m = model.mean_module.constant.detach().cpu().numpy().reshape(-1)
    return dict(log_lengthscale=np.log(ls), log_outputscale=np.log(os_), log_noise=np.log(nz), mean=m)


def gpytorch_settings():
    import contextlib
    import gpytorch
    st = contextlib.ExitStack()
    st.enter_context(gpytorch.settings.max_cholesky_size(10**9))  # Cholesky, never CG
    st.enter_context(gpytorch.settings.debug(False))
    return st


def gpytorch_grad_log(model):
    """Gradients w.r.t. log(lengthscale), log(outputscale), log(noise) and mean, from the raw
    parameters' gradients: value = lower + softplus(raw), so d/dlog v = v * g_raw / sigmoid(raw)."""
    import torch

    def conv(raw, value):
        return (value * raw.grad / torch.sigmoid(raw)).detach().cpu().numpy()

    k = model.covar_module
    lik = model.likelihood
    return dict(
        grad_log_lengthscale=conv(k.base_kernel.raw_lengthscale, k.base_kernel.lengthscale)[:, 0, :],
        grad_log_outputscale=conv(k.raw_outputscale, k.outputscale),
        grad_log_noise=conv(lik.noise_covar.raw_noise, lik.noise).reshape(-1),
        grad_mean=model.mean_module.constant.grad.detach().cpu().numpy().reshape(-1),
    )


# ---------------------------------------------------------------------------------------------
# agreement


def rel_err(a, b):
    import numpy as np
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = np.maximum(np.abs(a), np.abs(b))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, np.abs(a - b) / scale, 0.0)


def check_agreement(name, mll_a, mll_b, grad_a, grad_b):
    """Worst relative MLL (or ELBO) error, and worst gradient error relative to the member's
    largest gradient component (a near-zero component is not held to 1e-6 of itself); ok when
    every member is within MLL_RTOL and GRAD_RTOL."""
    import numpy as np
    me = rel_err(mll_a, mll_b)
    diff = np.abs(grad_a - grad_b).max(1)
    scale = np.maximum(np.abs(grad_a).max(1), np.abs(grad_b).max(1))
    ge = np.where(scale > 0, diff / np.where(scale > 0, scale, 1), 0.0)
    wm, wg = int(np.nanargmax(me)), int(np.nanargmax(ge))
    ok = bool(np.all(me <= MLL_RTOL) and np.all(ge <= GRAD_RTOL))
    return dict(pair=name, ok=ok, mll_rel=float(me[wm]), mll_member=wm, grad_rel=float(ge[wg]), grad_member=wg,
                mll_values=[float(mll_a[wm]), float(mll_b[wm])],
                grad_values=[grad_a[wg].tolist(), grad_b[wg].tolist()])


# ---------------------------------------------------------------------------------------------
# timing


def median(v):
    v = sorted(v)
    k = len(v)
    return v[k // 2] if k % 2 else 0.5 * (v[k // 2 - 1] + v[k // 2])


def repeats_for(first_estimate, repeats, budget):
    return max(3, min(repeats, int(budget / max(first_estimate, 1e-9))))


def time_repeats(fn, repeats, budget, sync):
    """One warm-up call, then up to `repeats` timed calls (fewer when the warm-up says they
    would not fit in `budget` seconds, never fewer than 3). Returns the list of seconds."""
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - t0
    r = repeats_for(first, repeats, budget)
    out = []
    for _ in range(r):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def summarize_evals(evals, b, log, label="", width=16):
    """Each system's median time and GP evaluations per second, logged one line each."""
    for k, v in evals.items():
        v["median"] = median(v["seconds"])
        v["evals_per_s"] = b / v["median"]
        log(f"  {label}{k:<{width}} {v['median'] * 1e3:10.2f} ms  ({len(v['seconds'])} repeats, "
            f"{v['evals_per_s']:.0f} GP/s)")


# ---------------------------------------------------------------------------------------------
# machine


def machine_description(args, torch_mod, batchgp_exe):
    cpu = "unknown CPU"
    try:
        fields = {}
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                k, _, v = line.partition(":")
                fields[k.strip()] = v.strip()
        cpu = fields.get("model name", cpu)
        if "cpu family" in fields:
            cpu += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
        if "hypervisor" in fields.get("flags", "").split():
            cpu += ", virtual machine"
    except OSError:
        cpu = platform.processor() or cpu
    desc = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": args.threads,
        "python": platform.python_version(),
        "os": platform.platform(),
        "load_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    try:
        import numpy, scipy, sklearn
        desc.update(numpy=numpy.__version__, scipy=scipy.__version__, sklearn=sklearn.__version__)
    except ImportError:
        pass
    if torch_mod is not None:
        import gpytorch
        desc.update(torch=torch_mod.__version__, gpytorch=gpytorch.__version__)
        if torch_mod.cuda.is_available():
            desc["gpu"] = torch_mod.cuda.get_device_name(0)
    if batchgp_exe:
        try:
            r = subprocess.run([batchgp_exe, "info"], capture_output=True, text=True, timeout=60)
            desc["batchgp_info"] = (r.stdout + r.stderr).strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            desc["batchgp_info"] = f"(batchgp info failed: {e})"
    return desc


def machine_line(machine):
    """The log's first line: CPU, threads, GPU."""
    return (f"machine: {machine['cpu']}, {machine['threads']} threads"
            + (f", GPU {machine['gpu']}" if machine.get("gpu") else ""))


# ---------------------------------------------------------------------------------------------
# report


def fmt_ms(v):
    """A median time in ms (* when scaled from a prefix of the members)."""
    if v is None:
        return "n/a"
    s = v["median"] * 1e3
    txt = f"{s:.3g}" if s < 100 else f"{s:.0f}"
    return txt + ("*" if v.get("scaled_from") else "")


def compact_json(o):
    """Per-member lists longer than 200 become a summary, so the file stays small."""
    if isinstance(o, dict):
        return {k: compact_json(v) for k, v in o.items()}
    if isinstance(o, list) and len(o) > 200 and all(isinstance(v, (int, float)) for v in o):
        v = sorted(o)
        return dict(n=len(o), min=v[0], median=v[len(v) // 2], max=v[-1], first=o[:20])
    if isinstance(o, list):
        return [compact_json(v) for v in o]
    return o


def report_head(title, machine, who, load_note, software):
    """The report's title and its machine, load and software lines. `who`: which systems used the
    threads; `load_note`: said after the load averages; `software`: the version keys to list."""
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [f"# {title} ({now})\n"]
    lines.append("Machine: " + machine["cpu"] + f", {machine['cores']} cores, {machine['threads']} threads used by "
                 + who + (f"; GPU: {machine['gpu']}" if machine.get("gpu") else "; no GPU") + ".  ")
    if machine.get("load_start") is not None:
        lines.append(f"Load average (1 min) at the start: {machine['load_start']:.1f}, at the end: "
                     f"{machine.get('load_end', float('nan')):.1f}{load_note}.  ")
    lines.append("Software: " + ", ".join(f"{k} {machine[k]}" for k in software if k in machine) + ".  ")
    return lines


def write_report_files(lines, notes, machine, results, args, path_md, path_json):
    """The notes section (when there are notes: (shape, text) pairs), the command line, then the
    markdown file and the JSON file of every number."""
    if notes:
        lines.append("\n## Notes\n")
        for s, n in notes:
            lines.append(f"- {tuple(s)}: {n}")
    lines.append(f"\nCommand: `{' '.join(sys.argv)}`\n")
    with open(path_md, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(path_json, "w") as f:
        json.dump(compact_json(dict(machine=machine, results=results, args=vars(args))), f, indent=1, default=float)


# ---------------------------------------------------------------------------------------------
# the run


def log(msg):
    print(msg, flush=True)


def run_shapes(shapes, bench_shape, args, ctx, prefix, describe, failed):
    """bench_shape(shape, args, ctx, workdir) for every shape in a temporary folder (kept with
    --keep); a shape that raises becomes failed(shape, error) and the others go on."""
    results = []
    workdir = tempfile.mkdtemp(prefix=prefix)
    try:
        for shape in shapes:
            log(describe(shape))
            t0 = time.perf_counter()
            try:
                results.append(bench_shape(shape, args, ctx, workdir))
            except Exception as e:  # noqa: BLE001 (one broken shape does not lose the others)
                traceback.print_exc()
                results.append(failed(shape, e))
            log(f"  ({time.perf_counter() - t0:.0f} s)")
    finally:
        if args.keep:
            log(f"kept the .npz files in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def output_base(args, machine, prefix):
    """<out-dir>/<tag>: --tag, else <prefix><cpu|gpu>[-quick][-kernel]-<date>; notes the load at
    the end in `machine`."""
    os.makedirs(args.out_dir, exist_ok=True)
    tag = args.tag or (prefix + ("gpu" if machine.get("gpu") else "cpu") + ("-quick" if args.quick else "")
                       + ("" if args.kernel == "rbf" else "-" + args.kernel) + "-" + datetime.date.today().isoformat())
    if hasattr(os, "getloadavg"):
        machine["load_end"] = os.getloadavg()[0]
    return os.path.join(args.out_dir, tag)
