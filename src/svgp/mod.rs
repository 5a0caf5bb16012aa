//! Sparse variational GPs (docs/design.md section 11): the second model of the crate, one per
//! member, with its own inducing inputs, whitened variational distribution and hyperparameters.
//!
//! Member b has M inducing inputs Z_b (M, D) and q(v_b) = N(q_mu_b, S_b), S_b = Q_b Q_b^T with
//! Q_b = q_sqrt_b lower triangular; u_b = L_b v_b, where L_b L_b^T = k(Z_b, Z_b) + eps s_b I
//! (eps = 1e-6 in f64, 1e-4 in f32, x10 per retry when the factorisation fails; the eps s_b
//! used is reported as the member's jitter). With A = L_b^-1 k(Z_b, X_b) and noise variances
//! sigma2_i = noise_b + yvar_i:
//!
//! ```text
//! mu_i    = m_b + (A^T q_mu)_i
//! var_f_i = s_b - sum_j A_ji^2 + (A^T S A)_ii
//! elbo_b  = c sum_i [ -0.5 log(2 pi sigma2_i) - ((y_i - mu_i)^2 + var_f_i) / (2 sigma2_i) ]
//!           - 0.5 (tr S + q_mu^T q_mu - M - log|S|)
//! ```
//!
//! with c = 1 on the full data and c = n_b / S on a mini-batch of S of the member's n_b points.
//!
//! This module is the model's home: its parameters ([`SvgpParams`]), the backend's answer
//! ([`ElboBatch`]), the public evaluation ([`ElboRequest`]) and prediction ([`predict`]), and
//! the k-means++ start of the inducing inputs ([`kmeans_pp`]). The arithmetic lives with the
//! backends (`backend/cpu/svgp/`, `backend/cuda/svgp.rs`, `kernels/svgp.cu`), the fit in
//! `fit/svgp.rs`, the optimiser's vector layout in [`crate::layout::SvgpLayout`].

pub mod params;

pub use params::{ElboBatch, ElboOptions, SvgpGradient, SvgpParams};

use crate::backend::{kind, Backend, BackendChoice, Kind, PredictOptions, Prediction};
use crate::data::{Dataset, Hyperparameters, Inputs, Precision, Status};
use crate::error::{Error, Result};
use crate::model::{check_prediction, EvalRequest, Evaluate};
use crate::prior::ResolvedPriors;
use ndarray::{s, Array1, Array2, Array3, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The backend SVGP work runs on for a choice: as for exact GPs, except that `Auto` is the CPU.
/// The CUDA SVGP kernels pass the host emulation but have not yet run on a GPU, so they run only
/// when asked for by name (docs/design.md section 11).
pub fn backend_choice(choice: BackendChoice) -> BackendChoice {
    match choice {
        BackendChoice::Auto => BackendChoice::Cpu,
        c => c,
    }
}

/// The SVGP's backend operations on any backend: the model reaches each backend's own through
/// [`kind`], so the `Backend` trait names no SVGP type (docs/design.md, "Models"). Methods of
/// `dyn Backend` itself, so `be.elbo(..)` needs no import beside `Backend`.
impl dyn Backend + '_ {
    /// SVGP ELBO (and gradient) of the members listed in `members` (all when None), in that
    /// order (docs/design.md section 11). Row b of `data` goes with row b of `params`. The data
    /// term of listed member i is scaled by `scale[i]` (1 when None): n_b / S on a mini-batch.
    ///
    /// # Errors
    /// A listed member out of range, `scale` of the wrong length, memory (`opts.max_memory`),
    /// [`Error::BackendUnavailable`] for a backend made outside this crate.
    pub fn elbo(
        &self,
        data: &Dataset,
        params: &SvgpParams,
        members: Option<&[usize]>,
        scale: Option<&[f64]>,
        opts: &ElboOptions,
    ) -> Result<ElboBatch> {
        match kind(self) {
            Kind::Cpu(be) => be.elbo(data, params, members, scale, opts),
            Kind::Cuda(be) => be.elbo(data, params, members, scale, opts),
            Kind::Other => Err(no_svgp(self)),
        }
    }

    /// SVGP posterior at test points `test` ((M, D) shared or (B, M, D)); needs no data.
    ///
    /// # Errors
    /// As [`predict`] (which checks the parameters and test points first).
    pub fn svgp_predict(&self, params: &SvgpParams, test: &Inputs, opts: &PredictOptions) -> Result<Prediction> {
        match kind(self) {
            Kind::Cpu(be) => be.svgp_predict(params, test, opts),
            Kind::Cuda(be) => be.svgp_predict(params, test, opts),
            Kind::Other => Err(no_svgp(self)),
        }
    }
}

