"""The SVGP benchmark's (svgp.py's) pass criteria and its report: the tolerances each check
passes within, and the markdown table and JSON written from the results.
"""

from harness import GRAD_RTOL, KERNELS, MLL_RTOL, fmt_ms, report_head, write_report_files

ELBO_RTOL = MLL_RTOL  # batchgp vs GPyTorch, per member
SELF_RTOL = 1e-10  # numpy vs GPyTorch ELBO, per member
FD_RTOL = 1e-6  # GPyTorch gradient vs central differences of the numpy ELBO (of the largest component)
FIT_RTOL = 1e-6


def fmt_fit_time(v):
    if not v:
        return "n/a"
    if "error" in v:
        return "error"
    if "skipped" in v:
        return "skipped (" + v["skipped"].split(" >")[0] + ")"
    return f"{v['per_step'] * 1e3:.3g}" + ("" if v.get("time_from", "seconds") == "seconds" else "†")


def write_report(results, machine, args, path_md, path_json):
    nu = KERNELS[args.kernel]
    gp_kernel = "RBFKernel(ard_num_dims=D)" if nu is None else f"MaternKernel(nu={nu}, ard_num_dims=D)"
    lines = report_head(f"Batched SVGP: batchgp vs GPyTorch, kernel {args.kernel}", machine,
                        "both systems (RAYON_NUM_THREADS, torch.set_num_threads)", "",
                        ("python", "numpy", "scipy", "torch", "gpytorch"))
    if machine.get("batchgp_info"):
        lines.append("batchgp info: `" + " / ".join(machine["batchgp_info"].splitlines()) + "`")
    if not machine.get("batchgp_info"):
        lines.append("batchgp: not run (`--no-batchgp` or no binary).")
    lines.append("\nModel (docs/design.md section 11): per member, M inducing inputs Z, whitened q(v) = N(q_mu, "
                 "q_sqrt q_sqrt^T), L L^T = k(Z, Z) + 1e-6 s I; the ELBO is a total over the member's N points. "
                 f"GPyTorch 1.15: `ApproximateGP` with `VariationalStrategy(learn_inducing_locations=True, "
                 f"jitter_val=0)`, subclassed so that 1e-6 s is added to K_ZZ alone before its Cholesky factorisation "
                 "(stock GPyTorch adds an absolute jitter_val to K_ZZ and to the diagonal of K_XX), "
                 f"`CholeskyVariationalDistribution(M, batch_shape=[B])`, `ConstantMean`, `ScaleKernel({gp_kernel})`, "
                 "`GaussianLikelihood` (noise floor 1e-10), all with `batch_shape=[B]`, f64; per-member ELBO = "
                 "`likelihood.expected_log_prob(y, model(x)).sum(-1) - variational_strategy.kl_divergence()`.\n")

    if any(r.get("self_check") for r in results):
        lines.append("## Self-check: GPyTorch against an independent numpy implementation\n")
        lines.append(f"ELBO on every member (pass: relative error <= {SELF_RTOL:g}); gradient of member 0 (GPyTorch "
                     "autograd converted to batchgp's coordinates) against central differences of the numpy ELBO "
                     f"(step 1e-5; pass: <= {FD_RTOL:g} of the largest component).\n")
        lines.append("| shape (B, N, M, D) | result | worst ELBO rel (member) | median ELBO rel | coordinates differenced "
                     "| worst gradient rel | worst coordinate |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in results:
            sc = r.get("self_check")
            if sc:
                lines.append(f"| {tuple(r['shape'])} | {'ok' if sc['ok'] else '**MISMATCH**'} | {sc['elbo_rel']:.1e} "
                             f"({sc['elbo_member']}) | {sc['elbo_rel_median']:.1e} | {sc['fd_coords']} | "
                             f"{sc['fd_rel']:.1e} | {sc['fd_worst']['coord'][0]}{sc['fd_worst']['coord'][1]} |")

    lines.append("\n## One ELBO + gradient evaluation of the whole batch (f64), median wall time in ms\n")
    lines.append("batchgp: `batchgp elbo --repeat R` (one warm-up, R timed evaluations inside the process, I/O "
                 "excluded). GPyTorch: forward + per-member ELBO + `.sum().backward()`. Ratios > 1 mean batchgp is "
                 f"faster. Agreement: batchgp's ELBO within {ELBO_RTOL:g} relative and every gradient array (z, q_mu, "
                 f"q_sqrt, log lengthscale, log outputscale, log noise, mean) within {GRAD_RTOL:g} of the member's "
                 "largest component of GPyTorch's (on the CPU), on every member.\n")
    lines.append("| shape (B, N, M, D) | backend | batchgp | GPyTorch | GPyTorch / batchgp | batchgp GP/s | agreement |")
    lines.append("|---|---|---|---|---|---|---|")
    for r in results:
        e = r["eval"]
        agree = ("n/a" if not r["agree"] else "ok" if all(a["ok"] for a in r["agree"]) else "**MISMATCH**")
        for backend in ("cpu", "cuda"):
            bg, gp = e.get(f"batchgp-{backend}"), e.get(f"gpytorch-{backend}")
            if bg is None and gp is None:
                continue
            ratio = f"{gp['median'] / bg['median']:.3g}x" if bg and gp else "n/a"
            rate = f"{bg['evals_per_s']:.3g}" if bg else "n/a"
            lines.append(f"| {tuple(r['shape'])} | {backend} | {fmt_ms(bg)} | {fmt_ms(gp)} | {ratio} | {rate} | {agree} |")
    if any(r["agree"] for r in results):
        lines.append("\nAgreement details (worst member):\n")
        for r in results:
            for a in r["agree"]:
                lines.append(f"- {tuple(r['shape'])} {a['pair']}: {'ok' if a['ok'] else 'MISMATCH'}, ELBO rel "
                             f"{a['elbo_rel']:.1e} (member {a['elbo_member']}), gradient rel {a['grad_rel']:.1e} "
                             f"(member {a['grad_member']}); by array: "
                             + ", ".join(f"{k[5:]} {v:.1e}" for k, v in a["per_array"].items()))
                if not a["ok"]:
                    lines.append(f"  - ELBO {a['elbo_values']}"
                                 + (f"; against GPyTorch with the jitter held constant: "
                                    f"{'ok' if a['vs_jitter_held_constant']['ok'] else 'no'} (gradient rel "
                                    f"{a['vs_jitter_held_constant']['grad_rel']:.1e})"
                                    if "vs_jitter_held_constant" in a else ""))
    jt = [(r["shape"], r["jitter_gradient_term"]) for r in results if r.get("jitter_gradient_term")]
    if jt:
        lines.append("\nThe jitter's share of the gradient (d(1e-6 s)/d log s through K_ZZ), largest over members, "
                     "relative to the member's largest gradient component: "
                     + "; ".join(f"{tuple(s)} {t['max_rel_to_member_largest']:.1e}" for s, t in jt) + ".")

    if any(r["fit"] for r in results):
        f0 = next(r["fit"] for r in results if r["fit"])
        lines.append(f"\n## Fits: {f0['steps']} Adam steps, lr {f0['lr']:g}, "
                     + (f"mini-batches of {f0['batch_size']} per member" if f0["batch_size"] else "full data")
                     + ", same start\n")
        lines.append("batchgp: `batchgp fit --model svgp --optimizer adam --steps T --lr R"
                     + (" --batch-size S" if f0["batch_size"] else "") + "` (time from the fit's `seconds`; † = "
                     "subprocess wall time, process start and I/O included; per step = time / the most steps any "
                     "member ran). GPyTorch: `torch.optim.Adam(model.parameters(), lr)` on the sum over members "
                     "of the negative per-member ELBO, in GPyTorch's own parametrisation (softplus raw "
                     "hyperparameters), so the two runs take different paths from the same start"
                     + ("; each member draws its own S points per step, data term x N/S" if f0["batch_size"] else "")
                     + ". Final ELBO: on the full data, evaluated by GPyTorch at each system's fitted parameters. "
                     "'batchgp higher': members where batchgp's final ELBO is above GPyTorch's.\n")
        lines.append("| shape (B, N, M, D) | backend | batchgp ms/step | GPyTorch ms/step | GPyTorch / batchgp | "
                     "median final ELBO batchgp | median final ELBO GPyTorch | batchgp higher |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for r in results:
            f = r["fit"]
            for backend in ("cpu", "cuda"):
                bf, gf = f.get(f"batchgp-{backend}"), f.get(f"gpytorch-{backend}")
                if bf is None and gf is None:
                    continue
                vs = f.get(f"batchgp-{backend} vs gpytorch-{backend}")
                lines.append(f"| {tuple(r['shape'])} | {backend} | {fmt_fit_time(bf)} | {fmt_fit_time(gf)} | "
                             + (f"{vs['time_ratio']:.3g}x" if vs else "n/a") + " | "
                             + (f"{bf['final']['median']:.6g}" if bf and "final" in bf else "n/a") + " | "
                             + (f"{gf['final']['median']:.6g}" if gf and "final" in gf else "n/a") + " | "
                             + (f"{vs['batchgp_higher']}/{vs['members']}" if vs else "n/a") + " |")
    notes = [(r["shape"], n) for r in results for n in r["notes"]]
    notes += [(r["shape"], n) for r in results for k, v in r["fit"].items() if isinstance(v, dict)
              for n in v.get("notes", [])]
    write_report_files(lines, notes, machine, results, args, path_md, path_json)
