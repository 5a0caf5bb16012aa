//! Fitting batched SVGPs (docs/design.md section 11): the SVGP as a [`Model`] of [`FitRequest`]
//! (its own options, start and result) and a [`BatchObjective`], run by the same batched Adam and
//! L-BFGS as the exact GP, with mini-batches of each member's data.
//!
//! # Coordinates
//! The hyperparameters use the exact GP's scale-free maps (`exact::Units`: log lengthscale in
//! units of the spread of x, log outputscale and noise in units of var(y), the mean in units of
//! sd(y) about mean(y), a uniform prior's sigmoid, a fixed value). Z is affine in the spread of
//! x about its mean, per dimension; q_mu and q_sqrt are whitened, so unit-free already. The ELBO
//! changes by -n log c when y is multiplied by c, so its gradient in these coordinates, and the
//! steps, do not depend on the data's units.
//!
//! # Mini-batches
//! With a batch size S, each evaluation of member e draws S of its n_e observed points without
//! replacement (from its own ChaCha8 stream: seed, stream first_member + e, so a member's
//! batches do not depend on the batch around it) and scales the data term by n_e / S (Hensman
//! et al. 2013); a member with n_e <= S uses all its points and c = 1. The estimates are
//! unbiased, so Adam follows the full ELBO's gradient on average. L-BFGS needs the full data.

use super::driver::{self, MemberOptimizer};
use super::exact::Units;
use super::objective::{BatchObjective, MemberEval};
use super::request::{FitRequest, Model, Svgp, SvgpOptions};
use super::transform::Map;
use super::{FitResult, Optimizer, Termination, ALPHA_MAX};
use crate::backend::{memory, Backend, BackendChoice, PredictOptions, Prediction};
use crate::data::{Dataset, Hyperparameters, Inputs, Status};
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::layout::{Layout, SvgpEntry, SvgpLayout, Target};
use crate::prior::ResolvedPriors;
use crate::svgp::{init_inducing, ElboOptions, SvgpParams};
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// The smallest natural-gradient step of q on mini-batches (GPflow's customary 0.1): the later
/// batches are averaged over about 1 / NATURAL_RATE draws.
const NATURAL_RATE: f64 = 0.1;

/// What an SVGP fit returns: the one [`FitResult`] with the SVGP's own part, [`SvgpFit`].
/// Its status is Ok or Jitter (converged), MaxIter (stopped by the step limit or a stalled line
/// search: see `reason`), Failed or Empty; it has one start per member.
pub type SvgpFitResult = FitResult<Svgp>;

/// The SVGP's own part of its [`FitResult`] (`r.model`). Arrays are (B,) unless noted.
#[derive(Debug, Clone, PartialEq)]
pub struct SvgpFit {
    /// The fitted parameters (NaN hyperparameters for a failed member).
    pub params: SvgpParams,
    /// The full-data ELBO at the fitted parameters.
    pub elbo: Array1<f64>,
    /// (T, B): the value minimised (-(elbo + log prior), on the evaluation's mini-batch) at every
    /// batched evaluation round; NaN once a member has stopped.
    pub loss: Array2<f64>,
}

