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
import datetime
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

# compare.py imports only the standard library at module level (numpy and torch inside
# functions), so importing it here does not fix the thread counts before set_threads runs.
from compare import (  # noqa: E402
    GRAD_RTOL,
    KERNELS,
    MLL_RTOL,
    CliError,
    compact_json,
    compare,
    gpytorch_base_kernel,
    gpytorch_grad_log,
    gpytorch_settings,
    gpytorch_values,
    machine_description,
    median,
    parse_shapes,
    rel_err,
    repeats_for,
    run_cli,
    save_npz,
    set_gpytorch_params,
    set_threads,
    time_repeats,
)

DEFAULT_SHAPES = [(64, 5000, 64, 1), (1024, 1000, 32, 3)]
QUICK_SHAPES = [(8, 200, 16, 1), (16, 100, 8, 2)]

# K_ZZ + JITTER_REL * s I (f64), the model's jitter (docs/design.md section 11).
JITTER_REL = 1e-6
ELBO_RTOL = MLL_RTOL  # batchgp vs GPyTorch, per member
SELF_RTOL = 1e-10  # numpy vs GPyTorch ELBO, per member
FD_RTOL = 1e-6  # GPyTorch gradient vs central differences of the numpy ELBO (of the largest component)
FIT_RTOL = 1e-6

# Z starts on data points, and Matérn 1/2 and 3/2 are not twice differentiable at r = 0: the
# gradient with respect to z there is a convention (Matérn 1/2) and central differences are
# inaccurate (Matérn 3/2), so the checks below would test conventions, not the model.
SVGP_KERNELS = ("rbf", "matern52")

PARAM_KEYS = ("z", "q_mu", "q_sqrt", "log_lengthscale", "log_outputscale", "log_noise", "mean")
GRAD_KEYS = tuple("grad_" + k for k in PARAM_KEYS)


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
    p.add_argument("--repeats", type=int, default=7, help="timed evaluations per system and shape (median "
                   "reported; fewer for slow shapes, see --budget)")
    p.add_argument("--budget", type=float, default=20.0,
                   help="seconds of timed evaluations per system and shape at most (never fewer than 3)")
    p.add_argument("--fit-budget", type=float, default=300.0,
                   help="seconds GPyTorch's fit may take per shape and device, estimated from its "
                   "evaluation time x --steps; it is skipped past that (batchgp always runs)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for both systems (RAYON_NUM_THREADS, torch.set_num_threads, BLAS); "
                   "default: RAYON_NUM_THREADS or all cores")
    p.add_argument("--quick", action="store_true", help="tiny shapes, 3 repeats, 20 steps: a smoke run")
    p.add_argument("--skip-fit", action="store_true", help="agreement and evaluation timings only")
    p.add_argument("--self-check", dest="self_check", action="store_true", default=True,
                   help="check GPyTorch against the numpy implementation (default: on)")
    p.add_argument("--no-self-check", dest="self_check", action="store_false")
    p.add_argument("--fd-coords", type=int, default=300,
                   help="coordinates of member 0 checked by central differences in the self-check "
                   "(all hyperparameters plus a seeded random subset of z, q_mu, q_sqrt; default 300)")
    p.add_argument("--out-dir", default=os.path.join(ROOT, "benches", "results"))
    p.add_argument("--tag", default=None, help="file name prefix (default svgp-<cpu|gpu>[-quick][-kernel]-<date>)")
    p.add_argument("--batchgp", default=os.path.join(ROOT, "target", "release", "batchgp"),
                   help="path of the batchgp binary (default target/release/batchgp)")
    p.add_argument("--no-batchgp", action="store_true", help="leave batchgp out (GPyTorch and the self-check only)")
    p.add_argument("--no-cuda", action="store_true", help="CPU only even when torch sees a GPU")
    p.add_argument("--gpu-only", action="store_true",
                   help="time and fit on the GPU alone (the agreement still uses GPyTorch on the CPU as reference)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the .npz files (printed path)")
    a = p.parse_args(argv)
    if a.threads is None:
        a.threads = int(os.environ.get("RAYON_NUM_THREADS", "0")) or os.cpu_count()
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
        freq = rng.uniform(6.0, 12.0, size=(b, 1))
        phase = rng.uniform(0.0, 2 * np.pi, size=(b, 1))
        f = np.sin(freq * x[..., 0] + phase)
    else:
        x = rng.uniform(0.0, 1.0, size=(b, n, d))
        freq = rng.uniform(2.0, 6.0, size=(b, d))
        phase = rng.uniform(0.0, 2 * np.pi, size=(b, d))
        weight = 1.0 / (1.0 + np.arange(d))
        f = (weight * np.sin(freq[:, None, :] * x + phase[:, None, :])).sum(-1)
    y = f + 0.1 * rng.standard_normal((b, n)) + rng.uniform(-1, 1, size=(b, 1))
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
# numpy reference (the model of docs/design.md section 11, written independently of GPyTorch)


