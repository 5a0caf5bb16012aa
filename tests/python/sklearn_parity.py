"""Fit parity with scikit-learn: from the same starting point, batchgp's batched L-BFGS must end
at an objective at least as good as scikit-learn's L-BFGS-B fit of each member alone.

Run by .ci/run in a virtualenv with numpy, scipy and scikit-learn:
    python tests/python/sklearn_parity.py target/release/batchgp
Prints one line per member and a closing 'N passed, N failed' line; exit 1 on any failure.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel


def main(exe):
    rng = np.random.default_rng(0)
    cases = []
    # (B, N, D): small and medium members, one and several dimensions.
    for b, n, d in [(6, 30, 1), (6, 60, 2), (4, 120, 3)]:
        x = rng.uniform(0, 1, (b, n, d))
        f = np.sin(6 * x[..., 0]) + (0.5 * np.cos(4 * x[..., 1]) if d > 1 else 0)
        y = f + rng.normal(0, 0.1 + 0.2 * rng.uniform(size=(b, 1)), (b, n))
        y -= y.mean(axis=1, keepdims=True)  # sklearn has no constant mean: fix ours at 0
        ll0 = np.log(rng.uniform(0.2, 1.0, (b, d)))
        lo0 = np.log(rng.uniform(0.5, 2.0, b))
        ln0 = np.log(rng.uniform(0.01, 0.1, b))
        cases.append((x, y, ll0, lo0, ln0))

    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for ci, (x, y, ll0, lo0, ln0) in enumerate(cases):
            b, n, d = x.shape
            data, init, out = (os.path.join(tmp, f"{k}{ci}.npz") for k in "DPF")
            np.savez(data, x=x, y=y)
            np.savez(init, log_lengthscale=ll0, log_outputscale=lo0, log_noise=ln0, mean=np.zeros(b))
            subprocess.run([exe, "fit", "--data", data, "--init", init, "--fix", "mean", "--bounds", "1e-9,1e9", "--backend", "cpu", "--out", out], check=True)
            ours = np.load(out)
            for m in range(b):
                wide = (1e-9, 1e9)
                kernel = ConstantKernel(np.exp(lo0[m]), wide) * RBF(np.exp(ll0[m]), [wide] * d) + WhiteKernel(np.exp(ln0[m]), wide)
                gp = GaussianProcessRegressor(kernel, alpha=0.0, normalize_y=False, n_restarts_optimizer=0)
                gp.fit(x[m], y[m])
                theirs = gp.log_marginal_likelihood_value_
                mine = ours["objective"][m]
                ok = ours["status"][m] in (0, 1) and mine >= theirs - 1e-6 * abs(theirs)
                passed += ok
                failed += not ok
                print(f"case {ci} member {m}: batchgp {mine:.10f}  sklearn {theirs:.10f}  {'ok' if ok else 'WORSE'}")
    print(f"parity: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "target/release/batchgp"))
