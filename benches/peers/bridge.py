#!/usr/bin/env python3
"""The one-line switches, timed: BoTorch's fit_gpytorch_mll against batchgp.torch.fit_gpytorch_mll,
and scikit-learn's GaussianProcessRegressor against batchgp.sklearn.GaussianProcessRegressor.

Cases (issue 20):
1. a 16-output SingleTaskGP (BoTorch's defaults, Normalize input transform), 200 points, 6 dims;
2. a 50-output ModelListGP of SingleTaskGPs with ragged N (50 to 200 points), 6 dims;
3. 20 targets, 200 points, 6 dims, kernel ConstantKernel * RBF(ARD) + WhiteKernel: scikit-learn
   fitted once per target (its own hyperparameters per target, as the drop-in fits them) against
   one drop-in fit of y (200, 20).

Each case fits copies of the same model from the same start, reports the wall time of each, the
speed-up, and how the fits compare on the objective the peer itself computes (GPyTorch's MAP
objective per member; scikit-learn's log marginal likelihood per target): the worst relative
difference (batchgp - peer) / |peer| over members, >= 0 when batchgp's fit is at least as good.

Usage: python benches/peers/bridge.py [--repeats R] [--threads T]   (needs torch, gpytorch,
botorch, scikit-learn and batchgp installed). Not part of CI.
"""

import argparse
import copy
import os
import platform
import time
import warnings


def timed(fn, repeats):
    best = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        best = dt if best is None or dt < best else best
    return best, out


def gp_objective(model):
    import torch
    from gpytorch.mlls import ExactMarginalLogLikelihood

    model.train()
    with torch.no_grad():
        v = ExactMarginalLogLikelihood(model.likelihood, model)(model(*model.train_inputs), model.train_targets)
    return (v * model.train_targets.shape[-1]).reshape(-1)


def worst_relative(ours, theirs):
    import torch

    ours, theirs = torch.cat([o.reshape(-1) for o in ours]), torch.cat([t.reshape(-1) for t in theirs])
    return float(((ours - theirs) / theirs.abs()).min())


def case_botorch(name, make, repeats):
    import batchgp.torch as bt
    import botorch

    def run(fit):
        models, mll = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            fit(mll)
            return time.perf_counter() - t, models

    t_theirs, m_theirs = min((run(botorch.fit.fit_gpytorch_mll) for _ in range(repeats)), key=lambda r: r[0])
    t_ours, m_ours = min((run(bt.fit_gpytorch_mll) for _ in range(repeats)), key=lambda r: r[0])
    rel = worst_relative([gp_objective(m) for m in m_ours], [gp_objective(m) for m in m_theirs])
    return name, t_theirs, t_ours, rel


def singletask(outputs=16, n=200, d=6, seed=0):
    import torch
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, outputs, generator=g, dtype=torch.float64)
    y = torch.sin(3 * x @ w) + 0.1 * torch.randn(n, outputs, generator=g, dtype=torch.float64)
    model = SingleTaskGP(x, y, input_transform=Normalize(d))
    def make():
        m = copy.deepcopy(model)
        return [m], ExactMarginalLogLikelihood(m.likelihood, m)

    return make


def modellist(outputs=50, d=6, seed=1):
    import torch
    from botorch.models import ModelListGP, SingleTaskGP
    from gpytorch.mlls import SumMarginalLogLikelihood

    g = torch.Generator().manual_seed(seed)
    subs = []
    for i in range(outputs):
        n = int(torch.randint(50, 201, (1,), generator=g))
        x = torch.rand(n, d, generator=g, dtype=torch.float64)
        w = torch.randn(d, generator=g, dtype=torch.float64)
        y = torch.sin(3 * x @ w) + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
        subs.append(SingleTaskGP(x, y[:, None]))
    model = ModelListGP(*subs)

    def make():
        m = copy.deepcopy(model)
        return list(m.models), SumMarginalLogLikelihood(m.likelihood, m)

    return make


def case_sklearn(repeats, targets=20, n=200, d=6, seed=2):
    import batchgp.sklearn
    import numpy as np
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process import kernels as K

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, d))
    y = np.sin(3 * x @ rng.standard_normal((d, targets))) + 0.1 * rng.standard_normal((n, targets))
    kernel = K.ConstantKernel() * K.RBF(np.ones(d)) + K.WhiteKernel()

    def theirs():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [GaussianProcessRegressor(kernel).fit(x, y[:, t]).log_marginal_likelihood_value_
                    for t in range(targets)]

    t_theirs, lml_theirs = timed(theirs, repeats)
    t_ours, est = timed(lambda: batchgp.sklearn.GaussianProcessRegressor(kernel).fit(x, y), repeats)
    lml_ours = est.log_marginal_likelihood_values_
    rel = float(np.min((lml_ours - np.array(lml_theirs)) / np.abs(lml_theirs)))
    return f"scikit-learn GPR, {targets} targets, N={n}, D={d}", t_theirs, t_ours, rel


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=1, help="fits per system and case (the fastest is reported)")
    p.add_argument("--threads", type=int, default=None, help="threads for torch and batchgp (default: all)")
    p.add_argument("--cases", default="singletask,modellist,sklearn", help="comma-separated cases to run")
    args = p.parse_args()
    import batchgp
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
        batchgp.set_num_threads(args.threads)
    import botorch
    import gpytorch
    import sklearn

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), gpytorch {gpytorch.__version__}, "
          f"botorch {botorch.__version__}, scikit-learn {sklearn.__version__}, batchgp {batchgp.__version__}")
    cases = {
        "singletask": lambda: case_botorch("BoTorch SingleTaskGP, 16 outputs, N=200, D=6", singletask(), args.repeats),
        "modellist": lambda: case_botorch("BoTorch ModelListGP, 50 outputs, N=50..200, D=6", modellist(),
                                          args.repeats),
        "sklearn": lambda: case_sklearn(args.repeats),
    }
    print("| case | peer (s) | batchgp (s) | speed-up | worst (batchgp - peer) / abs(peer) | load |")
    print("|---|---:|---:|---:|---:|---:|", flush=True)
    for key in args.cases.split(","):
        name, a, b, rel = cases[key]()
        print(f"| {name} | {a:.2f} | {b:.3f} | {a / b:.1f}x | {rel:.1e} | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