def np_kernel(a, c, log_ls, log_s, kernel):
    """k(a, c) for one member: a (n, D), c (m, D) -> (n, m)."""
    import numpy as np
    diff = (a[:, None, :] - c[None, :, :]) / np.exp(log_ls)
    r2 = (diff * diff).sum(-1)
    s = np.exp(log_s)
    nu = KERNELS[kernel]
    if nu is None:
        return s * np.exp(-0.5 * r2)
    r = np.sqrt(r2)
    if nu == 0.5:
        return s * np.exp(-r)
    if nu == 1.5:
        return s * (1 + math.sqrt(3) * r) * np.exp(-math.sqrt(3) * r)
    return s * (1 + math.sqrt(5) * r + 5.0 / 3.0 * r2) * np.exp(-math.sqrt(5) * r)


def np_elbo_member(x, y, p, kernel, jitter_rel=JITTER_REL):
    """Total ELBO of one member (x (n, D), y (n,), p: that member's parameters)."""
    import numpy as np
    from scipy.linalg import cholesky, solve_triangular
    z, q_mu = p["z"], p["q_mu"]
    lq = np.tril(p["q_sqrt"])
    m = z.shape[0]
    s = math.exp(float(p["log_outputscale"]))
    noise = math.exp(float(p["log_noise"]))
    kzz = np_kernel(z, z, p["log_lengthscale"], p["log_outputscale"], kernel) + jitter_rel * s * np.eye(m)
    lz = cholesky(kzz, lower=True)
    a = solve_triangular(lz, np_kernel(z, x, p["log_lengthscale"], p["log_outputscale"], kernel), lower=True)
    mu = p["mean"] + a.T @ q_mu
    var = s - (a * a).sum(0) + ((lq.T @ a) ** 2).sum(0)
    ell = np.sum(-0.5 * math.log(2 * math.pi * noise) - ((y - mu) ** 2 + var) / (2 * noise))
    kl = 0.5 * (np.sum(lq * lq) + q_mu @ q_mu - m - 2 * np.sum(np.log(np.abs(np.diag(lq)))))
    return ell - kl


def member_params(params, b):
    return {k: params[k][b] for k in PARAM_KEYS}


def np_elbo(x, y, params, kernel, members=None):
    import numpy as np
    members = range(x.shape[0]) if members is None else members
    return np.array([np_elbo_member(x[b], y[b], member_params(params, b), kernel) for b in members])


def fd_coords(params, fd_max, seed):
    """(key, index) pairs of member 0 to difference: every hyperparameter, then a seeded random
    subset of z, q_mu and the lower triangle of q_sqrt up to fd_max in all."""
    import numpy as np
    hyper = [(k, i) for k in ("log_lengthscale", "log_outputscale", "log_noise", "mean")
             for i in np.ndindex(np.shape(params[k][0]))]
    m = params["q_mu"].shape[1]
    rest = [("z", i) for i in np.ndindex(params["z"][0].shape)] + [("q_mu", (i,)) for i in range(m)]
    rest += [("q_sqrt", (i, j)) for i in range(m) for j in range(i + 1)]
    k = max(0, fd_max - len(hyper))
    if len(rest) > k:
        pick = np.random.default_rng(seed).choice(len(rest), size=k, replace=False)
        rest = [rest[i] for i in sorted(pick)]
    return hyper + rest


def fd_gradient(x, y, p, kernel, coords, h=1e-5):
    """Central differences of the numpy ELBO of one member at the given coordinates."""
    import numpy as np
    out = []
    for key, idx in coords:
        vals = []
        for sgn in (1.0, -1.0):
            q = {k: np.array(v, dtype=float, copy=True) for k, v in p.items()}
            q[key][idx] += sgn * h
            vals.append(np_elbo_member(x, y, q, kernel))
        out.append((vals[0] - vals[1]) / (2 * h))
    return np.array(out)


