#!/usr/bin/env python3
"""Side-by-side benchmark of batchgp against GPyTorch and scikit-learn, in one run.

For every shape (B, N, D) it generates one data set (seeded numpy), checks that the three
libraries agree on the exact MLL and its gradient at the same hyperparameters, then times one
batched evaluation of MLL plus gradient in each, and (unless --skip-fit) times fits to
convergence and compares the final objectives. --kernel picks the covariance kernel (rbf,
matern12, matern32 or matern52) for every system; the data are the same for every kernel. It writes a markdown table, a JSON file with
every number, and a PNG plot under --out-dir (benches/results by default).

Not part of CI. See README.md beside this file for the set-up and the GPU machine.
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# harness imports only the standard library at module level (numpy and torch inside functions), so
# importing it here does not fix the thread counts before set_threads runs.
from harness import (  # noqa: E402
    GRAD_RTOL,
    KERNELS,
    MLL_RTOL,
    CliError,
    add_common_args,
    batchgp_evaluate,
    batchgp_fit_run,
    check_agreement,
    check_batchgp,
    finish_args,
    fmt_ms,
    gpytorch_grad_log,
    gpytorch_settings,
    limit_threadpools,
    log,
    machine_description,
    machine_line,
    output_base,
    parse_shapes,
    repeats_for,
    report_head,
    run_shapes,
    save_npz,
    set_threads,
    smooth_targets,
    summarize_evals,
    time_repeats,
    write_report_files,
)
from exact_peers import (  # noqa: E402
    SK_BOUNDS,
    gpytorch_adam_fit,
    gpytorch_eval,
    gpytorch_model,
    sk_eval,
    sk_fit,
    sk_models,
)

CPU_SHAPES = [(4, 264, 3), (100, 264, 3), (1000, 50, 3), (10, 1000, 3), (10000, 32, 3)]
GPU_SHAPES = [(1000, 256, 8), (100000, 32, 3)]
QUICK_SHAPES = [(4, 64, 3), (50, 32, 2)]

FIT_RTOL = 1e-6


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", help="comma-separated BxNxD list, e.g. 100x264x3,1000x50x3 "
                   "(default: the CPU list, plus the GPU list when torch sees a GPU)")
    p.add_argument("--kernel", default="rbf", choices=sorted(KERNELS),
                   help="covariance kernel for every system: batchgp --kernel K (and the kernel in P.npz), "
                   "GPyTorch ScaleKernel(RBFKernel or MaternKernel(nu), ARD), scikit-learn "
                   "ConstantKernel * (RBF or Matern(nu)) with one length scale per dimension (default rbf)")
    p.add_argument("--quick", action="store_true", help="small shapes and 3 repeats: a smoke run")
    p.add_argument("--skip-fit", action="store_true", help="time evaluations only, no fits")
    p.add_argument("--tag", default=None, help="file name prefix (default cpu or gpu, then the kernel unless "
                   "rbf, then the date)")
    p.add_argument("--no-batchgp", action="store_true", help="leave batchgp out (Python side only)")
    p.add_argument("--no-gpytorch", action="store_true")
    p.add_argument("--no-sklearn", action="store_true")
    p.add_argument("--gpu-only", action="store_true", help="time batchgp and GPyTorch on the GPU alone (no CPU runs)")
    p.add_argument("--sklearn-max-members", type=int, default=2000,
                   help="time scikit-learn's per-member loop on at most this many members and scale "
                   "the time to B (marked * in the table)")
    p.add_argument("--sklearn-fit-members", type=int, default=200,
                   help="fit at most this many members with scikit-learn (time scaled to B, marked *)")
    p.add_argument("--check-members", type=int, default=64,
                   help="members checked against scikit-learn for agreement (all for GPyTorch)")
    p.add_argument("--adam-iters", type=int, default=100)
    p.add_argument("--fit-budget", type=float, default=90.0,
                   help="seconds a peer's fit may take per shape, estimated from its evaluation time: "
                   "GPyTorch's Adam is skipped past it, scikit-learn fits fewer members (batchgp always runs)")
    add_common_args(p)
    return finish_args(p.parse_args(argv))


# ---------------------------------------------------------------------------------------------
# data


def make_problem(shape, seed):
    """x (B, N, D) uniform in [0, 1], y a smooth function per member plus noise, and per-member
    hyperparameters near the ones that made y (P) and a data-driven start for fits (I, batchgp's
    own default-start rule, DESIGN.md section 7)."""
    import numpy as np
    b, n, d = shape
    rng = np.random.default_rng([seed, b, n, d])
    x = rng.uniform(0.0, 1.0, size=(b, n, d))
    y = smooth_targets(rng, x, (2.0, 6.0))
    params = dict(
        log_lengthscale=np.log(rng.uniform(0.2, 0.8, size=(b, d))),
        log_outputscale=np.log(rng.uniform(0.5, 1.5, size=b)),
        log_noise=np.log(rng.uniform(0.005, 0.05, size=b)),
        mean=y.mean(1) + rng.uniform(-0.2, 0.2, size=b),
    )
    var = y.var(1)
    init = dict(
        log_lengthscale=np.log(x.std(1)),
        log_outputscale=np.log(var),
        log_noise=np.log(np.maximum(var / 10, 1e-6)),
        mean=y.mean(1),
    )
    return x, y, params, init


# ---------------------------------------------------------------------------------------------
# batchgp (through its CLI)


def cli_kernel_args(exe, kernel):
    """`--kernel K` when the binary has the option; a binary from before kernels existed computes
    rbf only, so for rbf it gets no option (and P.npz no kernel entry), otherwise it is refused."""
    r = subprocess.run([exe, "mll", "--help"], capture_output=True, text=True)
    if "--kernel" in r.stdout:
        return ["--kernel", kernel]
    if kernel != "rbf":
        raise SystemExit(f"{exe} has no --kernel option (built before kernels existed); it can run rbf only")
    return []


def batchgp_mll(exe, dpath, ppath, opath, backend, repeat, threads, kernel_args):
    return batchgp_evaluate(exe, "mll", dpath, ppath, opath, backend, repeat, threads, kernel_args)


def batchgp_fit(exe, dpath, ipath, fpath, backend, threads, kernel_args, fix=None, bounds=None):
    args = [exe, "fit", "--data", dpath, "--init", ipath, "--out", fpath, "--backend", backend] + kernel_args
    if fix:
        args += ["--fix", fix]
    if bounds:
        args += ["--bounds", f"{bounds[0]:g},{bounds[1]:g}"]
    return batchgp_fit_run(args, threads, fpath)


# ---------------------------------------------------------------------------------------------
# agreement


def grad_matrix(g, keys=("grad_log_lengthscale", "grad_log_outputscale", "grad_log_noise", "grad_mean")):
    """(B, P) from the named gradient arrays (present keys only)."""
    import numpy as np
    cols = []
    for k in keys:
        if k in g:
            v = np.asarray(g[k], float)
            cols.append(v.reshape(v.shape[0], -1))
    return np.concatenate(cols, axis=1)


# ---------------------------------------------------------------------------------------------
# one shape


def bench_shape(shape, args, ctx, workdir):
    import numpy as np
    b, n, d = shape
    res = dict(shape=list(shape), eval={}, agree=[], fit={}, notes=[])
    x, y, params, init = make_problem(shape, args.seed)
    tag = f"b{b}_n{n}_d{d}"
    dpath = os.path.join(workdir, f"D_{tag}.npz")
    ppath = os.path.join(workdir, f"P_{tag}.npz")
    ipath = os.path.join(workdir, f"I_{tag}.npz")
    save_npz(dpath, x=x, y=y)
    kernel = args.kernel
    # The kernel goes into P and I as well as on the command line (they must agree), except for a
    # binary from before kernels existed (rbf only; see cli_kernel_args).
    in_files = dict(kernel=kernel) if ctx["kernel_args"] else {}
    save_npz(ppath, **params, **in_files)
    save_npz(ipath, **init, **in_files)

    # --- values for the agreement check (and the first, untimed, evaluations) ---
    ref = {}
    exe = ctx["batchgp"]
    if exe:
        for backend in ctx["backends"]:
            try:
                o = batchgp_mll(exe, dpath, ppath, os.path.join(workdir, f"O_{tag}_{backend}.npz"), backend, 1,
                                args.threads, ctx["kernel_args"])
                ref[f"batchgp-{backend}"] = (o["mll"], grad_matrix(o), o)
                bad = np.flatnonzero(np.asarray(o.get("status", np.zeros(b))) >= 3)
                if bad.size:
                    res["notes"].append(f"batchgp-{backend}: {bad.size} members failed (status 3), first {bad[:5]}")
            except CliError as e:
                res["notes"].append(f"batchgp-{backend}: {e}")
                log(f"  batchgp-{backend} failed: {e}")
    torch = ctx["torch"]
    for dev in ctx["torch_devices"]:
        try:
            with gpytorch_settings():
                model, mll, tx, ty = gpytorch_model(x, y, dev, params, kernel)
                tot = gpytorch_eval(model, mll, tx, ty, n, ctx["sync"][dev])
                ref[f"gpytorch-{dev}"] = (tot.detach().cpu().numpy(), grad_matrix(gpytorch_grad_log(model)), None)
        except Exception as e:  # noqa: BLE001 (report, go on with the other systems)
            res["notes"].append(f"gpytorch-{dev}: {type(e).__name__}: {e}")
            log(f"  gpytorch-{dev} failed: {e}")
    sk_members = list(range(min(b, args.check_members)))
    if not args.no_sklearn:
        gps, thetas = sk_models(x, y, params, sk_members, kernel)
        vals = sk_eval(gps, thetas)
        sk_mll = np.array([v[0] for v in vals])
        sk_grad = np.array([np.concatenate([g[1][1:1 + d], g[1][:1], g[1][1 + d:2 + d]]) for g in vals])
        ref["sklearn"] = (sk_mll, sk_grad, None)

    # --- agreement: every system against the first batchgp backend, or pairwise without it ---
    names = [k for k in ref if k != "sklearn"]
    base = names[0] if names else None
    for other in names[1:]:
        res["agree"].append(check_agreement(f"{base} vs {other}", ref[base][0], ref[other][0], ref[base][1], ref[other][1]))
    if "sklearn" in ref and base is not None:
        m = len(sk_members)
        res["agree"].append(check_agreement(f"{base} vs sklearn (members 0..{m - 1}, no mean gradient)", ref[base][0][:m],
                                    ref["sklearn"][0], ref[base][1][:m, :d + 2], ref["sklearn"][1]))
    for a in res["agree"]:
        log(f"  agree {a['pair']}: {'ok' if a['ok'] else 'MISMATCH'} mll rel {a['mll_rel']:.1e} "
            f"(member {a['mll_member']}), grad rel {a['grad_rel']:.1e} (member {a['grad_member']})")

    # --- timings ---
    # Let the peers' OpenMP pools (used by the agreement checks just above) stop spinning
    # before batchgp's process starts: spinning threads would share its two cores.
    time.sleep(1.0)
    if exe:
        for backend in ctx["backends"]:
            if f"batchgp-{backend}" not in ref:
                continue
            first = float(np.max(ref[f"batchgp-{backend}"][2].get("seconds", [1.0])))
            r = repeats_for(first, args.repeats, args.budget)
            try:
                o = batchgp_mll(exe, dpath, ppath, os.path.join(workdir, f"O_{tag}_{backend}.npz"), backend, r,
                                args.threads, ctx["kernel_args"])
                res["eval"][f"batchgp-{backend}"] = dict(seconds=[float(s) for s in np.ravel(o["seconds"])])
            except CliError as e:
                res["notes"].append(f"batchgp-{backend} timing: {e}")
    for dev in ctx["torch_devices"]:
        if f"gpytorch-{dev}" not in ref:
            continue
        try:
            with gpytorch_settings():
                model, mll, tx, ty = gpytorch_model(x, y, dev, params, kernel)
                sync = ctx["sync"][dev]
                secs = time_repeats(lambda: gpytorch_eval(model, mll, tx, ty, n, sync), args.repeats, args.budget, sync)
                res["eval"][f"gpytorch-{dev}"] = dict(seconds=secs)
                del model, mll, tx, ty
                if dev == "cuda":
                    torch.cuda.empty_cache()
        except Exception as e:  # noqa: BLE001
            res["notes"].append(f"gpytorch-{dev} timing: {type(e).__name__}: {e}")
    if not args.no_sklearn:
        members = list(range(min(b, args.sklearn_max_members)))
        gps, thetas = sk_models(x, y, params, members, kernel)
        secs = time_repeats(lambda: sk_eval(gps, thetas), args.repeats, args.budget, lambda: None)
        scale = b / len(members)
        res["eval"]["sklearn"] = dict(seconds=[s * scale for s in secs], scaled_from=len(members) if scale > 1 else None)
        del gps
    summarize_evals(res["eval"], b, log)

    # --- fits ---
    if not args.skip_fit:
        res["fit"] = bench_fits(shape, x, y, init, args, ctx, dpath, ipath, workdir, tag, res["eval"])
    for f in (dpath, ppath, ipath):
        if not args.keep:
            os.remove(f)
    return res


def bench_fits(shape, x, y, init, args, ctx, dpath, ipath, workdir, tag, evals):
    import numpy as np
    b, n, d = shape
    fit = {}
    exe = ctx["batchgp"]
    # batchgp (mean fixed) against scikit-learn's L-BFGS-B, same start, same model
    if exe:
        for backend in ctx["backends"]:
            for fix in ("mean", None):
                key = f"batchgp-{backend}" + ("-fixmean" if fix else "")
                try:
                    o = batchgp_fit(exe, dpath, ipath, os.path.join(workdir, f"F_{tag}_{key}.npz"), backend,
                                    args.threads, ctx["kernel_args"], fix, SK_BOUNDS if fix else None)
                    st = np.asarray(o.get("status", np.zeros(b)))
                    fit[key] = dict(time=o["time"], wall=o["wall"], objective=o["objective"].tolist(),
                                    iterations=np.asarray(o.get("iterations", [])).tolist(),
                                    maxiter=int(np.sum(st == 2)), failed=int(np.sum(st == 3)))
                    log(f"  fit {key:<22} {o['time']:8.3f} s  mean objective {np.nanmean(o['objective']):.6g}")
                except CliError as e:
                    fit[key] = dict(error=str(e))
                    log(f"  fit {key} failed: {e}")
    if not args.no_sklearn:
        cap = args.sklearn_fit_members
        if "sklearn" in evals:  # about 40 evaluations per member for L-BFGS-B on these problems
            per_member = evals["sklearn"]["median"] / b
            cap = min(cap, max(5, int(args.fit_budget / (40 * per_member))))
        members = list(range(min(b, cap)))
        t, objs = sk_fit(x, y, init, members, args.kernel)
        fit["sklearn"] = dict(time=t * b / len(members), scaled_from=len(members) if len(members) < b else None,
                              objective=objs.tolist())
        log(f"  fit sklearn L-BFGS-B       {fit['sklearn']['time']:8.3f} s  (members 0..{len(members) - 1})")
        for backend in ctx["backends"]:
            k = f"batchgp-{backend}-fixmean"
            if k in fit and "objective" in fit[k]:
                bg = np.asarray(fit[k]["objective"])[: len(members)]
                ok = bg >= objs - FIT_RTOL * np.abs(objs)
                worst = int(np.argmin(bg - objs))
                fit[f"{k} vs sklearn"] = dict(members=len(members), at_least_as_good=int(ok.sum()),
                                              worst_member=worst, worst_diff=float(bg[worst] - objs[worst]),
                                              worst_values=[float(bg[worst]), float(objs[worst])])
    for dev in ctx["torch_devices"]:
        ev = evals.get(f"gpytorch-{dev}")
        if ev and ev["median"] * args.adam_iters > args.fit_budget:
            est = ev["median"] * args.adam_iters
            fit[f"gpytorch-{dev}"] = dict(skipped=f"estimated {est:.0f} s > --fit-budget {args.fit_budget:g} s")
            log(f"  fit gpytorch-{dev} skipped (estimated {est:.0f} s)")
            continue
        try:
            t, final, _ = gpytorch_adam_fit(x, y, init, dev, args.adam_iters, ctx["sync"][dev], args.kernel)
            fit[f"gpytorch-{dev}"] = dict(time=t, objective=final.tolist())
            log(f"  fit gpytorch-{dev} Adam {args.adam_iters:<8} {t:8.3f} s  mean objective {np.nanmean(final):.6g}")
            if dev == "cuda":
                ctx["torch"].cuda.empty_cache()
            for backend in ctx["backends"]:
                k = f"batchgp-{backend}"
                if k in fit and "objective" in fit[k]:
                    bg = np.asarray(fit[k]["objective"])
                    ok = bg >= final - FIT_RTOL * np.abs(final)
                    fit[f"{k} vs gpytorch-{dev}"] = dict(members=b, at_least_as_good=int(ok.sum()),
                                                        mean_gain=float(np.nanmean(bg - final)))
        except Exception as e:  # noqa: BLE001
            fit[f"gpytorch-{dev}"] = dict(error=f"{type(e).__name__}: {e}")
    return fit


# ---------------------------------------------------------------------------------------------
# report


def fmt_ratio(a, b):
    if a is None or b is None:
        return "n/a"
    r = a["median"] / b["median"]
    return f"{r:.3g}x"


def write_report(results, machine, args, path_md, path_json, path_png):
    lines = report_head(f"batchgp vs GPyTorch vs scikit-learn, kernel {args.kernel}", machine,
                        "every system (RAYON_NUM_THREADS, torch.set_num_threads, BLAS)",
                        " (other processes on the machine slow every system alike; absolute times are then "
                        "inflated, ratios less so)", ("python", "numpy", "scipy", "sklearn", "torch", "gpytorch"))
    if machine.get("batchgp_info"):
        lines.append("batchgp info: `" + " / ".join(machine["batchgp_info"].splitlines()) + "`\n")
    nu = KERNELS[args.kernel]
    gp_kernel = "RBFKernel(ard_num_dims=D)" if nu is None else f"MaternKernel(nu={nu}, ard_num_dims=D)"
    sk_kernel_name = "RBF" if nu is None else f"Matern(nu={nu})"
    lines.append(f"\n## One MLL + gradient evaluation of the whole batch (f64, kernel {args.kernel}), median wall "
                 "time in ms\n")
    lines.append(f"batchgp: `batchgp mll --repeat R{' ' + ' '.join(args.kernel_args) if args.kernel_args else ''}` "
                 "(one warm-up, R timed evaluations inside the process, I/O "
                 f"excluded). GPyTorch 1.15 batch mode: `ScaleKernel({gp_kernel})`, forward + "
                 "`ExactMarginalLogLikelihood` x N + backward, "
                 "Cholesky forced (`max_cholesky_size(1e9)`). scikit-learn: `ConstantKernel * "
                 f"{sk_kernel_name} (one length scale per dimension) + WhiteKernel`, `log_marginal_likelihood(theta, "
                 "eval_gradient=True)` in a loop over members (* = timed on a prefix of members, scaled to B). "
                 "Ratios > 1 mean batchgp is faster. Agreement: every system's MLL within "
                 f"{MLL_RTOL:g} relative and gradient within {GRAD_RTOL:g} (relative to the member's largest "
                 "component) of batchgp's, over all members (scikit-learn: the first "
                 f"{args.check_members}, no mean gradient).\n")
    lines.append("| shape (B, N, D) | backend | batchgp | GPyTorch | scikit-learn | GPyTorch / batchgp | "
                 "sklearn / batchgp | batchgp GP/s | agreement |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        e = r["eval"]
        agree = "ok" if r["agree"] and all(a["ok"] for a in r["agree"]) else ("n/a" if not r["agree"] else "**MISMATCH**")
        for backend in ("cpu", "cuda"):
            bg = e.get(f"batchgp-{backend}")
            gp = e.get(f"gpytorch-{backend}")
            if bg is None and gp is None:
                continue
            sk = e.get("sklearn")
            lines.append(f"| {tuple(r['shape'])} | {backend} | {fmt_ms(bg)} | {fmt_ms(gp)} | {fmt_ms(sk)} | "
                         f"{fmt_ratio(gp, bg)} | {fmt_ratio(sk, bg)} | "
                         f"{bg['evals_per_s']:.3g} | {agree} |" if bg else
                         f"| {tuple(r['shape'])} | {backend} | n/a | {fmt_ms(gp)} | {fmt_ms(sk)} | n/a | n/a | n/a | {agree} |")
    lines.append("\nAgreement details (worst member):\n")
    for r in results:
        for a in r["agree"]:
            lines.append(f"- {tuple(r['shape'])} {a['pair']}: {'ok' if a['ok'] else 'MISMATCH'}, MLL rel "
                         f"{a['mll_rel']:.1e} (member {a['mll_member']}), gradient rel {a['grad_rel']:.1e} "
                         f"(member {a['grad_member']})")
            if not a["ok"]:
                lines.append(f"  - MLL {a['mll_values']}; gradient {a['grad_values']}")
    if any(r["fit"] for r in results):
        lines.append("\n## Fits to convergence (f64), from the same data-driven start\n")
        lines.append("batchgp: `batchgp fit` L-BFGS (time from the fit's `seconds`, I/O excluded), once with every "
                     "hyperparameter free and once with `--fix mean`. scikit-learn: `GaussianProcessRegressor` "
                     "L-BFGS-B per member, `n_restarts_optimizer=0`, on y - mean (its model has no mean), bounds "
                     "widened to (1e-12, 1e12); compared with batchgp `--fix mean --bounds 1e-12,1e12` (the same boxed problem). GPyTorch: Adam lr 0.1, "
                     f"{args.adam_iters} iterations, every hyperparameter free; compared with batchgp free. "
                     "'>= peer' counts members whose final batchgp objective is >= the peer's - "
                     f"{FIT_RTOL:g} |peer|; '(k at max-iter)': members where batchgp stopped at its iteration "
                     "limit (status 2). * = scikit-learn fitted a prefix of the members, time scaled to B.\n")
        lines.append("| shape | backend | batchgp s (free) | GPyTorch Adam s | batchgp >= GPyTorch | batchgp s (mean fixed) "
                     "| sklearn s | batchgp >= sklearn | worst batchgp - sklearn |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for r in results:
            f = r["fit"]
            for backend in ("cpu", "cuda"):
                bf, bfm = f.get(f"batchgp-{backend}"), f.get(f"batchgp-{backend}-fixmean")
                gp = f.get(f"gpytorch-{backend}")
                if bf is None and gp is None:
                    continue
                sk = f.get("sklearn")
                vs_gp = f.get(f"batchgp-{backend} vs gpytorch-{backend}")
                vs_sk = f.get(f"batchgp-{backend}-fixmean vs sklearn")

                def t(v):
                    if not v:
                        return "n/a"
                    if "error" in v:
                        return "error"
                    if "skipped" in v:
                        return "skipped (" + v["skipped"].split(" >")[0] + ")"
                    extra = f" ({v['maxiter']} at max-iter)" if v.get("maxiter") else ""
                    extra += f" ({v['failed']} failed)" if v.get("failed") else ""
                    return f"{v['time']:.3g}" + ("*" if v.get("scaled_from") else "") + extra
                lines.append(
                    f"| {tuple(r['shape'])} | {backend} | {t(bf)} | {t(gp)} | "
                    + (f"{vs_gp['at_least_as_good']}/{vs_gp['members']}" if vs_gp else "n/a") + f" | {t(bfm)} | "
                    + (t(sk) if backend == "cpu" else "(cpu) " + t(sk)) + " | "
                    + (f"{vs_sk['at_least_as_good']}/{vs_sk['members']}" if vs_sk else "n/a") + " | "
                    + (f"{vs_sk['worst_diff']:.2e} (member {vs_sk['worst_member']})" if vs_sk else "n/a") + " |")
    notes = [(r["shape"], n) for r in results for n in r["notes"]]
    write_report_files(lines, notes, machine, results, args, path_md, path_json)
    plot(results, machine, path_png)


def plot(results, machine, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    systems = sorted({k for r in results for k in r["eval"]})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    markers = dict(zip(systems, "os^Dv<>p"))
    for ax, idx, label in ((axes[0], 0, "B (members)"), (axes[1], 1, "N (points per member)")):
        for s in systems:
            pts = sorted((r["shape"][idx], r["eval"][s]["evals_per_s"], r["shape"]) for r in results if s in r["eval"])
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[s], linestyle="none", label=s, ms=8)
            for p in pts:
                ax.annotate(f"{p[2][0]}x{p[2][1]}x{p[2][2]}", (p[0], p[1]), fontsize=6, alpha=0.6,
                            xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("GP evaluations (MLL + gradient) per second")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    title = f"{machine['cpu']}, {machine['threads']} threads" + (f", {machine['gpu']}" if machine.get("gpu") else "")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    import numpy as np  # noqa: F401  (after the thread variables)

    torch = None
    devices = []
    sync = {"cpu": lambda: None}
    if not args.no_gpytorch:
        import torch as torch_mod
        import gpytorch  # noqa: F401
        torch = torch_mod
        torch.set_num_threads(args.threads)
        devices = [] if args.gpu_only else ["cpu"]
        if torch.cuda.is_available() and not args.no_cuda:
            devices.append("cuda")
            sync["cuda"] = torch.cuda.synchronize
    limit_threadpools(args.threads)

    exe = check_batchgp(args)
    args.kernel_args = cli_kernel_args(exe, args.kernel) if exe else []
    gpu = torch is not None and torch.cuda.is_available() and not args.no_cuda
    backends = ["cpu", "cuda"] if gpu else ["cpu"]
    if args.gpu_only:
        if not gpu:
            sys.exit("--gpu-only: no usable GPU (torch.cuda.is_available() is false, or --no-cuda)")
        backends = ["cuda"]

    if args.shapes:
        shapes = parse_shapes(args.shapes)
    elif args.quick:
        shapes = QUICK_SHAPES
    else:
        shapes = CPU_SHAPES + (GPU_SHAPES if gpu else [])
    if args.quick:
        args.repeats = min(args.repeats, 3)

    machine = machine_description(args, torch, exe)
    log(machine_line(machine) + f"; kernel {args.kernel}")
    ctx = dict(log=log, batchgp=exe, backends=backends if exe else [], torch=torch, torch_devices=devices, sync=sync,
               kernel_args=args.kernel_args)
    results = run_shapes(
        shapes, bench_shape, args, ctx, "batchgp-peers-", lambda s: f"shape B={s[0]} N={s[1]} D={s[2]}",
        lambda s, e: dict(shape=list(s), eval={}, agree=[], fit={}, notes=[f"{type(e).__name__}: {e}"]))
    base = output_base(args, machine, "")
    write_report(results, machine, args, base + ".md", base + ".json", base + ".png")
    log(f"wrote {base}.md, {base}.json, {base}.png")
    bad = [r["shape"] for r in results if any(not a["ok"] for a in r["agree"])]
    if bad:
        log(f"AGREEMENT FAILURES at shapes {bad}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
