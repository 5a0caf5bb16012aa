//! The exact GP as a [`Model`] of [`FitRequest`] and a [`BatchObjective`]: its kernel, parameter
//! layout, coordinate maps, priors, units, its own options (init, restarts, bounds), its start
//! and its result. Member e of the batch fits GP `e % B` (restarts are extra members).
//!
//! # Units
//! The backend sees each member's y standardised, y' = (y - mu) / sd (and yvar' = yvar / sd^2),
//! with the hyperparameters scaled to match (s' = s / sd^2, noise' = noise / sd^2,
//! m' = (m - mu) / sd; lengthscales unchanged, since every backend centres x per member and x's
//! scale enters only through x / l). The optimiser's coordinates are scale-free as well
//! ([`Map`]): so a fit of c y + a, or of x scaled and shifted, takes the same steps, meets the
//! same convergence tests and lands on the same optimum mapped back. The value minimised is
//! -(mll' + log prior), where mll' = mll + n log sd is the MLL in standardised units and the
//! priors are evaluated on the natural values in the data's units.

use super::bounds::Bounds;
use super::driver::{self, MemberOptimizer};
use super::objective::{BatchObjective, MemberEval};
use super::request::{Exact, ExactOptions, FitRequest, Model};
use super::transform::Map;
use super::{theta_of, Degeneracy, FitResult, Optimizer, Termination, ALPHA_MAX, MIN_POINTS, SAME_OPTIMUM_NATS};
use crate::backend::{memory, Backend, MllOptions, PredictOptions, Prediction};
use crate::data::{Dataset, Hyperparameters, Inputs, Status};
use crate::error::{Error, Result};
use crate::layout::{Layout, Target};
use crate::prior::ResolvedPriors;
use ndarray::{Array1, Array2, Axis};

/// Per GP: the units of y (mean, sd) and of x (spread per dimension).
#[derive(Debug, Clone)]
pub(crate) struct Units {
    pub mu: Vec<f64>,
    pub sd: Vec<f64>,
    /// (B, D)
    pub x_scale: Array2<f64>,
}

impl Units {
    /// The units of every GP of `data`: mean and sd of the observed y (sd = 1 when y is
    /// constant, |mean| when that is not 0), sd of the observed x per dimension (1 when
    /// constant).
    pub fn of(data: &Dataset) -> Units {
        let (b, d) = (data.batch_size(), data.n_dims());
        let mut mu = vec![0.0; b];
        let mut sd = vec![1.0; b];
        let mut x_scale = Array2::ones((b, d));
        for m in 0..b {
            let (mean, var) = data.y_moments(m);
            mu[m] = mean;
            sd[m] = if var > 0.0 && var.is_finite() {
                var.sqrt()
            } else if mean != 0.0 && mean.is_finite() {
                mean.abs()
            } else {
                1.0
            };
            let xs = data.x_std(m);
            for k in 0..d {
                if xs[k] > 0.0 && xs[k].is_finite() {
                    x_scale[[m, k]] = xs[k];
                }
            }
        }
        Units { mu, sd, x_scale }
    }

    /// The coordinate map of kind `t` (index `k`) for GP `m`, without a prior's bounds.
    pub fn map(&self, t: Target, m: usize, k: usize) -> Map {
        match t {
            Target::Lengthscale => Map::Log { scale: self.x_scale[[m, k]] },
            Target::Outputscale | Target::Noise => Map::Log { scale: self.sd[m] * self.sd[m] },
            Target::Alpha => Map::Log { scale: 1.0 },
            Target::Mean => Map::Affine { offset: self.mu[m], scale: self.sd[m] },
        }
    }

    /// Member `m`'s hyperparameters in standardised units (row `e` of `from` to row `e` of `to`).
    pub fn to_internal(&self, from: &Hyperparameters, e: usize, m: usize, to: &mut Hyperparameters) {
        let s2 = self.sd[m] * self.sd[m];
        to.lengthscale.row_mut(e).assign(&from.lengthscale.row(e));
        to.outputscale[e] = from.outputscale[e] / s2;
        to.noise[e] = from.noise[e] / s2;
        to.mean[e] = (from.mean[e] - self.mu[m]) / self.sd[m];
        if let (Some(a), Some(b)) = (from.alpha.as_ref(), to.alpha.as_mut()) {
            b[e] = a[e];
        }
    }