# ---------------------------------------------------------------------------------------------
# GPyTorch


def gpytorch_svgp(x, params, device, kernel, jitter_rel=None, jitter_grad=True):
    """A batch SVGP with B = x.shape[0] independent members, in float64, at `params`.

    The jitter: GPyTorch's VariationalStrategy adds `jitter_val` (absolute; by default
    settings.variational_cholesky_jitter, 1e-6 for float64, 1e-4 for float32) both to K_ZZ and
    to the diagonal of K_XX, so its var_f would carry an extra jitter_val and its ELBO an extra
    -N jitter_val / (2 noise). The strategy here has jitter_val = 0 and adds the jitter of
    docs/design.md section 11, jitter_rel_b * s_b, to K_ZZ alone, just before its Cholesky
    factorisation (RelativeJitterStrategy). With jitter_grad the jitter is part of the autograd
    graph (the derivative of K_ZZ + 1e-6 s I with respect to s); without, it is held constant."""
    import numpy as np
    import torch
    import gpytorch

    b, m, d = params["z"].shape
    bs = torch.Size([b])
    dt = torch.float64
    jr = np.full(b, JITTER_REL) if jitter_rel is None else np.asarray(jitter_rel, dtype=float)

    class RelativeJitterStrategy(gpytorch.variational.VariationalStrategy):
        """GPyTorch's whitened VariationalStrategy, jitter_val = 0, plus jitter_rel_b * s_b on K_ZZ."""

        def _cholesky_factor(self, induc_induc_covar):
            jit = self.jitter_rel * self.model.covar_module.outputscale
            if not jitter_grad:
                jit = jit.detach()
            return super()._cholesky_factor(induc_induc_covar.add_diagonal(jit[:, None]))

    class BatchSVGP(gpytorch.models.ApproximateGP):
        def __init__(self, z):
            vd = gpytorch.variational.CholeskyVariationalDistribution(m, batch_shape=bs)
            vs = RelativeJitterStrategy(self, z, vd, learn_inducing_locations=True, jitter_val=0.0)
            vs.register_buffer("jitter_rel", torch.as_tensor(jr, dtype=dt))
            super().__init__(vs)
            self.mean_module = gpytorch.means.ConstantMean(batch_shape=bs)
            self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch_base_kernel(kernel, d, bs), batch_shape=bs)
            # A submodule, so model.parameters() holds the noise too. GPyTorch's default noise floor,
            # GreaterThan(1e-4), is lowered so the noise is batchgp's.
            self.likelihood = gpytorch.likelihoods.GaussianLikelihood(
                batch_shape=bs, noise_constraint=gpytorch.constraints.GreaterThan(1e-10))

        def forward(self, xx):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(xx), self.covar_module(xx))

    z = torch.as_tensor(params["z"], dtype=dt, device=device).clone()
    model = BatchSVGP(z).to(device=device, dtype=dt)
    load_params(model, params, device)
    model.train()
    return model


def load_params(model, params, device):
    import numpy as np
    import torch

    def t(a):
        return torch.as_tensor(np.asarray(a, dtype=float), dtype=torch.float64, device=device)

    vs = model.variational_strategy
    with torch.no_grad():
        vs.inducing_points.copy_(t(params["z"]))
        vs._variational_distribution.variational_mean.copy_(t(params["q_mu"]))
        vs._variational_distribution.chol_variational_covar.copy_(t(np.tril(params["q_sqrt"])))
        # Otherwise the strategy's first call overwrites q with its own initialisation (N(0, I)).
        vs.variational_params_initialized.fill_(1)
    set_gpytorch_params(model, params, device)


def svgp_elbo(model, tx, ty, scale=1.0):
    """Per-member totals (B,): scale * sum_i E_q[log p(y_i | f_i)] - KL(q(v) || N(0, I)).
    (gpytorch.mlls.VariationalELBO would divide by num_data and the batch would be summed.)"""
    out = model(tx)
    ell = model.likelihood.expected_log_prob(ty, out).sum(-1)
    return scale * ell - model.variational_strategy.kl_divergence()