impl Model for Svgp {
    type Options = SvgpOptions;
    type Fitted = SvgpFit;
    type Params = SvgpParams;
    fn params(fitted: &SvgpFit) -> &SvgpParams {
        &fitted.params
    }
    /// The ELBO's on the full data (the fit's last evaluation), at the M the fit will use.
    fn member_bytes(req: &FitRequest<'_, Svgp>) -> u64 {
        let (n, d) = (req.data.n_points(), req.data.n_dims());
        crate::backend::memory::cpu_elbo_bytes(n, req.inducing_count(), d, req.kernel, req.precision, true)
    }
    fn max_memory(req: &FitRequest<'_, Svgp>) -> Option<u64> {
        req.model.max_memory
    }
    /// The SVGP's posterior needs no training data.
    fn predict(
        be: &dyn Backend,
        _data: &Dataset,
        params: &SvgpParams,
        test: &Inputs,
        opts: &PredictOptions,
    ) -> Result<Prediction> {
        crate::svgp::predict(be, params, test, opts)
    }
    fn defaults() -> (SvgpOptions, Optimizer, f64) {
        (SvgpOptions::default(), Optimizer::Adam, 0.05)
    }
    fn check(req: &FitRequest<'_, Svgp>) -> Result<()> {
        let o = &req.model;
        if o.batch_size == Some(0) {
            return Err(Error::option("batch_size", "must be >= 1"));
        }
        if o.batch_size.is_some() && req.optimizer == Optimizer::Lbfgs {
            return Err(Error::option(
                "batch_size",
                "mini-batches need the adam optimizer (L-BFGS assumes a deterministic objective)",
            ));
        }
        if o.num_inducing == Some(0) {
            return Err(Error::option("inducing", "must be >= 1"));
        }
        plan(req)
    }
    /// SVGP work runs where [`crate::svgp::backend_choice`] says (`Auto` is the CPU).
    fn backend_choice(choice: BackendChoice) -> BackendChoice {
        crate::svgp::backend_choice(choice)
    }
    fn run(req: FitRequest<'_, Svgp>) -> Result<SvgpFitResult> {
        req.run_svgp()
    }
}

/// Plans what an SVGP fit's options imply before any of it is made: per member its parameters
/// (Z, q_mu, q_sqrt: M x M) three times over (start, current, result) and its optimiser state
/// over M D + M + M (M + 1) / 2 coordinates; one ELBO workspace (M x M and N x M matrices) per
/// thread; the k-means++ start; and the loss history, one row of B per step (twice: rounds and
/// the result).
///
/// # Errors
/// [`Error::TooLarge`] naming the inducing points, the steps and the members.
fn plan(req: &FitRequest<'_, Svgp>) -> Result<()> {
    let data = req.data;
    let (b, n, d) = (data.batch_size() as u64, data.n_points() as u64, data.n_dims() as u64);
    let m = match &req.model.init {
        Some(p) => p.n_inducing() as u64,
        None => req.model.num_inducing.map_or(n.min(64), |m| m as u64).max(1),
    };
    let mm = m.saturating_mul(m);
    let p = memory::product(&[m, d.saturating_add(1)])
        .saturating_add(m.saturating_mul(m.saturating_add(1)) / 2)
        .saturating_add(Layout::new(req.kernel, d as usize).len() as u64);
    let params = memory::product(&[3 * 8, mm.saturating_add(m.saturating_mul(d.saturating_add(1)))]);
    let per_member = params.saturating_add(memory::member_state_bytes(p));
    let s = req.model.batch_size.map_or(n, |s| (s as u64).min(n));
    let workspace = memory::product(&[8, memory::product(&[6, mm]).saturating_add(memory::product(&[4, s, m]))]);
    let threads = (rayon::current_num_threads() as u64).min(b.max(1));
    let kmeans = memory::product(&[8, n.saturating_add(m.saturating_mul(d))]);
    let history =
        memory::product(&[2, (req.max_iter as u64).saturating_add(1), b.saturating_mul(8).saturating_add(24)]);
    let needed = memory::product(&[b, per_member])
        .saturating_add(memory::product(&[threads, workspace]))
        .saturating_add(kmeans)
        .saturating_add(history);
    memory::plan(
        || format!("an SVGP fit of {b} members with M = {m} inducing points and {} steps", req.max_iter),
        needed,
        None,
    )
}

