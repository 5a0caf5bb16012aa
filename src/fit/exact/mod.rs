//! The exact GP as a [`Model`] of [`FitRequest`]: its own options (init, restarts, bounds), their
//! checks and memory plan, its start, coordinate maps and boxes, and its run. Member e of the
//! batch fits GP `e % B` (restarts are extra members). Its objective is in `objective.rs`, its
//! result in `fold.rs`, the data's units and scale-free maps in `units.rs`.

mod fold;
mod objective;
mod units;

use super::bounds::Bounds;
use super::driver::{self, MemberOptimizer};
use super::request::{Exact, ExactOptions, FitRequest, Model};
use super::transform::Map;
use super::{theta_of, Degeneracy, FitResult, Optimizer, ALPHA_MAX, MIN_POINTS};
use crate::backend::{memory, Backend, MllOptions, PredictOptions, Prediction};
use crate::data::{Dataset, Hyperparameters, Inputs};
use crate::error::{Error, Result};
use crate::layout::{Layout, Target};
use crate::prior::ResolvedPriors;
use ndarray::Array1;
pub(crate) use objective::ExactObjective;
pub(crate) use units::Units;

/// The exact GP's own part of its [`FitResult`] (`r.model`). Arrays are (B,).
#[derive(Debug, Clone, PartialEq)]
pub struct ExactFit {
    /// Fitted hyperparameters in the data's units (NaN for a failed or empty member).
    pub hyperparameters: Hyperparameters,
    /// The MLL at the fitted point (NaN for a failed or empty member).
    pub mll: Array1<f64>,
}

impl Model for Exact {
    type Options = ExactOptions;
    type Fitted = ExactFit;
    type Params = Hyperparameters;
    fn params(fitted: &ExactFit) -> &Hyperparameters {
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
}