def svgp_grads(model):
    """Gradients in batchgp's coordinates (the arrays of O.npz): z, q_mu, q_sqrt (lower triangle;
    GPyTorch masks the upper one, so its gradient there is 0), and log lengthscale, log
    outputscale, log noise and mean through compare.gpytorch_grad_log (raw-parameter chain rule)."""
    vs = model.variational_strategy
    vd = vs._variational_distribution
    g = dict(grad_z=vs.inducing_points.grad.detach().cpu().numpy(),
             grad_q_mu=vd.variational_mean.grad.detach().cpu().numpy(),
             grad_q_sqrt=vd.chol_variational_covar.grad.detach().cpu().numpy())
    g.update(gpytorch_grad_log(model))
    return g


def svgp_params(model):
    """The model's parameters as S.npz arrays."""
    import numpy as np
    vs = model.variational_strategy
    vd = vs._variational_distribution
    out = dict(z=vs.inducing_points.detach().cpu().numpy(), q_mu=vd.variational_mean.detach().cpu().numpy(),
               q_sqrt=np.tril(vd.chol_variational_covar.detach().cpu().numpy()))
    out.update(gpytorch_values(model))
    return out


def gpytorch_eval(model, tx, ty, sync):
    """One ELBO + gradient evaluation of the whole batch; returns the per-member ELBO."""
    model.zero_grad()
    e = svgp_elbo(model, tx, ty)
    e.sum().backward()
    sync()
    return e


def gpytorch_values_and_grads(x, y, params, device, kernel, jitter_rel=None, jitter_grad=True):
    import torch
    with gpytorch_settings():
        model = gpytorch_svgp(x, params, device, kernel, jitter_rel, jitter_grad)
        tx = torch.as_tensor(x, dtype=torch.float64, device=device)
        ty = torch.as_tensor(y, dtype=torch.float64, device=device)
        e = gpytorch_eval(model, tx, ty, lambda: None)
        return e.detach().cpu().numpy(), svgp_grads(model)


def gpytorch_full_elbo(x, y, params, device, kernel, jitter_rel=None):
    import torch
    with gpytorch_settings(), torch.no_grad():
        model = gpytorch_svgp(x, params, device, kernel, jitter_rel)
        tx = torch.as_tensor(x, dtype=torch.float64, device=device)
        ty = torch.as_tensor(y, dtype=torch.float64, device=device)
        return svgp_elbo(model, tx, ty).cpu().numpy()


