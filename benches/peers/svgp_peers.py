"""The SVGP as svgp.py checks and times it outside batchgp: an independent numpy implementation of
the model of docs/design.md section 11 (per-member ELBO and its central differences),
GPyTorch's batch SVGP with batchgp's jitter (the model, its ELBO and gradient in batchgp's
coordinates, and an Adam fit), and the agreement test over every gradient array.
"""

import math
import time

from harness import (
    KERNELS,
    as_tensors,
    check_agreement,
    gpytorch_base_kernel,
    gpytorch_grad_log,
    gpytorch_settings,
    gpytorch_values,
    set_gpytorch_params,
)

# K_ZZ + JITTER_REL * s I (f64), the model's jitter (docs/design.md section 11).
JITTER_REL = 1e-6

PARAM_KEYS = ("z", "q_mu", "q_sqrt", "log_lengthscale", "log_outputscale", "log_noise", "mean")
GRAD_KEYS = tuple("grad_" + k for k in PARAM_KEYS)


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
    with gpytorch_settings():
        model = gpytorch_svgp(x, params, device, kernel, jitter_rel, jitter_grad)
        tx, ty = as_tensors(device, x, y)
        e = gpytorch_eval(model, tx, ty, lambda: None)
        return e.detach().cpu().numpy(), svgp_grads(model)


def gpytorch_full_elbo(x, y, params, device, kernel, jitter_rel=None):
    import torch
    with gpytorch_settings(), torch.no_grad():
        model = gpytorch_svgp(x, params, device, kernel, jitter_rel)
        tx, ty = as_tensors(device, x, y)
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
        tx, ty = as_tensors(device, x, y)
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
    r = check_agreement(name, elbo_a, elbo_b, grad_matrix(ga), grad_matrix(gb))
    # check_agreement() is the exact GP's check (harness.py) with the same tolerances (MLL_RTOL = 1e-8 on
    # the value, GRAD_RTOL = 1e-6 of the member's largest gradient component); its "mll" is the ELBO.
    r["elbo_rel"], r["elbo_member"], r["elbo_values"] = r.pop("mll_rel"), r.pop("mll_member"), r.pop("mll_values")
    r["grad_values"] = None if r["ok"] else r["grad_values"]
    r["per_array"] = per_array_errors(ga, gb)
    return r
