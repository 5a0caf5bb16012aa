"""batchgp.torch.fit_gpytorch_mll on GPyTorch and BoTorch models, judged by GPyTorch itself: the
MAP objective GPyTorch computes (mll + log priors) at the written-back parameters is at least the
one BoTorch's fit_gpytorch_mll reaches from the same start, on every member; the model's own
predictions equal batchgp.predict at the fitted values (every parameter landed where GPyTorch
reads it); what batchgp cannot fit exactly is refused before any work."""

import copy
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gpytorch = pytest.importorskip("gpytorch")
botorch = pytest.importorskip("botorch")

import batchgp
import batchgp.torch
from botorch.models import ModelListGP, SingleTaskGP
from botorch.models.gpytorch import GPyTorchModel
from botorch.models.transforms import Normalize
from gpytorch.mlls import ExactMarginalLogLikelihood, SumMarginalLogLikelihood

DT = torch.float64


class Exact(gpytorch.models.ExactGP, GPyTorchModel):
    """A plain GPyTorch ExactGP (BoTorch's mixin only lets BoTorch's fit_gpytorch_mll take it)."""

    _num_outputs = 1

    def __init__(self, x, y, likelihood, mean, covar):
        super().__init__(x, y, likelihood)
        self.mean_module, self.covar_module = mean, covar

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


def data(batch, n, d, seed, noise=0.1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*batch, n, d, generator=g, dtype=DT)
    f = torch.sin(6 * x[..., 0]) + (x[..., 1:] ** 2).sum(-1) if d > 1 else torch.sin(6 * x[..., 0])
    return x, f + noise * torch.randn(*batch, n, generator=g, dtype=DT)


def objective(model, likelihood):
    """GPyTorch's MAP objective per member (mll + log priors, times n: a total)."""
    model.train()
    with torch.no_grad():
        out = model(*model.train_inputs)
        v = ExactMarginalLogLikelihood(likelihood, model)(out, model.train_targets)
    return (v * model.train_targets.shape[-1]).numpy()


def batchgp_fit(mll):
    out = batchgp.torch.fit_gpytorch_mll(mll)
    assert out is mll and not mll.training and not mll.model.training, "left in eval mode"
    return out


def botorch_fit(mll):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        botorch.fit.fit_gpytorch_mll(mll)


def compare(models, fit_batchgp, fit_botorch):
    """Fits copies both ways; returns the batchgp-fitted models after checking the objective."""
    ours, theirs = copy.deepcopy(models), copy.deepcopy(models)
    fit_batchgp(ours)
    fit_botorch(theirs)
    for (m, lik), (m2, lik2) in zip(ours, theirs):
        a, b = objective(m, lik), objective(m2, lik2)
        assert np.all(a >= b - 1e-6 * np.abs(b)), (a, b)
    return ours


def check_predictions(model, params, x_train, y_train, yvar=None, mask=None):
    """The model's posterior of f equals batchgp.predict at the fitted params (1e-8)."""
    model.eval()
    xt = torch.rand(7, x_train.shape[-1], generator=torch.Generator().manual_seed(5), dtype=DT)
    with torch.no_grad(), gpytorch.settings.fast_pred_var(False):
        if getattr(model, "input_transform", None) is not None:
            xt = model.input_transform(xt)
        f = model(xt)
        mean, var = f.mean.reshape(-1, 7).numpy(), f.variance.reshape(-1, 7).numpy()
    p = batchgp.predict(x_train, y_train, params, xt.numpy(), yvar=yvar, mask=mask)
    np.testing.assert_allclose(p.mean, mean, rtol=1e-8, atol=1e-8 * np.abs(mean).max())
    np.testing.assert_allclose(p.var, var, rtol=1e-8, atol=1e-8 * var.max())


def test_batched_exact_gp_with_priors_and_constraints():
    x, y = data((2, 3), 25, 2, 1)
    lik = gpytorch.likelihoods.GaussianLikelihood(
        batch_shape=torch.Size([2, 3]), noise_prior=gpytorch.priors.GammaPrior(1.1, 0.05)
    )
    covar = gpytorch.kernels.ScaleKernel(
        gpytorch.kernels.MaternKernel(
            nu=2.5, ard_num_dims=2, batch_shape=torch.Size([2, 3]),
            lengthscale_prior=gpytorch.priors.LogNormalPrior(0.0, 1.0),
            lengthscale_constraint=gpytorch.constraints.Interval(0.01, 5.0),
        ),
        batch_shape=torch.Size([2, 3]), outputscale_prior=gpytorch.priors.GammaPrior(2.0, 0.15),
    )
    mean = gpytorch.means.ConstantMean(batch_shape=torch.Size([2, 3]),
                                       constant_prior=gpytorch.priors.NormalPrior(0.0, 2.0))
    model = Exact(x, y, lik, mean, covar).to(DT)
    ours = compare([(model, model.likelihood)],
                   lambda ms: batchgp_fit(ExactMarginalLogLikelihood(ms[0][1], ms[0][0])),
                   lambda ms: botorch_fit(ExactMarginalLogLikelihood(ms[0][1], ms[0][0])))
    m = ours[0][0]
    r = batchgp.fit(x.reshape(6, 25, 2).numpy(), y.reshape(6, 25).numpy(), kernel="matern52")
    p = m.covar_module
    params = batchgp.Params(p.base_kernel.lengthscale.detach().reshape(6, 2).numpy(),
                            p.outputscale.detach().reshape(6).numpy(), m.likelihood.noise.detach().reshape(6).numpy(),
                            m.mean_module.constant.detach().reshape(6).numpy(), kernel="matern52")
    assert r.params.kernel == params.kernel
    check_predictions(m, params, x.reshape(6, 25, 2).numpy(), y.reshape(6, 25).numpy())
    ls = p.base_kernel.lengthscale.detach().numpy()
    assert np.all((ls > 0.01) & (ls < 5.0))