/// The SVGP's own options and its fit.
impl FitRequest<'_, Svgp> {
    pub fn num_inducing(mut self, m: usize) -> Self {
        self.model.num_inducing = Some(m);
        self
    }
    pub fn init(mut self, params: &SvgpParams) -> Self {
        self.model.init = Some(params.clone());
        self
    }
    /// Holds the inducing inputs Z at their starting values.
    pub fn fix_inducing(mut self, on: bool) -> Self {
        self.model.fix_inducing = on;
        self
    }
    /// Mini-batches of S points per member (Adam only).
    pub fn batch_size(mut self, s: usize) -> Self {
        self.model.batch_size = Some(s);
        self
    }
    /// Memory budget in bytes on the CPU (default: the memory available); see
    /// [`crate::backend::memory`].
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.model.max_memory = Some(bytes);
        self
    }

    /// M, the inducing points per member: `init`'s, else `num_inducing`, else min(N, 64).
    fn inducing_count(&self) -> usize {
        match &self.model.init {
            Some(p) => p.n_inducing(),
            None => self.model.num_inducing.unwrap_or(self.data.n_points().min(64)).max(1),
        }
    }
    /// Whether q takes its closed-form optimum (`backend::cpu::set_optimal_q`): at every evaluation on the
    /// full data (the optimiser then moves the hyperparameters and Z only); with mini-batches,
    /// Adam moves q on the unbiased estimates and q takes its full-data optimum for the kept
    /// hyperparameters and Z at the end (one full pass). Default on; off, q_mu and q_sqrt are
    /// optimised as coordinates only.
    pub fn optimal_q(mut self, on: bool) -> Self {
        self.model.optimal_q = on;
        self
    }

    /// The starting parameters: `init`, or k-means++ Z, q = N(0, I) and the exact GP's start.
    fn start(&self) -> Result<SvgpParams> {
        let (b, d) = (self.data.batch_size(), self.data.n_dims());
        match &self.model.init {
            Some(p) => {
                self.check_init_kernel("parameters", p.kernel())?;
                p.validate(b, d)?;
                Ok(p.clone())
            }
            None => {
                let z = init_inducing(self.data, self.inducing_count(), self.seed, self.first_member);
                let hyp = FitRequest::default_init(self.data).with_kernel(self.kernel);
                Ok(SvgpParams::whitened_prior(z, hyp))
            }
        }
    }

    /// Runs the fit.
    ///
    /// # Errors
    /// Invalid init, priors or options; an unavailable backend; [`Error::Interrupted`].
    fn run_svgp(mut self) -> Result<SvgpFitResult> {
        let data = self.data;
        let (b, d) = (data.batch_size(), data.n_dims());
        let mut start = self.start()?;
        let m = start.n_inducing();
        // Full data: q at its optimum at every evaluation; mini-batches: q by natural-gradient
        // steps toward each batch's estimate of it (with `optimal_q`), else Adam's.
        let full = self.model.batch_size.is_none_or(|s| (0..b).all(|e| data.n_observed(e) <= s));
        let profile = self.model.optimal_q && full;
        let natural = self.model.optimal_q && !full;
        // Mini-batch gradients are estimates: Adam's rate anneals so the iterates settle.
        self.anneal = !full;
        if profile {
            crate::backend::cpu::set_optimal_q(
                data,
                &mut start,
                &(0..b).collect::<Vec<_>>(),
                &ElboOptions::new(self.precision),
            );
        }
        let layout = SvgpLayout::new(self.kernel, d, m);
        let mut priors = self.priors.resolve(b, d)?;
        for t in Target::ALL {
            priors.hold(t, |_| self.fixed.contains(&t));
        }
        let mut owned = None;
        let be = self.backend_in(&mut owned)?;
        let units = Units::of(data);
        let maps: Vec<Vec<Map>> = (0..b).map(|e| self.maps(layout, &start, &priors, &units, e)).collect();
        let mut states: Vec<Box<dyn MemberOptimizer>> = (0..b)
            .map(|e| {
                let u: Vec<f64> = (0..layout.len()).map(|c| maps[e][c].u(read(&start, layout.entry(c), e))).collect();
                let free: Vec<bool> = (0..layout.len())
                    .map(|c| {
                        maps[e][c].free()
                            && !((profile || natural)
                                && matches!(layout.entry(c), SvgpEntry::QMu(_) | SvgpEntry::QSqrt(..)))
                    })
                    .collect();
                let lower = vec![f64::NEG_INFINITY; layout.len()];
                let upper: Vec<f64> = (0..layout.len())
                    .map(|c| match (layout.entry(c), maps[e][c]) {
                        (SvgpEntry::Hyper(Target::Alpha, _), Map::Log { scale }) => (ALPHA_MAX / scale).ln(),
                        _ => f64::INFINITY,
                    })
                    .collect();
                self.member_optimizer(u, data.n_observed(e) > 0, free, lower, upper)
            })
            .collect();
        let mut objective = SvgpObjective {
            backend: be,
            data,
            layout,
            entries: (0..layout.len()).map(|c| layout.entry(c)).collect(),
            maps: &maps,
            priors,
            current: start,
            opts: ElboOptions { max_memory: self.model.max_memory, ..ElboOptions::new(self.precision) },
            batch_size: self.model.batch_size,
            rngs: (0..b)
                .map(|e| {
                    let mut r = ChaCha8Rng::seed_from_u64(self.seed ^ 0x5eed_ba7c);
                    r.set_stream(self.first_member + e as u64);
                    r
                })
                .collect(),
            pools: vec![Vec::new(); b],
            loss: Vec::new(),
            profile,
            natural_steps: natural.then(|| vec![0; b]),
        };
        let snapshot = |states: &driver::Members| {
            let mut h = objective_hyp(self.kernel, b, d);
            for (e, st) in states.iter().enumerate() {
                let u = st.point().0;
                for c in 0..layout.hyp.len() {
                    let (t, k) = layout.hyp.coordinate(c);
                    h.set(t, e, k, maps[e][c].theta(u[c]));
                }
            }
            h
        };
        let mut observer = self.observer.take();
        driver::drive(&mut objective, &mut states, observer.as_deref_mut(), &snapshot)?;
        let res = objective.fold(&states)?;
        if let Some(o) = observer {
            o.finish(&res.status);
        }
        Ok(res)
    }

    /// Member e's coordinate maps.
    fn maps(
        &self,
        layout: SvgpLayout,
        start: &SvgpParams,
        priors: &ResolvedPriors,
        units: &Units,
        e: usize,
    ) -> Vec<Map> {
        (0..layout.len())
            .map(|c| match layout.entry(c) {
                SvgpEntry::Hyper(t, k) => {
                    if self.fixed.contains(&t) {
                        Map::Fixed { value: start.hyp.get(t, e, k) }
                    } else if let Some((low, high)) = priors.bounds(t, e, k) {
                        Map::Sigmoid { low, high }
                    } else {
                        units.map(t, e, k)
                    }
                }
                SvgpEntry::Z(j, k) => {
                    if self.model.fix_inducing {
                        Map::Fixed { value: start.z[[e, j, k]] }
                    } else {
                        let mean = self.data.observed(e).iter().map(|&i| self.data.x().member(e)[[i, k]]).sum::<f64>()
                            / self.data.n_observed(e).max(1) as f64;
                        Map::Affine { offset: if mean.is_finite() { mean } else { 0.0 }, scale: units.x_scale[[e, k]] }
                    }
                }
                SvgpEntry::QMu(_) | SvgpEntry::QSqrt(..) => Map::Affine { offset: 0.0, scale: 1.0 },
            })
            .collect()
    }
}

