//! The optimal q(u) of an SVGP member in closed form (docs/design.md section 11, "Fitting").
//!
//! For a Gaussian likelihood on the full data, the whitened q(v) = N(q_mu, S) that maximises the
//! ELBO for given hyperparameters and Z is known (Titsias 2009, whitened): with
//! L L^T = k(Z, Z) + jitter, A = L^-1 k(Z, X), w_i = 1 / (noise + yvar_i) and r = y - m,
//!
//! ```text
//! S    = (I + A W A^T)^-1
//! q_mu = S A W r
//! ```
//!
//! and the ELBO there equals the collapsed bound. The fit sets q to this value at every
//! full-data evaluation ("profiling q out"): the optimiser then moves only the hyperparameters
//! and Z, on the collapsed bound, whose gradient at q* is the ELBO's own (envelope theorem:
//! d ELBO / d q = 0 there), so the backend's ELBO gradient serves unchanged. The jitter follows
//! the backend's rule (`ElboOptions::jitter_at`), so L is the factor the ELBO uses.
//! Cost per member: about 2 M^2 n flops (A and A W A^T) plus O(M^3), the order of one ELBO.

use crate::data::Dataset;
use crate::svgp::{ElboOptions, SvgpParams};
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::Axis;
use rayon::prelude::*;

/// Lower Cholesky factor in place of a column-major (m, m) matrix (upper part zeroed); false
/// when a pivot is not positive and finite.
fn cholesky(a: &mut [f64], m: usize) -> bool {
    for j in 0..m {
        let mut d = a[j * m + j];
        for k in 0..j {
            d -= a[k * m + j] * a[k * m + j];
        }
        if !(d > 0.0 && d.is_finite()) {
            return false;
        }
        let d = d.sqrt();
        a[j * m + j] = d;
        for i in j + 1..m {
            let mut v = a[j * m + i];
            for k in 0..j {
                v -= a[k * m + i] * a[k * m + j];
            }
            a[j * m + i] = v / d;
        }
        for i in 0..j {
            a[j * m + i] = 0.0;
        }
    }
    true
}

/// Overwrites the q_mu and q_sqrt of each listed member of `params` with the optimal q for its
/// hyperparameters and Z on `data` (its observed points), members in parallel. A member whose
/// k(Z, Z) cannot be factorised at the largest jitter, or whose result is not finite, keeps its
/// q (its evaluation then reports the failure).
pub(crate) fn set_optimal_q(data: &Dataset, params: &mut SvgpParams, members: &[usize], opts: &ElboOptions) {
    let found: Vec<Option<(Vec<f64>, Vec<f64>)>> = members
        .par_iter()
        .map(|&b| if data.n_observed(b) > 0 { optimal_q(data, params, b, opts) } else { None })
        .collect();
    let m = params.n_inducing();
    for (&b, q) in members.iter().zip(found) {
        if let Some((q_mu, q_sqrt)) = q {
            for i in 0..m {
                params.q_mu[[b, i]] = q_mu[i];
                for j in 0..m {
                    params.q_sqrt[[b, i, j]] = q_sqrt[i * m + j];
                }
            }
        }
    }
}

