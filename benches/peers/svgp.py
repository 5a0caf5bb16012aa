#!/usr/bin/env python3
"""Batched sparse variational GPs (SVGP): batchgp against GPyTorch's batch-mode SVGP.

For every shape (B, N, M, D) it generates one data set and one set of SVGP parameters (seeded
numpy), then

1. (self-check, on unless --no-self-check) checks GPyTorch's per-member ELBO against an
   independent numpy implementation of the model (docs/design.md section 11) on every member,
   and GPyTorch's gradient, converted to batchgp's coordinates, against central differences of
   the numpy ELBO on member 0;
2. (agreement) checks `batchgp elbo` (ELBO and every gradient array) against GPyTorch on every
   member;
3. times one ELBO + gradient evaluation of the whole batch in each (median of repeats);
4. (unless --skip-fit) times T Adam steps from the same start in each and compares the final
   ELBOs (both evaluated by GPyTorch on the full data).

It writes a markdown table and a JSON file with every number under --out-dir (benches/results by
default), named svgp-<cpu|gpu>-<date>. A disagreement is marked MISMATCH and the script exits 1.
`--no-batchgp` runs the GPyTorch half (and the self-check) alone.

Not part of CI. See README.md beside this file.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# harness imports only the standard library at module level (numpy and torch inside functions), so
# importing it here does not fix the thread counts before set_threads runs.
from harness import (  # noqa: E402
    CliError,
    add_common_args,
    as_tensors,
    batchgp_evaluate,
    batchgp_fit_run,
    check_batchgp,
    finish_args,
    gpytorch_settings,
    limit_threadpools,
    log,
    machine_description,
    machine_line,
    output_base,
    parse_shapes,
    rel_err,
    repeats_for,
    run_shapes,
    save_npz,
    set_threads,
    smooth_targets,
    summarize_evals,
    time_repeats,
)
from svgp_peers import (  # noqa: E402
    GRAD_KEYS,
    JITTER_REL,
    PARAM_KEYS,
    agreement,
    grad_matrix,
    fd_coords,
    fd_gradient,
    gpytorch_eval,
    gpytorch_fit,
    gpytorch_full_elbo,
    gpytorch_svgp,
    gpytorch_values_and_grads,
    member_params,
    np_elbo,
)
from svgp_report import ELBO_RTOL, FD_RTOL, FIT_RTOL, SELF_RTOL, write_report  # noqa: E402

DEFAULT_SHAPES = [(64, 5000, 64, 1), (1024, 1000, 32, 3)]
QUICK_SHAPES = [(8, 200, 16, 1), (16, 100, 8, 2)]

# Z starts on data points, and Matérn 1/2 and 3/2 are not twice differentiable at r = 0: the
# gradient with respect to z there is a convention (Matérn 1/2) and central differences are
# inaccurate (Matérn 3/2), so the checks below would test conventions, not the model.
SVGP_KERNELS = ("rbf", "matern52")

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", help="comma-separated BxNxMxD list (B members, N points each, M inducing "
                   "points, D dimensions), e.g. 64x5000x64x1,1024x1000x32x3 (default: those two)")
    p.add_argument("--kernel", default="rbf", choices=SVGP_KERNELS,
                   help="covariance kernel: batchgp --kernel K (and `kernel` in S.npz), GPyTorch "
                   "ScaleKernel(RBFKernel or MaternKernel(nu=2.5), ARD) (default rbf)")
    p.add_argument("--steps", type=int, default=None, help="Adam steps of the fits (default 200, 20 with --quick)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (default 0.01)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="mini-batch size S of the fits (default: full data); each member draws its own "
                   "random S points per step and the data term is scaled by N/S")
    p.add_argument("--fit-budget", type=float, default=300.0,
                   help="seconds GPyTorch's fit may take per shape and device, estimated from its "
                   "evaluation time x --steps; it is skipped past that (batchgp always runs)")
    p.add_argument("--quick", action="store_true", help="tiny shapes, 3 repeats, 20 steps: a smoke run")
    p.add_argument("--skip-fit", action="store_true", help="agreement and evaluation timings only")
    p.add_argument("--self-check", dest="self_check", action="store_true", default=True,
                   help="check GPyTorch against the numpy implementation (default: on)")
    p.add_argument("--no-self-check", dest="self_check", action="store_false")
    p.add_argument("--fd-coords", type=int, default=300,
                   help="coordinates of member 0 checked by central differences in the self-check "
                   "(all hyperparameters plus a seeded random subset of z, q_mu, q_sqrt; default 300)")
    p.add_argument("--tag", default=None, help="file name prefix (default svgp-<cpu|gpu>[-quick][-kernel]-<date>)")
    p.add_argument("--no-batchgp", action="store_true", help="leave batchgp out (GPyTorch and the self-check only)")
    p.add_argument("--gpu-only", action="store_true",
                   help="time and fit on the GPU alone (the agreement still uses GPyTorch on the CPU as reference)")
    add_common_args(p)
    a = finish_args(p.parse_args(argv))
    if a.steps is None:
        a.steps = 20 if a.quick else 200
    if a.batch_size is not None and a.batch_size < 1:
        p.error("--batch-size must be >= 1")
    return a


# ---------------------------------------------------------------------------------------------
# data and starting parameters


def make_problem(shape, seed):
    """x (B, N, D) uniform in [0, 1] (for D = 1 with no points in (0.4, 0.6)), y a smooth function
    per member plus noise, and SVGP parameters: Z a random subset of the member's x, q_mu small,
    q_sqrt lower triangular near the identity, hyperparameters per member."""
    import numpy as np
    b, n, m, d = shape
    if m > n:
        raise ValueError(f"M = {m} inducing points > N = {n} points")
    rng = np.random.default_rng([seed, b, n, m, d])
    if d == 1:
        u = rng.uniform(0.0, 0.8, size=(b, n, 1))
        x = np.where(u < 0.4, u, u + 0.2)  # a gap in (0.4, 0.6)
        y = smooth_targets(rng, x, (6.0, 12.0))
    else:
        x = rng.uniform(0.0, 1.0, size=(b, n, d))
        y = smooth_targets(rng, x, (2.0, 6.0))
    idx = np.argsort(rng.random((b, n)), axis=1)[:, :m]
    z = np.take_along_axis(x, idx[..., None], axis=1)
    q_sqrt = np.tril(0.05 * rng.standard_normal((b, m, m)), -1)
    q_sqrt[:, np.arange(m), np.arange(m)] = rng.uniform(0.8, 1.0, size=(b, m))
    params = dict(
        z=z,
        q_mu=0.1 * rng.standard_normal((b, m)),
        q_sqrt=q_sqrt,
        log_lengthscale=np.log(rng.uniform(0.1, 0.4, size=(b, d)) * np.sqrt(d)),
        log_outputscale=np.log(rng.uniform(0.5, 1.5, size=b)),
        log_noise=np.log(rng.uniform(0.01, 0.05, size=b)),
        mean=y.mean(1) + rng.uniform(-0.1, 0.1, size=b),
    )
    return x, y, params


# ---------------------------------------------------------------------------------------------
# batchgp (through its CLI)


def batchgp_has_svgp(exe):
    import subprocess
    return subprocess.run([exe, "elbo", "--help"], capture_output=True, text=True).returncode == 0


def batchgp_elbo(exe, dpath, spath, opath, backend, repeat, threads, kernel):
    return batchgp_evaluate(exe, "elbo", dpath, spath, opath, backend, repeat, threads, ["--kernel", kernel],
                            ("elbo",) + GRAD_KEYS)


def batchgp_fit(exe, dpath, spath, fpath, backend, threads, kernel, steps, lr, batch_size, seed):
    args = [exe, "fit", "--model", "svgp", "--data", dpath, "--init", spath, "--steps", str(steps),
            "--lr", repr(lr), "--optimizer", "adam", "--backend", backend, "--kernel", kernel, "--seed", str(seed),
            "--out", fpath]
    if batch_size:
        args += ["--batch-size", str(batch_size)]
    out = batchgp_fit_run(args, threads, fpath)
    missing = [k for k in PARAM_KEYS if k not in out]
    if missing:
        raise CliError(f"batchgp fit --model svgp wrote no {', '.join(missing)}")
    return out


def jitter_rel_from(o, params, notes, label):
    """batchgp's reported jitter (absolute) as a multiple of s per member. The model's is 1e-6 s;
    a member that needed retries (x10 each) gets its larger jitter in GPyTorch too."""
    import numpy as np
    s = np.exp(params["log_outputscale"])
    if "jitter" not in o:
        notes.append(f"{label}: no `jitter` array; GPyTorch uses {JITTER_REL:g} s")
        return np.full(s.shape, JITTER_REL)
    rel = np.asarray(o["jitter"], float) / s
    near = np.abs(rel - JITTER_REL) <= 1e-9 * JITTER_REL
    out = np.where(near, JITTER_REL, rel)
    above = np.flatnonzero(~near & (rel > JITTER_REL))
    odd = np.flatnonzero(~near & ~(rel > JITTER_REL))
    if above.size:
        notes.append(f"{label}: {above.size} members factorised with a jitter above {JITTER_REL:g} s "
                     f"(retries; GPyTorch given the same), first {above[:5].tolist()}")
    if odd.size:
        notes.append(f"{label}: {odd.size} members report a jitter below {JITTER_REL:g} s or not finite "
                     f"(first {odd[:5].tolist()}: {rel[odd[:5]].tolist()} s); GPyTorch uses {JITTER_REL:g} s there")
        out[odd] = JITTER_REL
    return out


# ---------------------------------------------------------------------------------------------
# one shape


def bench_shape(shape, args, ctx, workdir):
    import numpy as np
    b, n, m, d = shape
    res = dict(shape=list(shape), self_check={}, agree=[], eval={}, fit={}, notes=[])
    x, y, params = make_problem(shape, args.seed)
    tag = f"b{b}_n{n}_m{m}_d{d}"
    dpath = os.path.join(workdir, f"D_{tag}.npz")
    spath = os.path.join(workdir, f"S_{tag}.npz")
    save_npz(dpath, x=x, y=y)
    save_npz(spath, **params, kernel=args.kernel)
    kernel = args.kernel

    # --- GPyTorch on the CPU: the reference values (contract jitter 1e-6 s, differentiated) ---
    t0 = time.perf_counter()
    gp_elbo, gp_grad = gpytorch_values_and_grads(x, y, params, "cpu", kernel)
    log(f"  gpytorch-cpu ELBO: median {np.median(gp_elbo):.6g} ({time.perf_counter() - t0:.1f} s)")

    # --- self-check: GPyTorch against numpy (values on every member, gradient by differences) ---
    if args.self_check:
        t0 = time.perf_counter()
        ref = np_elbo(x, y, params, kernel)
        e = rel_err(gp_elbo, ref)
        w = int(np.argmax(e))
        coords = fd_coords(params, args.fd_coords, args.seed)
        fd = fd_gradient(x[0], y[0], member_params(params, 0), kernel, coords)
        gv = np.array([gp_grad["grad_" + k][0][i] for k, i in coords])
        scale = max(np.abs(fd).max(), np.abs(gv).max())
        ferr = np.abs(fd - gv) / scale
        wf = int(np.argmax(ferr))
        ok = bool(e.max() <= SELF_RTOL and ferr.max() <= FD_RTOL)
        res["self_check"] = dict(
            ok=ok, elbo_rel=float(e[w]), elbo_member=w, elbo_values=[float(gp_elbo[w]), float(ref[w])],
            elbo_rel_median=float(np.median(e)), fd_coords=len(coords), fd_rel=float(ferr[wf]),
            fd_worst=dict(coord=[coords[wf][0], list(map(int, coords[wf][1]))], gpytorch=float(gv[wf]),
                          numpy_fd=float(fd[wf])),
            fd_rel_by_array={k: float(max(ferr[i] for i, c in enumerate(coords) if c[0] == k))
                             for k in sorted({c[0] for c in coords})},
            seconds=time.perf_counter() - t0)
        sc = res["self_check"]
        log(f"  self-check numpy vs gpytorch: {'ok' if ok else 'MISMATCH'} ELBO rel {sc['elbo_rel']:.1e} "
            f"(member {w}, median {sc['elbo_rel_median']:.1e}), gradient vs central differences "
            f"({len(coords)} coords of member 0) {sc['fd_rel']:.1e} ({sc['seconds']:.1f} s)")

    # The same gradient with the jitter held constant: it differs in grad_log_outputscale only,
    # and tells which convention batchgp follows when that array disagrees.
    _, gp_grad_const = gpytorch_values_and_grads(x, y, params, "cpu", kernel, jitter_grad=False)
    jd = np.abs(gp_grad["grad_log_outputscale"] - gp_grad_const["grad_log_outputscale"])
    res["jitter_gradient_term"] = dict(max_abs=float(jd.max()),
                                       max_rel_to_member_largest=float((jd / np.abs(grad_matrix(gp_grad)).max(1)).max()))

    # --- batchgp: values for the agreement check (and a first timing estimate) ---
    exe = ctx["batchgp"]
    first = {}
    if exe:
        for backend in ctx["backends"]:
            key = f"batchgp-{backend}"
            try:
                o = batchgp_elbo(exe, dpath, spath, os.path.join(workdir, f"O_{tag}_{backend}.npz"), backend, 1,
                                 args.threads, kernel)
            except CliError as err:
                res["notes"].append(f"{key}: {err}")
                log(f"  {key} failed: {err}")
                continue
            first[backend] = float(np.max(o["seconds"]))
            bad = np.flatnonzero(np.asarray(o.get("status", np.zeros(b))) >= 3)
            if bad.size:
                res["notes"].append(f"{key}: {bad.size} members failed (status 3), first {bad[:5].tolist()}")
            jr = jitter_rel_from(o, params, res["notes"], key)
            if np.array_equal(jr, np.full(b, JITTER_REL)):
                ref_e, ref_g, ref_gc = gp_elbo, gp_grad, gp_grad_const
            else:
                ref_e, ref_g = gpytorch_values_and_grads(x, y, params, "cpu", kernel, jr)
                ref_gc = gpytorch_values_and_grads(x, y, params, "cpu", kernel, jr, jitter_grad=False)[1]
            a = agreement(f"{key} vs gpytorch-cpu", o["elbo"], ref_e, o, ref_g)
            if not a["ok"]:
                alt = agreement(f"{key} vs gpytorch-cpu (jitter held constant)", o["elbo"], ref_e, o, ref_gc)
                a["vs_jitter_held_constant"] = dict(ok=alt["ok"], grad_rel=alt["grad_rel"])
                if alt["ok"]:
                    res["notes"].append(f"{key}: agrees with GPyTorch when the jitter 1e-6 s is held constant "
                                        "(its gradient leaves out d(jitter)/d log s)")
            res["agree"].append(a)
    for dev in ctx["torch_devices"]:
        if dev == "cpu":
            continue
        try:
            e_dev, g_dev = gpytorch_values_and_grads(x, y, params, dev, kernel)
            res["agree"].append(agreement(f"gpytorch-{dev} vs gpytorch-cpu", e_dev, gp_elbo, g_dev, gp_grad))
        except Exception as err:  # noqa: BLE001
            res["notes"].append(f"gpytorch-{dev}: {type(err).__name__}: {err}")
    for a in res["agree"]:
        log(f"  agree {a['pair']}: {'ok' if a['ok'] else 'MISMATCH'} ELBO rel {a['elbo_rel']:.1e} "
            f"(member {a['elbo_member']}), gradient rel {a['grad_rel']:.1e} (member {a['grad_member']})"
            + ("" if a["ok"] else "; by array " + ", ".join(f"{k[5:]} {v:.1e}" for k, v in a["per_array"].items())))

    # --- timings of one ELBO + gradient evaluation of the whole batch ---
    time.sleep(1.0)  # let torch's OpenMP pool stop spinning before batchgp's process starts
    if exe:
        for backend in ctx["time_backends"]:
            if backend not in first:
                continue
            r = repeats_for(first[backend], args.repeats, args.budget)
            try:
                o = batchgp_elbo(exe, dpath, spath, os.path.join(workdir, f"O_{tag}_{backend}.npz"), backend, r,
                                 args.threads, kernel)
                res["eval"][f"batchgp-{backend}"] = dict(seconds=[float(s) for s in np.ravel(o["seconds"])])
            except CliError as err:
                res["notes"].append(f"batchgp-{backend} timing: {err}")
    for dev in ctx["time_devices"]:
        try:
            import torch
            with gpytorch_settings():
                model = gpytorch_svgp(x, params, dev, kernel)
                tx, ty = as_tensors(dev, x, y)
                sync = ctx["sync"][dev]
                secs = time_repeats(lambda: gpytorch_eval(model, tx, ty, sync), args.repeats, args.budget, sync)
                res["eval"][f"gpytorch-{dev}"] = dict(seconds=secs)
                del model, tx, ty
                if dev == "cuda":
                    torch.cuda.empty_cache()
        except Exception as err:  # noqa: BLE001
            res["notes"].append(f"gpytorch-{dev} timing: {type(err).__name__}: {err}")
    summarize_evals(res["eval"], b, log, "eval ", 14)

    if not args.skip_fit:
        res["fit"] = bench_fits(shape, x, y, params, args, ctx, dpath, spath, workdir, tag, res)
    if not args.keep:
        for f in os.listdir(workdir):
            if tag in f:
                os.remove(os.path.join(workdir, f))
    return res


def summarize_final(elbo):
    import numpy as np
    e = np.asarray(elbo, float)
    return dict(median=float(np.nanmedian(e)), mean=float(np.nanmean(e)), nonfinite=int(np.sum(~np.isfinite(e))))


def bench_fits(shape, x, y, params, args, ctx, dpath, spath, workdir, tag, res):
    import numpy as np
    b, n, m, d = shape
    kernel = args.kernel
    fit = dict(steps=args.steps, lr=args.lr, batch_size=args.batch_size)
    bs = args.batch_size if args.batch_size and args.batch_size < n else None
    exe = ctx["batchgp"]
    if exe:
        for backend in ctx["time_backends"]:
            key = f"batchgp-{backend}"
            try:
                o = batchgp_fit(exe, dpath, spath, os.path.join(workdir, f"F_{tag}_{backend}.npz"), backend,
                                args.threads, kernel, args.steps, args.lr, bs, args.seed)
            except CliError as err:
                fit[key] = dict(error=str(err))
                log(f"  fit {key} failed: {err}")
                continue
            fitted = {k: o[k] for k in PARAM_KEYS}
            iters = np.asarray(o.get("iterations", np.full(b, args.steps)))
            steps_run = max(int(iters.max()), 1) if iters.size else args.steps
            # The final ELBO on the full data, evaluated by GPyTorch (the same evaluator for both
            # systems), at batchgp's jitter where it reports one.
            notes = []
            jr = jitter_rel_from(o, fitted, notes, f"fit {key}")
            final = gpytorch_full_elbo(x, y, fitted, "cpu", kernel, jr)
            entry = dict(time=o["time"], time_from=o["time_from"], wall=o["wall"], per_step=o["time"] / steps_run,
                         steps_run=steps_run, stopped_early=int(np.sum(iters < args.steps)),
                         final_elbo=final.tolist(), final=summarize_final(final), notes=notes)
            if "elbo" in o:
                own = np.asarray(o["elbo"], float)
                entry["reported_elbo"] = own.tolist()
                if bs is None:
                    er = rel_err(own, final)
                    entry["reported_vs_gpytorch_rel"] = float(np.nanmax(er))
                    if np.nanmax(er) > ELBO_RTOL:
                        res["notes"].append(f"fit {key}: its reported elbo differs from GPyTorch's ELBO at its "
                                            f"fitted parameters by {np.nanmax(er):.1e} relative "
                                            f"(member {int(np.nanargmax(er))})")
            if "status" in o:
                st = np.asarray(o["status"])
                entry["failed"] = int(np.sum(st >= 3))
            if "loss" in o:
                loss = np.asarray(o["loss"], float)
                entry["loss_median_per_step"] = np.nanmedian(loss, axis=1).tolist()
            fit[key] = entry
            log(f"  fit {key:<14} {o['time']:8.3f} s ({entry['per_step'] * 1e3:.3g} ms/step)  median final ELBO "
                f"{entry['final']['median']:.6g}")
    for dev in ctx["time_devices"]:
        key = f"gpytorch-{dev}"
        ev = res["eval"].get(key)
        if ev and ev["median"] * args.steps > args.fit_budget:
            est = ev["median"] * args.steps
            fit[key] = dict(skipped=f"estimated {est:.0f} s > --fit-budget {args.fit_budget:g} s")
            log(f"  fit {key} skipped (estimated {est:.0f} s)")
            continue
        try:
            t, loss, fitted = gpytorch_fit(x, y, params, dev, kernel, args.steps, args.lr, bs, args.seed,
                                           ctx["sync"][dev])
            final = gpytorch_full_elbo(x, y, fitted, "cpu", kernel)
            fit[key] = dict(time=t, per_step=t / max(args.steps, 1), final_elbo=final.tolist(),
                            final=summarize_final(final), loss_median_per_step=np.nanmedian(loss, axis=1).tolist())
            log(f"  fit {key:<14} {t:8.3f} s ({t / max(args.steps, 1) * 1e3:.3g} ms/step)  median final ELBO "
                f"{fit[key]['final']['median']:.6g}")
            if dev == "cuda":
                ctx["torch"].cuda.empty_cache()
        except Exception as err:  # noqa: BLE001
            fit[key] = dict(error=f"{type(err).__name__}: {err}")
            log(f"  fit {key} failed: {err}")
    for backend in ctx["time_backends"] if exe else []:
        bk, gk = f"batchgp-{backend}", f"gpytorch-{backend}"
        if "final_elbo" in fit.get(bk, {}) and "final_elbo" in fit.get(gk, {}):
            bg, gp = np.asarray(fit[bk]["final_elbo"]), np.asarray(fit[gk]["final_elbo"])
            fit[f"{bk} vs {gk}"] = dict(
                members=b, batchgp_higher=int(np.sum(bg > gp)),
                at_least_as_good=int(np.sum(bg >= gp - FIT_RTOL * np.abs(gp))),
                median_gain=float(np.nanmedian(bg - gp)), time_ratio=fit[gk]["per_step"] / fit[bk]["per_step"])
    return fit


# ---------------------------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    import numpy as np  # noqa: F401  (after the thread variables)
    import warnings
    import torch
    # torch warns once from linear_operator's interpolation code; nothing here uses sparse tensors.
    warnings.filterwarnings("ignore", message="Sparse invariant checks")
    import gpytorch  # noqa: F401

    torch.set_num_threads(args.threads)
    limit_threadpools(args.threads)

    gpu = torch.cuda.is_available() and not args.no_cuda
    if args.gpu_only and not gpu:
        sys.exit("--gpu-only: no usable GPU (torch.cuda.is_available() is false, or --no-cuda)")
    devices = ["cpu", "cuda"] if gpu else ["cpu"]
    time_devices = ["cuda"] if args.gpu_only else devices
    sync = {"cpu": lambda: None}
    if gpu:
        sync["cuda"] = torch.cuda.synchronize

    exe = check_batchgp(args)
    if exe and not batchgp_has_svgp(exe):
        sys.exit(f"{exe} has no `elbo` command (built before the SVGP existed): rebuild, or --no-batchgp")

    if args.shapes:
        shapes = parse_shapes(args.shapes, 4)
    elif args.quick:
        shapes = QUICK_SHAPES
    else:
        shapes = DEFAULT_SHAPES
    if args.quick:
        args.repeats = min(args.repeats, 3)

    machine = machine_description(args, torch, exe)
    log(machine_line(machine) + f"; kernel {args.kernel}")
    ctx = dict(log=log, batchgp=exe, backends=devices if exe else [], time_backends=time_devices if exe else [],
               torch=torch, torch_devices=devices, time_devices=time_devices, sync=sync)
    results = run_shapes(
        shapes, bench_shape, args, ctx, "batchgp-svgp-", lambda s: f"shape B={s[0]} N={s[1]} M={s[2]} D={s[3]}",
        lambda s, e: dict(shape=list(s), self_check={}, agree=[], eval={}, fit={}, notes=[f"{type(e).__name__}: {e}"],
                          error=True))
    base = output_base(args, machine, "svgp-")
    write_report(results, machine, args, base + ".md", base + ".json")
    log(f"wrote {base}.md, {base}.json")
    bad = [r["shape"] for r in results
           if r.get("error") or any(not a["ok"] for a in r["agree"]) or (r["self_check"] and not r["self_check"]["ok"])]
    if bad:
        log(f"AGREEMENT FAILURES (or errors) at shapes {bad}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