fn objective_hyp(kernel: Kernel, b: usize, d: usize) -> Hyperparameters {
    Hyperparameters::broadcast(b, &vec![1.0; d], 1.0, 1.0, 0.0).with_kernel(kernel)
}

/// The natural value of `entry` of member e.
fn read(p: &SvgpParams, entry: SvgpEntry, e: usize) -> f64 {
    match entry {
        SvgpEntry::Hyper(t, k) => p.hyp.get(t, e, k),
        SvgpEntry::Z(j, k) => p.z[[e, j, k]],
        SvgpEntry::QMu(j) => p.q_mu[[e, j]],
        SvgpEntry::QSqrt(i, j) => p.q_sqrt[[e, i, j]],
    }
}

/// Writes the natural value of `entry` of member e.
fn write(p: &mut SvgpParams, entry: SvgpEntry, e: usize, v: f64) {
    match entry {
        SvgpEntry::Hyper(t, k) => p.hyp.set(t, e, k, v),
        SvgpEntry::Z(j, k) => p.z[[e, j, k]] = v,
        SvgpEntry::QMu(j) => p.q_mu[[e, j]] = v,
        SvgpEntry::QSqrt(i, j) => p.q_sqrt[[e, i, j]] = v,
    }
}

/// The SVGP objective of every member.
struct SvgpObjective<'a> {
    backend: &'a dyn Backend,
    data: &'a Dataset,
    layout: SvgpLayout,
    /// What each entry of a member's vector is (`layout.entry(c)`, computed once).
    entries: Vec<SvgpEntry>,
    maps: &'a [Vec<Map>],
    priors: ResolvedPriors,
    /// Natural values of every member at its last evaluated point.
    current: SvgpParams,
    opts: ElboOptions,
    batch_size: Option<usize>,
    rngs: Vec<ChaCha8Rng>,
    /// Per member: its observed indices, permuted in place by the mini-batch draws (a partial
    /// Fisher-Yates shuffle of any permutation draws uniformly), built on first use.
    pools: Vec<Vec<usize>>,
    /// One row per evaluation round.
    loss: Vec<Vec<f64>>,
    /// q set to its optimum at every load (full data only).
    profile: bool,
    /// Mini-batches with `optimal_q`: q is the objective's own state, moved by a natural-gradient
    /// step on each training batch (`backend::cpu::natural_step`); the count of steps per member.
    /// (q also takes its full-data optimum at the end.)
    natural_steps: Option<Vec<usize>>,
}