    /// `data` with y (and yvar) standardised per GP.
    pub fn standardise(&self, data: &Dataset) -> Dataset {
        let (b, n) = (data.batch_size(), data.n_points());
        let y = Array2::from_shape_fn((b, n), |(m, i)| {
            if data.is_observed(m, i) {
                (data.y()[[m, i]] - self.mu[m]) / self.sd[m]
            } else {
                0.0
            }
        });
        let yvar = data.yvar().map(|v| {
            let mut v = v.clone();
            for (m, mut row) in v.axis_iter_mut(Axis(0)).enumerate() {
                row.mapv_inplace(|x| x / (self.sd[m] * self.sd[m]));
            }
            v
        });
        data.with_values(data.x().clone(), y, yvar)
    }
}

/// The exact GP objective of every member (restarts included).
pub(crate) struct ExactObjective<'a> {
    pub backend: &'a dyn Backend,
    /// Standardised data, one row per member (restarts repeat their GP's rows).
    pub data: Dataset,
    pub layout: Layout,
    /// Per member: the map of every coordinate.
    pub maps: &'a [Vec<Map>],
    /// Priors per member, on natural values in the data's units.
    pub priors: ResolvedPriors,
    pub units: Units,
    /// GP of member e (e % B).
    pub gp: Vec<usize>,
    pub opts: MllOptions,
    /// Natural values (data units) and standardised values of the members being evaluated.
    natural: Hyperparameters,
    internal: Hyperparameters,
}

impl<'a> ExactObjective<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        backend: &'a dyn Backend,
        data: Dataset,
        layout: Layout,
        maps: &'a [Vec<Map>],
        priors: ResolvedPriors,
        units: Units,
        gp: Vec<usize>,
        opts: MllOptions,
    ) -> Self {
        let e = gp.len();
        let blank =
            Hyperparameters::broadcast(e, &vec![1.0; layout.n_dims()], 1.0, 1.0, 0.0).with_kernel(layout.kernel());
        ExactObjective { backend, data, layout, maps, priors, units, gp, opts, natural: blank.clone(), internal: blank }
    }

    /// The natural values (data units) of member e at u.
    pub fn theta(&self, e: usize, u: &[f64]) -> Vec<f64> {
        u.iter().zip(&self.maps[e]).map(|(u, m)| m.theta(*u)).collect()
    }
}

/// The report of one member in the data's units.
pub(crate) struct Report {
    pub mll: f64,
    pub log_prior: f64,
    pub status: Status,
    pub jitter: f64,
}

impl ExactObjective<'_> {
    /// Writes the natural and standardised values of the listed members at their points.
    fn load(&mut self, active: &[usize], points: &[&[f64]]) {
        for (&e, u) in active.iter().zip(points) {
            let theta = self.theta(e, u);
            self.layout.write(&mut self.natural, e, &theta);
            self.units.to_internal(&self.natural, e, self.gp[e], &mut self.internal);
        }
    }

    /// MLL (mll' - n log sd: the data's units), log prior, status and jitter of the listed
    /// members at their points, without gradient.
    pub fn report(&mut self, active: &[usize], points: &[&[f64]]) -> Result<Vec<Report>> {
        self.load(active, points);
        let opts = MllOptions { gradient: false, ..self.opts };
        let raw = self.backend.mll(&self.data, &self.internal, Some(active), &opts)?;
        let pri = self.priors.evaluate(&self.natural, Some(active));
        Ok(active
            .iter()
            .enumerate()
            .map(|(i, &e)| {
                let m = self.gp[e];
                let n = self.data.n_observed(e) as f64;
                Report {
                    mll: raw.mll[i] - n * self.units.sd[m].ln(),
                    log_prior: pri.log_prior[i],
                    status: raw.status[i],
                    jitter: raw.jitter[i] * self.units.sd[m] * self.units.sd[m],
                }
            })
            .collect())
    }
}