fn no_svgp(be: &dyn Backend) -> Error {
    Error::BackendUnavailable { backend: be.name().into(), reason: "it has no SVGP operations".into() }
}

/// The MAP objective of a batch of SVGPs: `elbo + log_prior`, with its gradient.
///
/// ```
/// # use batchgp::*;
/// # use batchgp::svgp::*;
/// # use ndarray::*;
/// let x = Array2::from_shape_fn((50, 1), |(i, _)| i as f64 / 50.0);
/// let y = Array2::from_shape_fn((2, 50), |(b, i)| (6.0 * i as f64 / 50.0 + b as f64).sin());
/// let data = Dataset::new(x, y)?;
/// let hyp = Hyperparameters::broadcast(2, &[0.3], 1.0, 0.1, 0.0);
/// let z = Array3::from_shape_fn((2, 8, 1), |(_, j, _)| j as f64 / 8.0);
/// let params = SvgpParams::whitened_prior(z, hyp);
/// let r = ElboRequest::new(&data, &params).backend(BackendChoice::Cpu).run()?;
/// assert!(r.elbo.iter().all(|v| v.is_finite()));
/// # Ok::<(), batchgp::Error>(())
/// ```
pub type ElboRequest<'a> = EvalRequest<'a, SvgpParams>;

/// The result of an [`ElboRequest`]: arrays over the B members.
#[derive(Debug, Clone, PartialEq)]
pub struct ElboReport {
    pub elbo: Array1<f64>,
    /// (B,) sum of log prior densities of the hyperparameters (0 without priors).
    pub log_prior: Array1<f64>,
    /// (B,) elbo + log_prior.
    pub objective: Array1<f64>,
    /// Gradient of the objective.
    pub gradient: Option<SvgpGradient>,
    pub status: Vec<Status>,
    pub jitter: Array1<f64>,
}

impl ElboRequest<'_> {
    /// Memory budget in bytes on the CPU (default: the memory available); a member that cannot
    /// fit alone is rejected with [`Error::OutOfMemory`] before any work.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.opts.max_memory = Some(bytes);
        self
    }
}

impl Evaluate for SvgpParams {
    type Options = ElboOptions;
    type Report = ElboReport;
    fn options(precision: Precision) -> ElboOptions {
        ElboOptions::new(precision)
    }
    fn with_precision(o: ElboOptions, p: Precision) -> ElboOptions {
        ElboOptions { gradient: o.gradient, max_memory: o.max_memory, ..ElboOptions::new(p) }
    }
    fn set_gradient(o: &mut ElboOptions, on: bool) {
        o.gradient = on;
    }
    fn backend_choice(choice: BackendChoice) -> BackendChoice {
        backend_choice(choice)
    }
    fn validate(&self, data: &Dataset) -> Result<()> {
        SvgpParams::validate(self, data.batch_size(), data.n_dims())
    }
    fn evaluate(
        &self,
        be: &dyn Backend,
        data: &Dataset,
        priors: &ResolvedPriors,
        opts: &ElboOptions,
    ) -> Result<ElboReport> {
        let raw = be.elbo(data, self, None, None, opts)?;
        Ok(combine(raw, priors, &self.hyp, None))
    }
}