impl SvgpObjective<'_> {
    fn load(&mut self, active: &[usize], points: &[&[f64]]) {
        // q is not the optimiser's when it is profiled or stepped naturally.
        let own_q = self.profile || self.natural_steps.is_some();
        for (&e, u) in active.iter().zip(points) {
            for ((ui, map), entry) in u.iter().zip(&self.maps[e]).zip(&self.entries) {
                if !(own_q && matches!(entry, SvgpEntry::QMu(_) | SvgpEntry::QSqrt(..))) {
                    write(&mut self.current, *entry, e, map.theta(*ui));
                }
            }
        }
        if self.profile {
            crate::backend::cpu::set_optimal_q(self.data, &mut self.current, active, &self.opts);
        }
    }

    /// ELBO of the listed members at their loaded values: on a mini-batch when asked and any
    /// listed member has more points than the batch size.
    fn elbo(&mut self, active: &[usize], gradient: bool, full: bool) -> Result<crate::svgp::ElboReport> {
        let opts = ElboOptions { gradient, ..self.opts };
        let s = self.batch_size.filter(|&s| !full && active.iter().any(|&e| self.data.n_observed(e) > s));
        let raw = match s {
            Some(s) => {
                let (sub, scale) = super::minibatch::draw(self.data, &mut self.pools, &mut self.rngs, active, s)?;
                if let Some(steps) = self.natural_steps.as_mut().filter(|_| gradient) {
                    // A training step: q first moves toward this batch's estimate of its optimum,
                    // by 1 / (t + 1) (the running mean of the batches so far) down to NATURAL_RATE.
                    let gamma: Vec<f64> = active
                        .iter()
                        .map(|&e| {
                            steps[e] += 1;
                            (1.0 / steps[e] as f64).max(NATURAL_RATE)
                        })
                        .collect();
                    crate::backend::cpu::natural_step(&sub, &mut self.current, active, &scale, &gamma, &self.opts);
                }
                // Every member running, in order (the usual case with Adam): no copy of the
                // parameters.
                let every = active.len() == self.members() && active.iter().enumerate().all(|(i, &e)| i == e);
                let params = if every {
                    std::borrow::Cow::Borrowed(&self.current)
                } else {
                    std::borrow::Cow::Owned(self.current.select(active))
                };
                self.backend.elbo(&sub, &params, None, Some(&scale), &opts)?
            }
            None => self.backend.elbo(self.data, &self.current, Some(active), None, &opts)?,
        };
        Ok(crate::svgp::combine(raw, &self.priors, &self.current.hyp, Some(active)))
    }

    /// The kept point of every member, reported on the full data.
    fn fold(&mut self, states: &[Box<dyn MemberOptimizer>]) -> Result<SvgpFitResult> {
        let b = states.len();
        let all: Vec<usize> = (0..b).collect();
        let points: Vec<&[f64]> = states.iter().map(|s| s.point().0).collect();
        self.load(&all, &points);
        if self.natural_steps.is_some() {
            // Mini-batches: the kept hyperparameters and Z with q at its full-data optimum.
            crate::backend::cpu::set_optimal_q(self.data, &mut self.current, &all, &self.opts);
        }
        let r = self.elbo(&all, false, true)?;
        let mut params = self.current.clone();
        let nan = f64::NAN;
        let rounds = self.loss.len();
        let loss = Array2::from_shape_fn((rounds, b), |(t, e)| self.loss[t][e]);
        let fitted = SvgpFit { params: params.clone(), elbo: r.elbo.clone(), loss };
        let mut res = SvgpFitResult::unfitted(fitted, b, 1, rounds);
        res.log_prior = r.log_prior.clone();
        res.objective = r.objective.clone();
        res.jitter = r.jitter.clone();
        for (e, state) in states.iter().enumerate() {
            let reason = state.termination().unwrap_or(Termination::Failed);
            res.reason[e] = reason;
            res.iterations[e] = state.iterations();
            res.status[e] = reason.final_status(r.status[e], false);
            if res.status[e] == Status::Failed || res.status[e] == Status::Empty {
                for t in Target::ALL {
                    for k in 0..self.layout.hyp.width(t) {
                        if self.layout.hyp.has(t) {
                            params.hyp.set(t, e, k, nan);
                        }
                    }
                }
                res.model.elbo[e] = nan;
                res.objective[e] = nan;
                res.log_prior[e] = nan;
            } else {
                res.reached_best[e] = 1;
            }
        }
        res.model.params = params;
        Ok(res)
    }
}