def test_single_and_multi_output_singletaskgp_defaults():
    for outputs in (1, 3):
        x, _ = data((), 30, 4, 2)
        g = torch.Generator().manual_seed(outputs)
        y = torch.stack([torch.sin(5 * x[:, j]) + 0.1 * torch.randn(30, generator=g, dtype=DT)
                         for j in range(outputs)], -1) * 3 + 7
        model = SingleTaskGP(x * 4 - 1, y, input_transform=Normalize(4))
        mlls = {}

        def ours_fit(ms, mlls=mlls):
            mlls["ours"] = batchgp_fit(ExactMarginalLogLikelihood(ms[0][1], ms[0][0]))

        ours = compare([(model, model.likelihood)], ours_fit,
                       lambda ms: botorch_fit(ExactMarginalLogLikelihood(ms[0][1], ms[0][0])))
        m = ours[0][0]
        assert mlls["ours"].batchgp_status[0].shape == ((outputs,) if outputs > 1 else ())
        res = mlls["ours"].batchgp_results[0]
        # BoTorch's defaults: unscaled RBF (outputscale 1), noise >= 1e-4, lengthscale >= 0.025.
        assert np.all(res.outputscale == 1.0) and np.all(res.noise >= 1e-4) and np.all(res.lengthscale >= 0.025)
        m.train()
        xm = m.transform_inputs(m.train_inputs[0]).detach()
        xm = xm.reshape(-1, 30, 4).numpy()
        ym = m.train_targets.detach().reshape(-1, 30).numpy()
        check_predictions(m, res.params, xm, ym)


def test_model_list_with_ragged_outputs_and_fixed_noise():
    models = []
    for i, n in enumerate((12, 20, 27)):
        x, y = data((), n, 2, 10 + i)
        kw = {"train_Yvar": torch.full((n, 1), 0.01, dtype=DT)} if i == 2 else {}
        models.append(SingleTaskGP(x, y[:, None], **kw))
    model = ModelListGP(*models)
    mlls = {}

    def ours_fit(ms, mlls=mlls):
        lst = ms[0][0]
        mlls["ours"] = batchgp_fit(SumMarginalLogLikelihood(lst.likelihood, lst))

    def theirs_fit(ms):
        lst = ms[0][0]
        botorch_fit(SumMarginalLogLikelihood(lst.likelihood, lst))

    ours_list, theirs_list = copy.deepcopy(model), copy.deepcopy(model)
    ours_fit([(ours_list, None)])
    theirs_fit([(theirs_list, None)])
    mll = mlls["ours"]
    assert len(mll.batchgp_status) == 3 and len(mll.batchgp_results) == 2  # learned noise / fixed noise
    for sub, sub2 in zip(ours_list.models, theirs_list.models):
        a, b = objective(sub, sub.likelihood), objective(sub2, sub2.likelihood)
        assert np.all(a >= b - 1e-6 * np.abs(b)), (a, b)
    # The two learned-noise outputs were one ragged (masked) batch: each equals its own fit.
    ragged = mll.batchgp_results[0]
    for j, sub in enumerate(ours_list.models[:2]):
        sub.train()
        x, y = sub.train_inputs[0].detach().numpy(), sub.train_targets.detach().numpy()
        check_predictions(sub, _row(ragged.params, j), x[None], y[None])
    fixed = ours_list.models[2]
    fixed.train()
    yvar = fixed.likelihood.noise.detach().numpy()[None]
    x, y = fixed.train_inputs[0].detach().numpy(), fixed.train_targets.detach().numpy()
    check_predictions(fixed, mll.batchgp_results[1].params, x[None], y[None], yvar=yvar)


def _row(p, j):
    return batchgp.Params(p.lengthscale[j : j + 1], p.outputscale[j : j + 1], p.noise[j : j + 1],
                          p.mean[j : j + 1], None if p.alpha is None else p.alpha[j : j + 1], p.kernel)


