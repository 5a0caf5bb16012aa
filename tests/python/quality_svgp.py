"""Issue 23, point 1: batchgp's default SVGP fit against an independent full-batch L-BFGS of the
same ELBO, on the pyrox "Standard SVGP" notebook's problem and from its start.

The data: 500 points of sin(2x) + 0.3 cos(5x) on [-3, -0.6] and [0.6, 3] (250 each side), noise
sd 0.15. The start: M = 20 inducing inputs uniform on [-3, 3], lengthscale 0.6, outputscale 1,
noise 0.15^2, mean 0, q_mu = 0, q_sqrt = I. Each member has its own data and start draw.

The reference: the ELBO of docs/design.md section 11 written here in numpy (whitened q,
k(Z, Z) + 1e-6 s I, a constant mean), maximised from the same start by a full-batch L-BFGS: for a
Gaussian likelihood on the full data the best q for given hyperparameters and Z is known in closed
form, and the ELBO there is Titsias' collapsed bound, so scipy's L-BFGS-B maximises that bound
(written in autograd.numpy, exact gradient) over the hyperparameters and Z. The ELBO function
scores both optima (batchgp's with its own q, the reference's with its optimal q), so both are
measured by one likelihood.

Passes when every member ends within max(3 nats, 1 %) of the reference (or above it) and its noise
sd within 20 % of 0.15.

    python tests/python/quality_svgp.py target/release/batchgp [DRAWS] [extra fit flags...]
        [--compare OTHER_BATCHGP]

DRAWS (default 8) draws of 4 members. Prints one line per member and a closing
'N passed, N failed' line; exit 1 on any failure.
"""
import os
import subprocess
import sys
import tempfile
import time

import autograd.numpy as anp
import numpy as np
from autograd import value_and_grad
from scipy.optimize import minimize

N, M, NOISE_SD = 500, 20, 0.15
JITTER = 1e-6