impl BatchObjective for SvgpObjective<'_> {
    fn members(&self) -> usize {
        self.current.batch_size()
    }

    fn evaluate(&mut self, active: &[usize], points: &[&[f64]]) -> Result<Vec<MemberEval>> {
        self.load(active, points);
        let r = self.elbo(active, true, false)?;
        let g = r.gradient.as_ref().expect("gradient asked");
        let p = self.layout.len();
        let (maps, entries, current) = (self.maps, &self.entries, &self.current);
        let evals: Vec<MemberEval> = active
            .par_iter()
            .enumerate()
            .map(|(i, &e)| {
                if r.status[i] == Status::Failed {
                    return MemberEval::failed(p, r.jitter[i]);
                }
                let grad: Vec<f64> = (0..p)
                    .map(|c| {
                        let map = maps[e][c];
                        let entry = entries[c];
                        let theta = read(current, entry, e);
                        match entry {
                            SvgpEntry::Hyper(t, k) => -map.grad_u(t.positive(), theta, g.hyp.get(t, i, k)),
                            SvgpEntry::Z(j, k) => -map.grad_u(false, theta, g.z[[i, j, k]]),
                            SvgpEntry::QMu(j) => -map.grad_u(false, theta, g.q_mu[[i, j]]),
                            SvgpEntry::QSqrt(a, bb) => -map.grad_u(false, theta, g.q_sqrt[[i, a, bb]]),
                        }
                    })
                    .collect();
                MemberEval { f: -r.objective[i], grad, status: r.status[i], jitter: r.jitter[i] }
            })
            .collect();
        let mut row = vec![f64::NAN; self.members()];
        for (i, &e) in active.iter().enumerate() {
            if r.status[i] != Status::Failed {
                row[e] = -r.objective[i];
            }
        }
        // The history was planned for one row a step; rounds beyond that (line searches) grow
        // it fallibly, so that memory running out is an error, not an abort.
        self.loss.try_reserve(1).map_err(|_| Error::TooLarge {
            request: format!("the loss history's {} rows of {} members", self.loss.len() + 1, self.members()),
            needed: ((self.loss.len() as u64 + 1) * (self.members() as u64 * 8 + 24)),
            budget: memory::available().unwrap_or(0),
        })?;
        self.loss.push(row);
        Ok(evals)
    }
}