def test_rq_zero_mean_fixed_parameter_and_other_priors():
    x, y = data((3,), 20, 1, 3)
    lik = gpytorch.likelihoods.GaussianLikelihood(
        batch_shape=torch.Size([3]), noise_prior=gpytorch.priors.HalfCauchyPrior(0.5),
        noise_constraint=gpytorch.constraints.GreaterThan(1e-3),
    )
    base = gpytorch.kernels.RQKernel(batch_shape=torch.Size([3]),
                                     alpha_prior=gpytorch.priors.UniformPrior(0.05, 20.0))
    covar = gpytorch.kernels.ScaleKernel(base, batch_shape=torch.Size([3]))
    covar.outputscale = 1.5
    covar.raw_outputscale.requires_grad_(False)  # held at 1.5
    model = Exact(x, y, lik, gpytorch.means.ZeroMean(), covar).to(DT)
    ours = compare([(model, model.likelihood)],
                   lambda ms: batchgp_fit(ExactMarginalLogLikelihood(ms[0][1], ms[0][0])),
                   lambda ms: botorch_fit(ExactMarginalLogLikelihood(ms[0][1], ms[0][0])))
    m = ours[0][0]
    assert torch.allclose(m.covar_module.outputscale, torch.tensor(1.5, dtype=DT))
    k = m.covar_module.base_kernel
    params = batchgp.Params(k.lengthscale.detach().reshape(3, 1).numpy(), 1.5, m.likelihood.noise.detach().reshape(3).numpy(),
                            0.0, k.alpha.detach().reshape(3).numpy(), kernel="rq")
    check_predictions(m, params, x.numpy(), y.numpy())


def _refused(model, match):
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(batchgp.BatchGPError, match=match):
        batchgp.torch.fit_gpytorch_mll(mll)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a refused model was changed"


def test_refusals_name_the_module():
    x, y = data((), 15, 2, 4)
    lik = gpytorch.likelihoods.GaussianLikelihood
    rbf = lambda **kw: gpytorch.kernels.RBFKernel(ard_num_dims=2, **kw)
    cm = gpytorch.means.ConstantMean
    cases = [
        (Exact(x, y, lik(), cm(), rbf() + rbf()), r"model\.covar_module: AdditiveKernel"),
        (Exact(x, y, lik(), cm(), rbf() * rbf()), r"ProductKernel"),
        (Exact(x, y, lik(), cm(), gpytorch.kernels.PeriodicKernel()), r"PeriodicKernel"),
        (Exact(x, y, lik(), cm(), gpytorch.kernels.MaternKernel(nu=2.5, ard_num_dims=1, active_dims=[0])),
         r"active_dims"),
        (Exact(x, y, lik(), gpytorch.means.LinearMean(2), rbf()), r"model\.mean_module: LinearMean"),
        (Exact(x, y, lik(), cm(), rbf(lengthscale_prior=gpytorch.priors.SmoothedBoxPrior(0.1, 2.0))),
         r"SmoothedBoxPrior is not a prior batchgp has"),
        (Exact(x, y, gpytorch.likelihoods.GaussianLikelihoodWithMissingObs(), cm(), rbf()),
         r"model\.likelihood: GaussianLikelihoodWithMissingObs"),
    ]
    for model, match in cases:
        _refused(model.to(DT), match)
    model = Exact(x, y, lik(), cm(), rbf()).to(DT)
    with pytest.raises(batchgp.BatchGPError, match="LeaveOneOutPseudoLikelihood"):
        batchgp.torch.fit_gpytorch_mll(gpytorch.mlls.LeaveOneOutPseudoLikelihood(model.likelihood, model))
    with pytest.raises(batchgp.BatchGPError, match="invalid option `closure`"):
        batchgp.torch.fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model), closure=lambda: 0)


def test_shared_lengthscale_over_several_dimensions():
    x, y = data((4,), 25, 3, 6)
    covar = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(batch_shape=torch.Size([4])),
                                         batch_shape=torch.Size([4]))
    lik = gpytorch.likelihoods.GaussianLikelihood(batch_shape=torch.Size([4]))
    model = Exact(x, y, lik, gpytorch.means.ConstantMean(batch_shape=torch.Size([4])), covar).to(DT)
    ours = compare([(model, model.likelihood)],
                   lambda ms: batchgp_fit(ExactMarginalLogLikelihood(ms[0][1], ms[0][0])),
                   lambda ms: botorch_fit(ExactMarginalLogLikelihood(ms[0][1], ms[0][0])))
    m = ours[0][0]
    k = m.covar_module
    params = batchgp.Params(np.repeat(k.base_kernel.lengthscale.detach().reshape(4, 1).numpy(), 3, axis=1),
                            k.outputscale.detach().numpy(), m.likelihood.noise.detach().reshape(4).numpy(),
                            m.mean_module.constant.detach().numpy())
    check_predictions(m, params, x.numpy(), y.numpy())