def notebook_problem(draws, seed=23):
    """x (B, N, 1), y (B, N), z (B, M, 1) for `draws` x 4 members."""
    rng = np.random.default_rng(seed)
    b = 4 * draws
    x = np.concatenate([rng.uniform(-3, -0.6, (b, N // 2)), rng.uniform(0.6, 3, (b, N // 2))], axis=1)
    y = np.sin(2 * x) + 0.3 * np.cos(5 * x) + NOISE_SD * rng.standard_normal((b, N))
    z = rng.uniform(-3, 3, (b, M))
    return x[..., None], y, z[..., None]


TRI = np.tril_indices(M)


def kernels(ll, lo, z, x, np_=np):
    """k(Z, Z) + 1e-6 s I and k(Z, x) of the rbf kernel."""
    l, s = np_.exp(ll), np_.exp(lo)
    kzz = s * np_.exp(-0.5 * (z[:, None] - z[None, :]) ** 2 / l**2) + JITTER * s * np_.eye(M)
    kzx = s * np_.exp(-0.5 * (z[:, None] - x[None, :]) ** 2 / l**2)
    return kzz, kzx


def elbo(hyp, z, q_mu, q, x, y):
    """The ELBO of one member (1-d inputs, rbf, whitened q = N(q_mu, q q^T)) at hyp = [log l,
    log s, log noise, mean], written point by point from docs/design.md section 11."""
    ll, lo, ln, mean = hyp
    s, noise = np.exp(lo), np.exp(ln)
    kzz, kzx = kernels(ll, lo, z, x)
    a = np.linalg.solve(np.linalg.cholesky(kzz), kzx)
    q = np.tril(q)
    mu = mean + a.T @ q_mu
    var_f = s - np.sum(a**2, axis=0) + np.sum((q.T @ a) ** 2, axis=0)
    data = np.sum(-0.5 * np.log(2 * np.pi * noise) - ((y - mu) ** 2 + var_f) / (2 * noise))
    kl = 0.5 * (np.sum(q**2) + q_mu @ q_mu - M - 2 * np.sum(np.log(np.abs(np.diag(q)))))
    return data - kl


def optimal_q(hyp, z, x, y):
    """The q that maximises the ELBO for these hyperparameters and Z (full data, Gaussian
    likelihood): S = (I + A A^T / noise)^-1, q_mu = S A (y - mean) / noise, A = L^-1 k(Z, x)."""
    ll, lo, ln, mean = hyp
    kzz, kzx = kernels(ll, lo, z, x)
    a = np.linalg.solve(np.linalg.cholesky(kzz), kzx)
    cov = np.linalg.inv(np.eye(M) + a @ a.T / np.exp(ln))
    return cov @ a @ (y - mean) / np.exp(ln), np.linalg.cholesky(cov)


def collapsed(theta, x, y):
    """max over q of the ELBO (Titsias' bound) at theta = [log l, log s, log noise, mean, z]."""
    ll, lo, ln, mean, z = theta[0], theta[1], theta[2], theta[3], theta[4:]
    noise = anp.exp(ln)
    kzz, kzx = kernels(ll, lo, z, x, anp)
    a = anp.linalg.solve(anp.linalg.cholesky(kzz), kzx) / anp.sqrt(noise)
    lb = anp.linalg.cholesky(anp.eye(M) + anp.dot(a, a.T))
    r = y - mean
    c = anp.linalg.solve(lb, anp.dot(a, r)) / anp.sqrt(noise)
    n = len(y)
    return (-0.5 * n * anp.log(2 * anp.pi * noise) - anp.sum(anp.log(anp.diag(lb))) - anp.dot(r, r) / (2 * noise)
            + 0.5 * anp.dot(c, c) - 0.5 * n * anp.exp(lo) / noise + 0.5 * anp.sum(a**2))


def reference(x, y, z, maxiter=1000):
    """Full-batch L-BFGS of the ELBO from the notebook's start, with q at its optimum for every
    (hyperparameters, Z): scipy's L-BFGS-B on the collapsed bound, exact gradient. Returns the
    ELBO (the function above) at its end, with q there at its optimum."""
    vg = value_and_grad(lambda t: -collapsed(t, x, y))
    t0 = np.concatenate([[np.log(0.6), 0.0, np.log(NOISE_SD**2), 0.0], z])
    r = minimize(vg, t0, jac=True, method="L-BFGS-B", options={"maxiter": maxiter, "maxfun": 3 * maxiter})
    hyp, zr = r.x[:4], r.x[4:]
    q_mu, q = optimal_q(hyp, zr, x, y)
    value = elbo(hyp, zr, q_mu, q, x, y)
    assert abs(value + r.fun) <= 1e-6 * max(1.0, abs(value)), "the ELBO at the optimal q is the collapsed bound"
    return value


def batchgp_fit(exe, x, y, z, flags):
    b = len(y)
    with tempfile.TemporaryDirectory() as tmp:
        d, s, o = (os.path.join(tmp, f) for f in ("D.npz", "S.npz", "O.npz"))
        np.savez(d, x=x, y=y)
        np.savez(
            s,
            z=z,
            q_mu=np.zeros((b, M)),
            q_sqrt=np.broadcast_to(np.eye(M), (b, M, M)).copy(),
            log_lengthscale=np.full((b, 1), np.log(0.6)),
            log_outputscale=np.zeros(b),
            log_noise=np.full(b, np.log(NOISE_SD**2)),
            mean=np.zeros(b),
            kernel=np.array("rbf"),
        )
        t = time.perf_counter()
        subprocess.run([exe, "fit", "--model", "svgp", "--data", d, "--init", s, "--out", o, *flags], check=True,
                       stdout=subprocess.DEVNULL)
        secs = time.perf_counter() - t
        with np.load(o) as f:
            return {k: f[k] for k in f.files}, secs


def score(fit, b, x, y):
    hyp = [fit["log_lengthscale"][b, 0], fit["log_outputscale"][b], fit["log_noise"][b], fit["mean"][b]]
    return elbo(hyp, fit["z"][b, :, 0], fit["q_mu"][b], fit["q_sqrt"][b], x, y), np.exp(0.5 * fit["log_noise"][b])


def within(value, sd, ref):
    return value >= ref - max(3.0, 0.01 * abs(ref)) and abs(sd / NOISE_SD - 1) <= 0.2


def main(exe, draws, flags, before=None):
    x, y, z = notebook_problem(draws)
    fit, secs = batchgp_fit(exe, x, y, z, flags)
    print(f"batchgp fit {' '.join(flags) or '(defaults)'}: {len(y)} members in {secs:.1f} s")
    old = None
    if before:
        old, old_secs = batchgp_fit(before, x, y, z, flags)
        print(f"{before} (for comparison): {old_secs:.1f} s")
    passed = failed = old_ok = 0
    for b in range(len(y)):
        t0 = time.perf_counter()
        ref = reference(x[b, :, 0], y[b], z[b, :, 0])
        ours, sd = score(fit, b, x[b, :, 0], y[b])
        # batchgp's own ELBO agrees with this one.
        ok = within(ours, sd, ref) and abs(ours - fit["elbo"][b]) <= 1e-6 * max(1.0, abs(ours))
        passed += ok
        failed += not ok
        line = (f"member {b:3d}: elbo {ours:9.2f} (batchgp says {fit['elbo'][b]:9.2f}), reference {ref:9.2f}, "
                f"noise sd {sd:.3f}, status {int(fit['status'][b])}")
        if old is not None:
            o, osd = score(old, b, x[b, :, 0], y[b])
            old_ok += within(o, osd, ref)
            line += f"; before: {o:9.2f}, noise sd {osd:.3f}"
        print(line + f", ref {time.perf_counter() - t0:.1f} s" + ("  ok" if ok else "  FAILED"))
    if old is not None:
        print(f"within tolerance: {passed} of {len(y)}; before: {old_ok} of {len(y)}")
    print(f"{passed} passed, {failed} failed")
    return failed == 0


if __name__ == "__main__":
    args = sys.argv[1:]
    before = None
    if "--compare" in args:
        i = args.index("--compare")
        before = args[i + 1]
        del args[i:i + 2]
    exe = args[0]
    draws = int(args[1]) if len(args) > 1 else 8
    sys.exit(0 if main(exe, draws, args[2:], before) else 1)