/// Adds the log prior (and its gradient) to a backend's ELBO for the members `rows`.
pub(crate) fn combine(
    raw: ElboBatch,
    priors: &ResolvedPriors,
    hyp: &Hyperparameters,
    rows: Option<&[usize]>,
) -> ElboReport {
    let p = priors.evaluate(hyp, rows);
    let objective = &raw.elbo + &p.log_prior;
    let gradient = raw.gradient.map(|g| SvgpGradient { hyp: g.hyp.with_prior(&p), ..g });
    ElboReport { elbo: raw.elbo, log_prior: p.log_prior, objective, gradient, status: raw.status, jitter: raw.jitter }
}

/// The SVGP posterior of every member at test points `test` ((M*, D) shared or (B, M*, D)):
/// mean m + A*^T q_mu and variance s - |A*|^2 + |Q^T A*|^2 per point, with A* = L^-1 k(Z, x*);
/// the training data are not needed.
///
/// # Errors
/// Parameter shapes or domains, test points of the wrong shape or non-finite.
pub fn predict(be: &dyn Backend, params: &SvgpParams, test: &Inputs, opts: &PredictOptions) -> Result<Prediction> {
    let (b, d) = (params.batch_size(), params.n_dims());
    params.validate(b, d)?;
    check_prediction(b, d, test, opts)?;
    be.svgp_predict(params, test, opts)
}