impl BatchObjective for ExactObjective<'_> {
    fn members(&self) -> usize {
        self.gp.len()
    }

    fn evaluate(&mut self, active: &[usize], points: &[&[f64]]) -> Result<Vec<MemberEval>> {
        self.load(active, points);
        let raw = self.backend.mll(&self.data, &self.internal, Some(active), &self.opts)?;
        let pri = self.priors.evaluate(&self.natural, Some(active));
        let grad = raw.gradient.as_ref().expect("the fit asks for the gradient");
        let p = self.layout.len();
        Ok(active
            .iter()
            .enumerate()
            .map(|(i, &e)| {
                let m = self.gp[e];
                if raw.status[i] == Status::Failed {
                    return MemberEval::failed(p, raw.jitter[i]);
                }
                let g: Vec<f64> = (0..p)
                    .map(|c| {
                        let (t, k) = self.layout.coordinate(c);
                        // The mean's gradient in data units: d mll / d m = (d mll' / d m') / sd.
                        let g_mll =
                            if t == Target::Mean { grad.get(t, i, k) / self.units.sd[m] } else { grad.get(t, i, k) };
                        let theta = self.natural.get(t, e, k);
                        -self.maps[e][c].grad_u(t.positive(), theta, g_mll + pri.grad(t, i, k))
                    })
                    .collect();
                MemberEval {
                    f: -(raw.mll[i] + pri.log_prior[i]),
                    grad: g,
                    status: raw.status[i],
                    jitter: raw.jitter[i],
                }
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// The exact GP's fit: its own options, checks, start, restarts, boxes and result.

impl Model for Exact {
    type Options = ExactOptions;
    type Fitted = FitResult;
    type Params = Hyperparameters;
    fn params(fitted: &FitResult) -> &Hyperparameters {
        &fitted.hyperparameters
    }
    fn member_bytes(req: &FitRequest<'_, Exact>) -> u64 {
        let (n, d) = (req.data.n_points(), req.data.n_dims());
        crate::backend::memory::cpu_mll_bytes(n, d, req.kernel, req.precision, true)
    }
    fn max_memory(req: &FitRequest<'_, Exact>) -> Option<u64> {
        req.model.max_memory
    }
    fn predict(
        be: &dyn Backend,
        data: &Dataset,
        hyp: &Hyperparameters,
        test: &Inputs,
        opts: &PredictOptions,
    ) -> Result<Prediction> {
        crate::model::predict(be, data, hyp, test, opts)
    }
    fn defaults() -> (ExactOptions, Optimizer, f64) {
        (ExactOptions::default(), Optimizer::Lbfgs, 0.1)
    }
    fn check(req: &FitRequest<'_, Exact>) -> Result<()> {
        if let Some((lo, hi)) = req.model.bounds {
            if lo.is_nan() || hi.is_nan() || lo <= 0.0 || lo >= hi {
                return Err(Error::option("bounds", format!("need 0 < low < high, got ({lo}, {hi})")));
            }
        }
        let b = req.data.batch_size();
        for &(t, m) in &req.model.fixed_members {
            if m >= b {
                return Err(Error::option("fix", format!("member {m} of {} is out of range for {}", b, t.name())));
            }
        }
        plan_members(req)
    }
    fn fixed(req: &FitRequest<'_, Exact>) -> Vec<Target> {
        req.model.fixed_members.iter().map(|(t, _)| *t).collect()
    }
    fn run(req: FitRequest<'_, Exact>) -> Result<FitResult> {
        req.run_exact()
    }
}

/// Plans the members a fit runs, B x (restarts + 1), before any of them is made: each holds its
/// standardised data (a copy per restart, x too when batched), its coordinate maps, box, start
/// and optimiser state; one member's MLL workspace comes on top.
///
/// # Errors
/// [`Error::OutOfMemory`] when one member cannot fit alone, else [`Error::TooLarge`] naming the
/// restarts and the members.
fn plan_members(req: &FitRequest<'_, Exact>) -> Result<()> {
    let data = req.data;
    let (b, n, d) = (data.batch_size() as u64, data.n_points() as u64, data.n_dims() as u64);
    let members = memory::product(&[b, (req.model.restarts as u64).saturating_add(1)]);
    let x_bytes = if matches!(data.x(), Inputs::Batched(_)) { n.saturating_mul(d) } else { 0 };
    let p = Layout::new(req.kernel, d as usize).len() as u64;
    let per = memory::product(&[8, n.saturating_mul(3).saturating_add(x_bytes)])
        .saturating_add(memory::member_state_bytes(p));
    let one = memory::cpu_mll_bytes(n as usize, d as usize, req.kernel, req.precision, true);
    // One member that cannot fit alone is the more specific refusal (OutOfMemory naming its N).
    memory::in_flight(one, 0, req.model.max_memory, n as usize)?;
    let needed = memory::product(&[members, per]).saturating_add(one);
    memory::plan(
        || format!("restarts = {} for {b} members ({members} members of N = {n})", req.model.restarts),
        needed,
        req.model.max_memory,
    )
}

/// The exact GP's own options and its fit.
impl FitRequest<'_, Exact> {
    pub fn init(mut self, hyp: &Hyperparameters) -> Self {
        self.model.init = Some(hyp.clone());
        self
    }
    /// Holds one kind of hyperparameter at its initial value for one member.
    pub fn fix_member(mut self, target: Target, member: usize) -> Self {
        self.model.fixed_members.push((target, member));
        self
    }
    pub fn restarts(mut self, r: usize) -> Self {
        self.model.restarts = r;
        self
    }
    /// Does nothing: every fit already runs on y standardised per member and reports in the
    /// data's units (see [`STANDARDIZE_REMOVED`](super::STANDARDIZE_REMOVED)).
    #[deprecated(
        note = "does nothing: every fit already runs on y standardised per member, with results in the data's units"
    )]
    pub fn standardize(self, _on: bool) -> Self {
        self
    }
    /// The CLI's and Python's `standardize`: Ok when off, else refused with why it was removed.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] naming `standardize` with [`STANDARDIZE_REMOVED`](super::STANDARDIZE_REMOVED).
    pub fn standardize_removed(self, on: bool) -> Result<Self> {
        if on {
            return Err(Error::option("standardize", super::STANDARDIZE_REMOVED));
        }
        Ok(self)
    }
    /// Box bounds (low, high) on every positive hyperparameter (lengthscale, outputscale,
    /// noise) without a uniform prior, in natural units, as scikit-learn's `*_bounds`. With
    /// them, L-BFGS runs as scipy's L-BFGS-B runs on a boxed problem (a projected first step),
    /// so that a fit reproduces scikit-learn's from the same start and bounds.
    pub fn bounds(mut self, low: f64, high: f64) -> Self {
        self.model.bounds = Some((low, high));
        self
    }
    /// Bounds per kind of hyperparameter, per member and per dimension ([`Bounds`]); they
    /// compose with `bounds` and with uniform priors as intersections.
    pub fn hyperparameter_bounds(mut self, bounds: Bounds) -> Self {
        self.model.hyperparameter_bounds = bounds;
        self
    }
    /// Memory budget in bytes (default: the memory available); see [`crate::backend::memory`].
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.model.max_memory = Some(bytes);
        self
    }
    /// The data-driven starting point of every member (see the type's docs), rbf kernel.
    pub fn default_init(data: &Dataset) -> Hyperparameters {
        let units = Units::of(data);
        let (b, d) = (data.batch_size(), data.n_dims());
        let mut h = Hyperparameters::broadcast(b, &vec![1.0; d], 1.0, 0.1, 0.0);
        for m in 0..b {
            h.lengthscale.row_mut(m).assign(&units.x_scale.row(m));
            let var = units.sd[m] * units.sd[m];
            h.outputscale[m] = var;
            h.noise[m] = var / 10.0;
            h.mean[m] = units.mu[m];
        }
        h
    }

    fn run_exact(mut self) -> Result<FitResult> {
        let data = self.data;
        let (b, d) = (data.batch_size(), data.n_dims());
        let layout = Layout::new(self.kernel, d);
        let init = match self.model.init.take() {
            Some(h) => {
                self.check_init_kernel("hyperparameters", h.kernel)?;
                h.validate(b, d)?;
                h
            }
            None => Self::default_init(data).with_kernel(self.kernel),
        };
        let priors = self.priors.resolve(b, d)?;
        let mut owned = None;
        let be = self.backend_in(&mut owned)?;
        let units = Units::of(data);
        let degeneracy: Vec<Option<Degeneracy>> = (0..b)
            .map(|m| {
                let n = data.n_observed(m);
                if n > 0 && n < MIN_POINTS {
                    Some(Degeneracy::TooFewPoints)
                } else if n > 0 && data.y_moments(m).1 == 0.0 {
                    Some(Degeneracy::ConstantY)
                } else {
                    None
                }
            })
            .collect();

        // Restarts are extra members: member e fits GP e % B (planned by `plan_members`).
        let e_total = b * self.model.restarts.saturating_add(1);
        let gp: Vec<usize> = (0..e_total).map(|e| e % b).collect();
        let std_data = units.standardise(data);
        let data_e = if self.model.restarts > 0 { std_data.select(&gp) } else { std_data };
        let mut priors_e = if self.model.restarts > 0 { priors.select(&gp) } else { priors.clone() };
        for t in Target::ALL {
            priors_e.hold(t, |e| self.fixed.contains(&t) || self.model.fixed_members.contains(&(t, gp[e])));
        }
        let mut maps = self.maps(layout, &init, &priors_e, &units, &gp);
        let (mut lower, mut upper) = self.boxes(layout, &maps, &degeneracy, &gp);
        self.model.hyperparameter_bounds.resolve(layout, b)?.apply(layout, &gp, &mut maps, &mut lower, &mut upper)?;
        let starts = self.starts(layout, &init, &maps, &lower, &upper, &gp);

        let mut states: Vec<Box<dyn MemberOptimizer>> = starts
            .into_iter()
            .enumerate()
            .map(|(e, u)| {
                let free = maps[e].iter().map(|m| m.free()).collect();
                self.member_optimizer(u, data.n_observed(gp[e]) > 0, free, lower[e].clone(), upper[e].clone())
            })
            .collect();
        let opts = MllOptions { max_memory: self.model.max_memory, ..MllOptions::new(self.precision) };
        let mut objective = ExactObjective::new(be, data_e, layout, &maps, priors_e, units, gp, opts);
        let snapshot = |states: &driver::Members| {
            let mut h = Hyperparameters::broadcast(e_total, &vec![1.0; d], 1.0, 1.0, 0.0).with_kernel(self.kernel);
            for (e, s) in states.iter().enumerate() {
                layout.write(&mut h, e, &theta_of(&maps[e], s.point().0));
            }
            h
        };
        let mut observer = self.observer.take();
        let rounds = driver::drive(&mut objective, &mut states, observer.as_deref_mut(), &snapshot)?;
        let mut res = self.fold(&mut objective, &states, &degeneracy, rounds)?;
        res.at_bound = self.bounds_reached(layout, &maps, &lower, &upper, &states, &res);
        if let Some(o) = observer {
            o.finish(&res.status);
        }
        Ok(res)
    }

    /// Every member's coordinate maps: fixed values exactly, a uniform prior's sigmoid, else
    /// the scale-free map of its units.
    fn maps(
        &self,
        layout: Layout,
        init: &Hyperparameters,
        priors: &ResolvedPriors,
        units: &Units,
        gp: &[usize],
    ) -> Vec<Vec<Map>> {
        let fixed = |e: usize, t: Target| self.fixed.contains(&t) || self.model.fixed_members.contains(&(t, gp[e]));
        (0..gp.len())
            .map(|e| {
                (0..layout.len())
                    .map(|c| {
                        let (t, k) = layout.coordinate(c);
                        if fixed(e, t) {
                            Map::Fixed { value: init.get(t, gp[e], k) }
                        } else if let Some((low, high)) = priors.bounds(t, e, k) {
                            Map::Sigmoid { low, high }
                        } else {
                            units.map(t, gp[e], k)
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Box bounds in the optimiser's coordinates: `bounds` on the log-scale positive
    /// hyperparameters, and a degenerate member's defined limit.
    fn boxes(
        &self,
        layout: Layout,
        maps: &[Vec<Map>],
        degeneracy: &[Option<Degeneracy>],
        gp: &[usize],
    ) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        (0..gp.len())
            .map(|e| {
                (0..layout.len())
                    .map(|c| {
                        let (t, _) = layout.coordinate(c);
                        let Map::Log { scale } = maps[e][c] else {
                            return (f64::NEG_INFINITY, f64::INFINITY);
                        };
                        let (mut lo, mut hi) = match self.model.bounds {
                            Some((lo, hi)) => ((lo / scale).ln(), (hi / scale).ln()),
                            None => (f64::NEG_INFINITY, f64::INFINITY),
                        };
                        if t == Target::Alpha {
                            // Past ALPHA_MAX rq is rbf to 1e-7: the MLL keeps rising by less than
                            // any tolerance, and an unbounded alpha would walk to infinity.
                            hi = hi.min((ALPHA_MAX / scale).ln());
                        }
                        if degeneracy[gp[e]].is_some() {
                            let (dlo, dhi) = match t {
                                Target::Lengthscale => (1e-3f64.ln(), 1e3f64.ln()),
                                Target::Outputscale | Target::Noise => (1e-6f64.ln(), f64::INFINITY),
                                _ => (f64::NEG_INFINITY, f64::INFINITY),
                            };
                            lo = lo.max(dlo);
                            hi = hi.min(dhi).max(lo);
                        }
                        (lo, hi)
                    })
                    .unzip()
            })
            .unzip()
    }

    /// Starting points: the init's, and for restart r the r-th point of the GP's space-filling
    /// design (`starts::restart_start`), drawn from its own stream (seed, first_member + GP), so
    /// a GP's restarts do not depend on which other GPs share the batch (a batch split into
    /// chunks fits exactly as a whole).
    fn starts(
        &self,
        layout: Layout,
        init: &Hyperparameters,
        maps: &[Vec<Map>],
        lower: &[Vec<f64>],
        upper: &[Vec<f64>],
        gp: &[usize],
    ) -> Vec<Vec<f64>> {
        let b = self.data.batch_size();
        let p = layout.len();
        (0..gp.len())
            .map(|e| {
                let u0: Vec<f64> = (0..p)
                    .map(|c| {
                        let (t, k) = layout.coordinate(c);
                        maps[e][c].u(init.get(t, gp[e], k)).clamp(lower[e][c], upper[e][c])
                    })
                    .collect();
                if e < b {
                    return u0;
                }
                let rotation = (self.seed, self.first_member + gp[e] as u64);
                super::starts::restart_start(layout, &maps[e], &u0, (&lower[e], &upper[e]), e / b, rotation)
            })
            .collect()
    }

    /// Per GP, the hyperparameters its kept run ended on a bound of: a uniform prior's (within
    /// 1e-6 of its width) or a box's (`bounds`, alpha's ALPHA_MAX), in words (`outputscale at
    /// its uniform prior's bound 10`); empty for none. Degenerate members' boxes are their
    /// degeneracy's, said already.
    fn bounds_reached(
        &self,
        layout: Layout,
        maps: &[Vec<Map>],
        lower: &[Vec<f64>],
        upper: &[Vec<f64>],
        states: &[Box<dyn MemberOptimizer>],
        res: &FitResult,
    ) -> Vec<String> {
        let b = self.data.batch_size();
        (0..b)
            .map(|m| {
                if res.hyperparameters.outputscale[m].is_nan() || res.degeneracy[m].is_some() {
                    return String::new();
                }
                let e = m + res.restart[m] * b;
                let u = states[e].point().0;
                let mut hits = Vec::new();
                for c in 0..layout.len() {
                    let (t, k) = layout.coordinate(c);
                    let name = if t == Target::Lengthscale && layout.n_dims() > 1 {
                        format!("{}[{k}]", t.name())
                    } else {
                        t.name().to_string()
                    };
                    let theta = maps[e][c].theta(u[c]);
                    let near = |a: f64, b: f64, width: f64| (a - b).abs() <= 1e-6 * width;
                    match maps[e][c] {
                        Map::Sigmoid { low, high } => {
                            for bound in [low, high] {
                                if near(theta, bound, high - low) {
                                    hits.push(format!("{name} at its uniform prior's bound {bound}"));
                                }
                            }
                        }
                        Map::Log { scale } => {
                            for bu in [lower[e][c], upper[e][c]] {
                                if bu.is_finite() && near(u[c], bu, 1.0) {
                                    // The user's bound as typed, not its round trip through log.
                                    let v = scale * bu.exp();
                                    let v = match self.model.bounds {
                                        Some((lo, _)) if near(v, lo, lo) => lo,
                                        Some((_, hi)) if near(v, hi, hi) => hi,
                                        _ => v,
                                    };
                                    hits.push(format!("{name} at its box bound {v}"));
                                }
                            }
                        }
                        _ => {}
                    }
                }
                hits.join(", ")
            })
            .collect()
    }

    /// Keeps the best run per GP and reports it in the data's units: one evaluation (without
    /// gradient) at the kept points gives mll, log prior, status and jitter.
    fn fold(
        &self,
        objective: &mut ExactObjective,
        states: &[Box<dyn MemberOptimizer>],
        degeneracy: &[Option<Degeneracy>],
        rounds: usize,
    ) -> Result<FitResult> {
        let (b, d) = (self.data.batch_size(), self.data.n_dims());
        let nan = f64::NAN;
        let mut res = FitResult {
            hyperparameters: Hyperparameters::broadcast(b, &vec![nan; d], nan, nan, nan).with_kernel(self.kernel),
            mll: Array1::from_elem(b, nan),
            log_prior: Array1::from_elem(b, nan),
            objective: Array1::from_elem(b, nan),
            status: vec![Status::Failed; b],
            reason: vec![Termination::Failed; b],
            degeneracy: degeneracy.to_vec(),
            jitter: Array1::zeros(b),
            iterations: Array1::zeros(b),
            rounds,
            restart: Array1::zeros(b),
            at_bound: vec![String::new(); b],
            reached_best: Array1::zeros(b),
            starts: self.model.restarts + 1,
        };
        if let Some(a) = res.hyperparameters.alpha.as_mut() {
            a.fill(nan);
        }
        let mut kept = Vec::new();
        for m in 0..b {
            let runs = (0..=self.model.restarts).map(|r| m + r * b);
            if self.data.n_observed(m) == 0 {
                res.status[m] = Status::Empty;
                res.reason[m] = Termination::NoData;
                continue;
            }
            let finite: Vec<usize> = runs
                .filter(|&e| states[e].termination() != Some(Termination::Failed) && states[e].point().1.is_finite())
                .collect();
            // Starts that tie with the lowest value (within 1e-9 relative) keep the earliest, so
            // rounding noise between equal optima never decides which start is kept.
            let f_min = finite.iter().map(|&e| states[e].point().1).fold(f64::INFINITY, f64::min);
            let best = finite.iter().copied().find(|&e| states[e].point().1 - f_min <= 1e-9 * (1.0 + f_min.abs()));
            match best {
                Some(e) => {
                    kept.push((m, e));
                    let f_best = states[e].point().1;
                    let tol = SAME_OPTIMUM_NATS.max(1e-9 * f_best.abs());
                    res.reached_best[m] = (0..=self.model.restarts)
                        .map(|r| m + r * b)
                        .filter(|&x| states[x].termination() != Some(Termination::Failed))
                        .filter(|&x| states[x].point().1 - f_best <= tol)
                        .count();
                }
                None => res.reason[m] = Termination::Failed,
            }
        }
        let members: Vec<usize> = kept.iter().map(|&(_, e)| e).collect();
        let points: Vec<&[f64]> = members.iter().map(|&e| states[e].point().0).collect();
        let report = objective.report(&members, &points)?;
        for (&(m, e), r) in kept.iter().zip(report) {
            let mut theta = objective.theta(e, states[e].point().0);
            // A positive hyperparameter driven towards 0 (noise on noise-free data) may underflow
            // exp() to 0: report the smallest positive value, which every request accepts.
            let mean = objective.layout.index(Target::Mean, 0);
            for (i, v) in theta.iter_mut().enumerate() {
                if i != mean && *v == 0.0 {
                    *v = f64::MIN_POSITIVE;
                }
            }
            objective.layout.write(&mut res.hyperparameters, m, &theta);
            let reason = states[e].termination().unwrap_or(Termination::Failed);
            res.reason[m] = reason;
            res.iterations[m] = states[e].iterations();
            res.restart[m] = e / b;
            res.jitter[m] = r.jitter;
            res.status[m] = reason.final_status(r.status, degeneracy[m].is_some());
            if res.status[m] != Status::Failed {
                res.mll[m] = r.mll;
                res.log_prior[m] = r.log_prior;
                res.objective[m] = r.mll + r.log_prior;
            }
        }
        Ok(res)
    }
}