def gpytorch_fit(x, y, params, device, kernel, steps, lr, batch_size, seed, sync):
    """Adam (torch.optim.Adam, lr, GPyTorch's own parametrisation: softplus raw values for the
    positive hyperparameters) on the sum over members of the negative per-member ELBO; with a
    batch size S, each member draws S of its N points per step (without replacement) and the data
    term is scaled by N / S. Returns the time, the loss (steps, B) and the fitted parameters."""
    import numpy as np
    import torch
    b, n, d = x.shape
    with gpytorch_settings():
        model = gpytorch_svgp(x, params, device, kernel)
        tx = torch.as_tensor(x, dtype=torch.float64, device=device)
        ty = torch.as_tensor(y, dtype=torch.float64, device=device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
        losses = []
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            if batch_size and batch_size < n:
                idx = torch.rand(b, n, generator=gen, device=device, dtype=torch.float64).argsort(-1)[:, :batch_size]
                xb = torch.gather(tx, 1, idx[..., None].expand(b, batch_size, d))
                yb = torch.gather(ty, 1, idx)
                loss = -svgp_elbo(model, xb, yb, n / batch_size)
            else:
                loss = -svgp_elbo(model, tx, ty)
            loss.sum().backward()
            opt.step()
            losses.append(loss.detach())
        sync()
        elapsed = time.perf_counter() - t0
        loss = torch.stack(losses).cpu().numpy() if losses else np.zeros((0, b))
        return elapsed, loss, svgp_params(model)


# ---------------------------------------------------------------------------------------------
# batchgp (through its CLI)


def batchgp_has_svgp(exe):
    import subprocess
    r = subprocess.run([exe, "elbo", "--help"], capture_output=True, text=True)
    return r.returncode == 0


def batchgp_elbo(exe, dpath, spath, opath, backend, repeat, threads, kernel):
    import numpy as np
    run_cli([exe, "elbo", "--data", dpath, "--params", spath, "--out", opath, "--backend", backend,
             "--kernel", kernel, "--repeat", str(repeat)], threads)
    with np.load(opath) as f:
        out = {k: f[k] for k in f.files}
    missing = [k for k in ("elbo",) + GRAD_KEYS if k not in out]
    if missing:
        raise CliError(f"batchgp elbo wrote no {', '.join(missing)}")
    if "seconds" not in out:
        raise CliError("batchgp elbo --repeat wrote no `seconds` array")
    return out


def batchgp_fit(exe, dpath, spath, fpath, backend, threads, kernel, steps, lr, batch_size, seed):
    import numpy as np
    args = [exe, "fit", "--model", "svgp", "--data", dpath, "--init", spath, "--steps", str(steps),
            "--lr", repr(lr), "--optimizer", "adam", "--backend", backend, "--kernel", kernel, "--seed", str(seed),
            "--out", fpath]
    if batch_size:
        args += ["--batch-size", str(batch_size)]
    t0 = time.perf_counter()
    run_cli(args, threads)
    wall = time.perf_counter() - t0
    with np.load(fpath) as f:
        out = {k: f[k] for k in f.files}
    missing = [k for k in PARAM_KEYS if k not in out]
    if missing:
        raise CliError(f"batchgp fit --model svgp wrote no {', '.join(missing)}")
    out["wall"] = wall
    out["time"] = float(np.asarray(out["seconds"]).ravel()[0]) if "seconds" in out else wall
    out["time_from"] = "seconds" if "seconds" in out else "subprocess wall time (process start and I/O included)"
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
# agreement helpers


def grad_matrix(g):
    """(B, P) of every gradient array in GRAD_KEYS order."""
    import numpy as np
    return np.concatenate([np.asarray(g[k], float).reshape(np.shape(g[k])[0], -1) for k in GRAD_KEYS], axis=1)


def per_array_errors(ga, gb):
    """Worst error per gradient array, relative to each member's largest component overall."""
    import numpy as np
    scale = np.maximum(np.abs(grad_matrix(ga)).max(1), np.abs(grad_matrix(gb)).max(1))
    scale = np.where(scale > 0, scale, 1.0)
    out = {}
    for k in GRAD_KEYS:
        a = np.asarray(ga[k], float).reshape(scale.shape[0], -1)
        b = np.asarray(gb[k], float).reshape(scale.shape[0], -1)
        out[k] = float((np.abs(a - b).max(1) / scale).max()) if a.size else 0.0
    return out


def agreement(name, elbo_a, elbo_b, ga, gb):
    r = compare(name, elbo_a, elbo_b, grad_matrix(ga), grad_matrix(gb))
    # compare() is the exact-GP check of compare.py with the same tolerances (MLL_RTOL = 1e-8 on
    # the value, GRAD_RTOL = 1e-6 of the member's largest gradient component); its "mll" is the ELBO.
    r["elbo_rel"], r["elbo_member"], r["elbo_values"] = r.pop("mll_rel"), r.pop("mll_member"), r.pop("mll_values")
    r["grad_values"] = None if r["ok"] else r["grad_values"]
    r["per_array"] = per_array_errors(ga, gb)
    return r


# ---------------------------------------------------------------------------------------------
# one shape


def bench_shape(shape, args, ctx, workdir):
    import numpy as np
    b, n, m, d = shape
    log = ctx["log"]
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
                tx = torch.as_tensor(x, dtype=torch.float64, device=dev)
                ty = torch.as_tensor(y, dtype=torch.float64, device=dev)
                sync = ctx["sync"][dev]
                secs = time_repeats(lambda: gpytorch_eval(model, tx, ty, sync), args.repeats, args.budget, sync)
                res["eval"][f"gpytorch-{dev}"] = dict(seconds=secs)
                del model, tx, ty
                if dev == "cuda":
                    torch.cuda.empty_cache()
        except Exception as err:  # noqa: BLE001
            res["notes"].append(f"gpytorch-{dev} timing: {type(err).__name__}: {err}")
    for k, v in res["eval"].items():
        v["median"] = median(v["seconds"])
        v["evals_per_s"] = b / v["median"]
        log(f"  eval {k:<14} {v['median'] * 1e3:10.2f} ms  ({len(v['seconds'])} repeats, {v['evals_per_s']:.0f} GP/s)")

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
    log = ctx["log"]
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
# report


def fmt_ms(v):
    if v is None:
        return "n/a"
    s = v["median"] * 1e3
    return f"{s:.3g}" if s < 100 else f"{s:.0f}"


def fmt_fit_time(v):
    if not v:
        return "n/a"
    if "error" in v:
        return "error"
    if "skipped" in v:
        return "skipped (" + v["skipped"].split(" >")[0] + ")"
    return f"{v['per_step'] * 1e3:.3g}" + ("" if v.get("time_from", "seconds") == "seconds" else "†")


def write_report(results, machine, args, path_md, path_json):
    lines = []
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    nu = KERNELS[args.kernel]
    gp_kernel = "RBFKernel(ard_num_dims=D)" if nu is None else f"MaternKernel(nu={nu}, ard_num_dims=D)"
    lines.append(f"# Batched SVGP: batchgp vs GPyTorch, kernel {args.kernel} ({now})\n")
    lines.append("Machine: " + machine["cpu"] + f", {machine['cores']} cores, {machine['threads']} threads used by "
                 "both systems (RAYON_NUM_THREADS, torch.set_num_threads)"
                 + (f"; GPU: {machine['gpu']}" if machine.get("gpu") else "; no GPU") + ".  ")
    if machine.get("load_start") is not None:
        lines.append(f"Load average (1 min) at the start: {machine['load_start']:.1f}, at the end: "
                     f"{machine.get('load_end', float('nan')):.1f}.  ")
    lines.append("Software: " + ", ".join(f"{k} {machine[k]}" for k in ("python", "numpy", "scipy", "torch", "gpytorch")
                                          if k in machine) + ".  ")
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
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
    except ImportError:
        pass

    def log(msg):
        print(msg, flush=True)

    gpu = torch.cuda.is_available() and not args.no_cuda
    if args.gpu_only and not gpu:
        sys.exit("--gpu-only: no usable GPU (torch.cuda.is_available() is false, or --no-cuda)")
    devices = ["cpu", "cuda"] if gpu else ["cpu"]
    time_devices = ["cuda"] if args.gpu_only else devices
    sync = {"cpu": lambda: None}
    if gpu:
        sync["cuda"] = torch.cuda.synchronize

    exe = None if args.no_batchgp else os.path.abspath(args.batchgp)
    if exe and not os.access(exe, os.X_OK):
        sys.exit(f"no batchgp binary at {exe}: `cargo build --release`, pass --batchgp PATH, or --no-batchgp")
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
    log(f"machine: {machine['cpu']}, {machine['threads']} threads" + (f", GPU {machine['gpu']}" if machine.get("gpu") else "")
        + f"; kernel {args.kernel}")
    ctx = dict(log=log, batchgp=exe, backends=devices if exe else [], time_backends=time_devices if exe else [],
               torch=torch, torch_devices=devices, time_devices=time_devices, sync=sync)
    results = []
    workdir = tempfile.mkdtemp(prefix="batchgp-svgp-")
    try:
        for shape in shapes:
            log(f"shape B={shape[0]} N={shape[1]} M={shape[2]} D={shape[3]}")
            t0 = time.perf_counter()
            try:
                results.append(bench_shape(shape, args, ctx, workdir))
            except Exception as e:  # noqa: BLE001 (one broken shape does not lose the others)
                traceback.print_exc()
                results.append(dict(shape=list(shape), self_check={}, agree=[], eval={}, fit={},
                                    notes=[f"{type(e).__name__}: {e}"], error=True))
            log(f"  ({time.perf_counter() - t0:.0f} s)")
    finally:
        if args.keep:
            log(f"kept the .npz files in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    os.makedirs(args.out_dir, exist_ok=True)
    tag = args.tag or ("svgp-" + ("gpu" if machine.get("gpu") else "cpu") + ("-quick" if args.quick else "")
                       + ("" if args.kernel == "rbf" else "-" + args.kernel) + "-" + datetime.date.today().isoformat())
    base = os.path.join(args.out_dir, tag)
    if hasattr(os, "getloadavg"):
        machine["load_end"] = os.getloadavg()[0]
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