/// k-means++ seeding (Arthur and Vassilvitskii 2007): `m` rows of `x` (n, D), the first drawn
/// uniformly, each next one with probability proportional to its squared distance to the
/// nearest row already chosen. With fewer than `m` distinct rows, the rest repeat chosen rows
/// shifted by a small multiple of the spread so that k(Z, Z) stays positive definite.
pub fn kmeans_pp(x: ArrayView2<f64>, m: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    let (n, d) = x.dim();
    let mut z = Array2::zeros((m, d));
    if n == 0 || m == 0 {
        return z;
    }
    let spread: Vec<f64> = (0..d)
        .map(|k| {
            let col = x.column(k);
            let mean = col.sum() / n as f64;
            let var = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
            if var > 0.0 {
                var.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    let dist2 = |i: usize, zrow: ndarray::ArrayView1<f64>| -> f64 {
        (0..d).map(|k| ((x[[i, k]] - zrow[k]) / spread[k]).powi(2)).sum()
    };
    let first = rng.random_range(0..n);
    z.row_mut(0).assign(&x.row(first));
    let mut near: Vec<f64> = (0..n).map(|i| dist2(i, z.row(0))).collect();
    for j in 1..m {
        let total: f64 = near.iter().sum();
        let pick = if total > 0.0 {
            let mut t = rng.random::<f64>() * total;
            let mut pick = n - 1;
            for (i, w) in near.iter().enumerate() {
                if t < *w {
                    pick = i;
                    break;
                }
                t -= w;
            }
            Some(pick)
        } else {
            None
        };
        match pick {
            Some(i) => z.row_mut(j).assign(&x.row(i)),
            None => {
                // Every point coincides with a chosen one: perturb a chosen row.
                let src = z.row(j % j.max(1)).to_owned();
                for k in 0..d {
                    z[[j, k]] = src[k] + 1e-3 * spread[k] * ((j as f64) * 0.618_034).fract();
                }
            }
        }
        let zj = z.row(j).to_owned();
        for (i, w) in near.iter_mut().enumerate() {
            *w = w.min(dist2(i, zj.view()));
        }
    }
    z
}

/// Inducing inputs for every member by [`kmeans_pp`] on its observed x; member b draws from
/// ChaCha8 stream `first_member + b` of `seed`, so that it does not depend on the batch around it.
pub fn init_inducing(data: &Dataset, m: usize, seed: u64, first_member: u64) -> Array3<f64> {
    let (b, d) = (data.batch_size(), data.n_dims());
    let mut z = Array3::zeros((b, m, d));
    for mb in 0..b {
        let obs = data.observed(mb);
        let xb = data.x().member(mb);
        let xo = Array2::from_shape_fn((obs.len(), d), |(i, k)| xb[[obs[i], k]]);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(first_member + mb as u64);
        z.slice_mut(s![mb, .., ..]).assign(&kmeans_pp(xo.view(), m, &mut rng));
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::cpu_elbo_bytes;
    use crate::fit::SvgpFitRequest;
    use crate::kernel::Kernel;

    /// B members of n points in D = 2 on a shared x, and their start at M = k-means++ points.
    fn batch(b: usize, n: usize, m: usize) -> (Dataset, SvgpParams) {
        let x = Array2::from_shape_fn((n, 2), |(i, k)| ((i * (k + 3)) % n) as f64 / n as f64);
        let y = Array2::from_shape_fn((b, n), |(m, i)| (4.0 * x[[i, 0]] + m as f64).sin() + 0.5 * x[[i, 1]]);
        let data = Dataset::new(x, y).unwrap();
        let hyp = Hyperparameters::broadcast(b, &[0.4, 0.6], 1.0, 0.05, 0.1);
        let z = init_inducing(&data, m, 3, 0);
        let mut p = SvgpParams::whitened_prior(z, hyp);
        p.q_mu.iter_mut().enumerate().for_each(|(i, v)| *v = (i as f64 * 0.37).sin());
        (data, p)
    }

    #[test]
    fn an_elbo_in_memory_chunks_equals_the_whole_and_a_member_too_large_is_refused() {
        let (b, n, m) = (7, 40, 6);
        let (data, p) = batch(b, n, m);
        let whole = ElboRequest::new(&data, &p).backend(BackendChoice::Cpu).run().unwrap();
        let per = cpu_elbo_bytes(n, m, 2, Kernel::Rbf, Precision::F64, true);
        let outputs = (b * (3 + m * 2 + m + m * m + 5) * 16) as u64;
        // Two members in flight, then one.
        for budget in [outputs + 2 * per, outputs + per] {
            let r = ElboRequest::new(&data, &p).backend(BackendChoice::Cpu).max_memory(budget).run().unwrap();
            assert_eq!(r, whole, "budget {budget}");
        }
        let e = ElboRequest::new(&data, &p).backend(BackendChoice::Cpu).max_memory(per / 2).run().unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { n: 40, .. }), "{e}");
    }

    #[test]
    fn an_svgp_fit_plans_its_members_memory_before_work() {
        let (b, n, m) = (3, 30, 5);
        let (data, _) = batch(b, n, m);
        let fit = |budget: Option<u64>| {
            let r = SvgpFitRequest::new(&data).num_inducing(m).steps(15).backend(BackendChoice::Cpu);
            match budget {
                Some(bytes) => r.max_memory(bytes).run(),
                None => r.run(),
            }
        };
        let per = cpu_elbo_bytes(n, m, 2, Kernel::Rbf, Precision::F64, true);
        // Refused by the fit's own plan (its figure is one member's workspace, no outputs).
        match fit(Some(per - 1)) {
            Err(Error::OutOfMemory { n: 30, needed, budget }) => assert_eq!((needed, budget), (per, per - 1)),
            other => panic!("expected OutOfMemory, got {other:?}"),
        }
        // One member in flight at a time fits as the whole batch does.
        let whole = fit(None).unwrap();
        let outputs = (b * (3 + m * 2 + m + m * m + 5) * 16) as u64;
        let chunked = fit(Some(outputs + per)).unwrap();
        assert_eq!(chunked.model.elbo, whole.model.elbo);
        assert_eq!(chunked.model.params, whole.model.params);
    }
}