/// Member b's optimal (q_mu, q_sqrt row-major (M, M), zeros above the diagonal), or None.
fn optimal_q(data: &Dataset, params: &SvgpParams, b: usize, opts: &ElboOptions) -> Option<(Vec<f64>, Vec<f64>)> {
    let (m, d) = (params.n_inducing(), params.n_dims());
    let hyp = &params.hyp;
    let (s, noise, mean) = (hyp.outputscale[b], hyp.noise[b], hyp.mean[b]);
    let alpha = hyp.alpha.as_ref().map_or(1.0, |a| a[b]);
    let kernel = hyp.kernel;
    let ls = hyp.lengthscale.row(b);
    let z = params.z.index_axis(Axis(0), b);
    let obs = data.observed(b);
    let n = obs.len();
    let xb = data.x().member(b);
    // Points centred on the mean of Z (as the backend centres them) and scaled, point-major:
    // Z (m, d) and the observed x (n, d).
    let centre: Vec<f64> = (0..d).map(|k| z.column(k).sum() / m as f64).collect();
    let zs: Vec<f64> = (0..m * d).map(|jk| (z[[jk / d, jk % d]] - centre[jk % d]) / ls[jk % d]).collect();
    let xs: Vec<f64> =
        obs.iter().flat_map(|&i| (0..d).map(move |k| (i, k))).map(|(i, k)| (xb[[i, k]] - centre[k]) / ls[k]).collect();
    // Column-major (m, cols) kernel between Z and `pts` (cols points): r^2, then s phi (vectorised).
    let cross = |pts: &[f64], cols: usize| {
        let mut k = vec![0.0; m * cols];
        for c in 0..cols {
            let p = &pts[c * d..(c + 1) * d];
            for j in 0..m {
                let q = &zs[j * d..(j + 1) * d];
                k[c * m + j] = p.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
            }
        }
        crate::kernel::transform(kernel, &mut k, alpha, None, None);
        k.iter_mut().for_each(|v| *v *= s);
        k
    };
    // k(Z, Z) and its jittered factor, by the backend's rule.
    let kzz = cross(&zs, m);
    let mut l = vec![0.0; m * m];
    let factored = (0..=opts.jitter.retries).any(|k| {
        l.copy_from_slice(&kzz);
        let jitter = opts.jitter_at(k, s);
        for j in 0..m {
            l[j * m + j] += jitter;
        }
        cholesky(&mut l, m)
    });
    if !factored {
        return None;
    }
    // A = L^-1 k(Z, X) (m, n), then Aw = A W^(1/2) and h = A W r.
    let mut a = cross(&xs, n);
    solve_lower_triangular_in_place(
        MatRef::from_column_major_slice(&l, m, m),
        MatMut::from_column_major_slice_mut(&mut a, m, n),
        Par::Seq,
    );
    let mut h = vec![0.0; m];
    for (col, &i) in obs.iter().enumerate() {
        let w = 1.0 / (noise + data.yvar_at(b, i));
        let r = data.y()[[b, i]] - mean;
        let (ws, wr) = (w.sqrt(), w * r);
        for (hj, aj) in h.iter_mut().zip(&mut a[col * m..(col + 1) * m]) {
            *hj += *aj * wr;
            *aj *= ws;
        }
    }
    // B = I + Aw Aw^T = LB LB^T; S = B^-1 = LB^-T LB^-1.
    let mut lb = vec![0.0; m * m];
    let aw = MatRef::from_column_major_slice(&a, m, n);
    matmul(MatMut::from_column_major_slice_mut(&mut lb, m, m), Accum::Replace, aw, aw.transpose(), 1.0, Par::Seq);
    for j in 0..m {
        lb[j * m + j] += 1.0;
    }
    if !cholesky(&mut lb, m) {
        return None;
    }
    let mut inv = vec![0.0; m * m];
    for j in 0..m {
        inv[j * m + j] = 1.0;
    }
    solve_lower_triangular_in_place(
        MatRef::from_column_major_slice(&lb, m, m),
        MatMut::from_column_major_slice_mut(&mut inv, m, m),
        Par::Seq,
    );
    // S = inv^T inv; q_mu = S h; q_sqrt = chol(S).
    let mut cov = vec![0.0; m * m];
    let iv = MatRef::from_column_major_slice(&inv, m, m);
    matmul(MatMut::from_column_major_slice_mut(&mut cov, m, m), Accum::Replace, iv.transpose(), iv, 1.0, Par::Seq);
    let q_mu: Vec<f64> = (0..m).map(|i| (0..m).map(|j| cov[j * m + i] * h[j]).sum()).collect();
    if !cholesky(&mut cov, m) || q_mu.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let q_sqrt = (0..m * m).map(|ij| if ij % m <= ij / m { cov[(ij % m) * m + ij / m] } else { 0.0 }).collect();
    Some((q_mu, q_sqrt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Hyperparameters, Inputs};
    use crate::svgp::ElboRequest;
    use ndarray::{Array2, Array3};

    /// At the optimal q the ELBO's gradient in q_mu and q_sqrt vanishes, and any other q gives
    /// less: the defining property, checked with the backend's own ELBO and gradient.
    #[test]
    fn the_optimal_q_is_a_stationary_maximum_of_the_elbo() {
        let (n, m) = (40, 6);
        let x = Array3::from_shape_fn((2, n, 1), |(b, i, _)| i as f64 / n as f64 * 3.0 + b as f64);
        let y = Array2::from_shape_fn((2, n), |(b, i)| ((i as f64) * 0.37).sin() + 0.1 * (b as f64 + (i % 3) as f64));
        let yvar = Array2::from_shape_fn((2, n), |(_, i)| 0.01 * (i % 4) as f64);
        let data = Dataset::new(Inputs::Batched(x), y).unwrap().with_yvar(yvar).unwrap();
        let z = Array3::from_shape_fn((2, m, 1), |(b, j, _)| j as f64 * 0.5 + b as f64 + 0.1);
        let mut hyp = Hyperparameters::broadcast(2, &[0.7], 1.3, 0.05, 0.2);
        hyp.noise[1] = 0.2;
        let mut p = SvgpParams::whitened_prior(z, hyp);
        let opts = ElboOptions::default();
        set_optimal_q(&data, &mut p, &[0, 1], &opts);
        let r = ElboRequest::new(&data, &p).run().unwrap();
        let g = r.gradient.as_ref().unwrap();
        assert!(g.q_mu.iter().all(|v| v.abs() < 1e-8), "{:?}", g.q_mu);
        for b in 0..2 {
            for i in 0..m {
                for j in 0..=i {
                    assert!(g.q_sqrt[[b, i, j]].abs() < 1e-7, "{}", g.q_sqrt[[b, i, j]]);
                }
            }
        }
        let mut other = p.clone();
        other.q_mu[[0, 2]] += 0.05;
        other.q_sqrt[[1, 3, 1]] += 0.05;
        let r2 = ElboRequest::new(&data, &other).run().unwrap();
        assert!(r2.elbo[0] < r.elbo[0] && r2.elbo[1] < r.elbo[1]);
    }
}
