"""The exact GP as compare.py runs it in its peers: GPyTorch's batch-mode ExactGP (the model, one MLL
+ gradient evaluation, the tutorial's Adam fit) and scikit-learn's GaussianProcessRegressor per
member (the kernel, evaluations at given hyperparameters, L-BFGS-B fits).
"""

import time

from harness import KERNELS, as_tensors, gpytorch_base_kernel, gpytorch_settings, gpytorch_values, set_gpytorch_params

# scikit-learn's hyperparameter bounds in the fit comparison (its default is (1e-5, 1e5)); batchgp
# gets the same through `fit --bounds`, so both run L-BFGS-B on the same boxed problem.
SK_BOUNDS = (1e-12, 1e12)


# ---------------------------------------------------------------------------------------------
# GPyTorch


def gpytorch_model(x, y, device, params, kernel):
    import torch
    import gpytorch

    b, n, d = x.shape
    bs = torch.Size([b])
    tx, ty = as_tensors(device, x, y)

    class BatchGP(gpytorch.models.ExactGP):
        def __init__(self, tx, ty, lik):
            super().__init__(tx, ty, lik)
            self.mean_module = gpytorch.means.ConstantMean(batch_shape=bs)
            self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch_base_kernel(kernel, d, bs), batch_shape=bs)

        def forward(self, xx):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(xx), self.covar_module(xx))

    # GPyTorch's default noise floor is GreaterThan(1e-4); lowered so the noise is batchgp's.
    lik = gpytorch.likelihoods.GaussianLikelihood(
        batch_shape=bs, noise_constraint=gpytorch.constraints.GreaterThan(1e-10))
    model = BatchGP(tx, ty, lik).to(device=device, dtype=torch.float64)
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(lik, model)
    set_gpytorch_params(model, params, device)
    model.train()
    lik.train()
    return model, mll, tx, ty


def gpytorch_eval(model, mll, tx, ty, n, sync):
    """One MLL + gradient evaluation; returns the total MLL per member (B,)."""
    model.zero_grad()
    out = model(tx)
    total = mll(out, ty) * n  # ExactMarginalLogLikelihood divides by N
    total.sum().backward()
    sync()
    return total


def gpytorch_adam_fit(x, y, init, device, iters, sync, kernel):
    import torch
    n = x.shape[1]
    with gpytorch_settings():
        model, mll, tx, ty = gpytorch_model(x, y, device, init, kernel)
        opt = torch.optim.Adam(model.parameters(), lr=0.1)
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            opt.zero_grad()
            loss = -mll(model(tx), ty).sum()
            loss.backward()
            opt.step()
        sync()
        elapsed = time.perf_counter() - t0
        with torch.no_grad():
            final = (mll(model(tx), ty) * n).cpu().numpy()
    return elapsed, final, gpytorch_values(model)


# ---------------------------------------------------------------------------------------------
# scikit-learn


def sk_kernel(ls, os_, noise, kernel):
    """ConstantKernel * (RBF or Matern(nu)) + WhiteKernel, with one length scale per dimension
    (`ls` is a (D,) array). Matérn's nu is fixed, not a hyperparameter, so theta keeps rbf's order."""
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern, WhiteKernel
    wide = SK_BOUNDS
    nu = KERNELS[kernel]
    base = RBF(ls, length_scale_bounds=wide) if nu is None else Matern(ls, length_scale_bounds=wide, nu=nu)
    return ConstantKernel(os_, constant_value_bounds=wide) * base + WhiteKernel(noise, noise_level_bounds=wide)


def sk_models(x, y, params, members, kernel):
    """One GaussianProcessRegressor per member, fitted (optimizer=None) on y - mean; alpha=0 so
    that K is exactly k(X, X) + noise I."""
    import numpy as np
    from sklearn.gaussian_process import GaussianProcessRegressor
    gps, thetas = [], []
    for b in members:
        k = sk_kernel(np.exp(params["log_lengthscale"][b]), float(np.exp(params["log_outputscale"][b])),
                      float(np.exp(params["log_noise"][b])), kernel)
        gp = GaussianProcessRegressor(k, alpha=0.0, optimizer=None, normalize_y=False, copy_X_train=False)
        gp.fit(x[b], y[b] - params["mean"][b])
        gps.append(gp)
        thetas.append(gp.kernel_.theta.copy())
    return gps, thetas


def sk_eval(gps, thetas):
    return [gp.log_marginal_likelihood(th, eval_gradient=True) for gp, th in zip(gps, thetas)]


def sk_grad_to_ours(g, d):
    """sklearn's theta order: log constant, log length_scale (D), log noise_level."""
    return dict(grad_log_outputscale=g[0], grad_log_lengthscale=g[1:1 + d], grad_log_noise=g[1 + d])


def sk_fit(x, y, init, members, kernel):
    import numpy as np
    from sklearn.gaussian_process import GaussianProcessRegressor
    objs, its = [], []
    t0 = time.perf_counter()
    for b in members:
        k = sk_kernel(np.exp(init["log_lengthscale"][b]), float(np.exp(init["log_outputscale"][b])),
                      float(np.exp(init["log_noise"][b])), kernel)
        gp = GaussianProcessRegressor(k, alpha=0.0, optimizer="fmin_l_bfgs_b", n_restarts_optimizer=0,
                                      normalize_y=False, copy_X_train=False)
        gp.fit(x[b], y[b] - init["mean"][b])
        objs.append(gp.log_marginal_likelihood_value_)
    return time.perf_counter() - t0, np.array(objs)
