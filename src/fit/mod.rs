//! Batched fitting (docs/design.md sections 5 and 14): every member keeps its own optimiser
//! state, line search and convergence test, and a converged member stops costing work.
//!
//! The pieces, one noun each:
//! - [`objective`]: the model-agnostic batched objective the optimisers see (per member, an
//!   unconstrained vector in; a value, a gradient and a status out);
//! - [`exact`]: the exact GP as such an objective (kernel, layout, coordinate maps, priors,
//!   units); [`svgp`]: the sparse variational GP as another, with mini-batches;
//! - [`transform`]: the scale-free coordinate maps;
//! - [`lbfgs`], [`adam`]: one member's optimiser each; [`driver`]: the batched loop over them;
//! - this module: the request, the start points, restarts and the result.
//!
//! Restarts are extra members started from spread points; the best one per GP is kept.

mod adam;
mod bounds;
mod driver;
mod exact;
mod lbfgs;
mod linesearch;
mod objective;
#[cfg(feature = "cli")]
mod progress;
mod svgp;
mod transform;

pub use bounds::Bounds;
#[cfg(feature = "cli")]
pub use progress::ProgressBarObserver;
pub use svgp::{SvgpFitRequest, SvgpFitResult};

use crate::backend::{self, Backend, BackendChoice, MllOptions};
use crate::data::{Dataset, Hyperparameters, Precision, Status};
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::layout::Layout;
use crate::prior::{Priors, ResolvedPriors, Target};
use adam::{Adam, AdamState};
use driver::MemberOptimizer;
use exact::{ExactObjective, Units};
use lbfgs::{Lbfgs, LbfgsState};
use ndarray::Array1;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use transform::Map;

/// rq's alpha is fitted within (0, ALPHA_MAX]: there rq differs from rbf by at most
/// r^4 exp(-r^2 / 2) / (8 alpha) < 1e-7 of the outputscale.
pub const ALPHA_MAX: f64 = 1e6;

/// Fewer observed points than this make a member degenerate: with a free mean, the MLL of one
/// or two points grows without bound as the noise and the outputscale shrink.
pub const MIN_POINTS: usize = 3;

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Optimizer {
    /// Batched L-BFGS with a per-member history of 10 pairs (the default).
    #[default]
    Lbfgs,
    /// Adam, as in GPyTorch's tutorials (learning rate 0.1 by default).
    Adam,
}

impl std::str::FromStr for Optimizer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "lbfgs" => Ok(Optimizer::Lbfgs),
            "adam" => Ok(Optimizer::Adam),
            _ => Err(Error::option("optimizer", format!("expected lbfgs or adam, got `{s}`"))),
        }
    }
}

/// Progress of a fit, passed to a [`FitObserver`] after every batched evaluation.
pub struct FitProgress<'a> {
    /// Batched evaluation rounds so far.
    pub iteration: usize,
    /// Members (restarts included) still running.
    pub running: usize,
    /// Members (restarts included) that have converged.
    pub converged: usize,
    /// Members (restarts included) in all.
    pub total: usize,
    /// Current objective (mll + log prior, in standardised units) of every member (restarts
    /// included), NaN until known.
    pub objective: &'a [f64],
    snapshot: &'a dyn Fn() -> Hyperparameters,
}

impl FitProgress<'_> {
    /// Current hyperparameters of every member (restarts included), in the data's units.
    pub fn hyperparameters(&self) -> Hyperparameters {
        (self.snapshot)()
    }
}

/// Receives progress (init / iter / finish), so the core needs no terminal code.
pub trait FitObserver {
    /// Before the first evaluation: members in all (restarts included).
    fn init(&mut self, _members: usize) {}
    /// After every batched evaluation.
    fn iter(&mut self, _progress: &FitProgress<'_>) {}
    /// Asked after every batched evaluation: true stops the fit with [`Error::Interrupted`]
    /// (a KeyboardInterrupt in Python, say).
    fn stop(&mut self) -> bool {
        false
    }
    /// When the fit has ended: each member's final status (B entries, restarts folded in).
    fn finish(&mut self, _status: &[Status]) {}
}

/// Why a member's optimiser stopped, beside its numerical [`Status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Termination {
    /// The projected gradient or the relative decrease of the objective met its tolerance.
    Converged,
    /// The iteration limit was reached first.
    IterationLimit,
    /// No step decreased the objective, not even along the gradient: no progress at working
    /// precision, without the convergence test met.
    LineSearchStalled,
    /// Every evaluation failed (not positive definite at the largest jitter, or non-finite).
    Failed,
    /// The member has no observed point: nothing was fitted.
    NoData,
}

impl Termination {
    /// In words.
    pub fn text(self) -> &'static str {
        match self {
            Termination::Converged => "converged",
            Termination::IterationLimit => "iteration limit",
            Termination::LineSearchStalled => "line search stalled",
            Termination::Failed => "failed",
            Termination::NoData => "no observed point",
        }
    }
}

/// Why a member is degenerate ([`Status::Degenerate`]): its fit is held to a defined limit
/// (noise and outputscale >= 1e-6 var(y), lengthscales within 1e-3..1e3 times the spread of x;
/// for constant y, var(y) is taken as mean(y)^2, or 1 when that is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Degeneracy {
    /// Fewer than [`MIN_POINTS`] observed points.
    TooFewPoints,
    /// Every observed y is the same.
    ConstantY,
}

impl Degeneracy {
    pub fn text(self) -> &'static str {
        match self {
            Degeneracy::TooFewPoints => "too few points",
            Degeneracy::ConstantY => "constant y",
        }
    }
}

/// What a fit returns, per GP (restarts folded in: the best kept). Arrays are (B,) unless noted.
#[derive(Debug, Clone, PartialEq)]
pub struct FitResult {
    /// Fitted hyperparameters in the data's units (NaN for a failed or empty member).
    pub hyperparameters: Hyperparameters,
    pub mll: Array1<f64>,
    pub log_prior: Array1<f64>,
    /// mll + log_prior at the fitted point.
    pub objective: Array1<f64>,
    /// Ok or Jitter (converged), MaxIter (not converged: see `reason`), Failed, Empty or
    /// Degenerate.
    pub status: Vec<Status>,
    /// Why each member's optimiser stopped.
    pub reason: Vec<Termination>,
    /// Why a member is degenerate, if it is.
    pub degeneracy: Vec<Option<Degeneracy>>,
    pub jitter: Array1<f64>,
    /// Optimiser iterations (accepted steps) of the kept run.
    pub iterations: Array1<usize>,
    /// Batched evaluation rounds in all.
    pub rounds: usize,
    /// Which start was kept per GP (0 = the initial point, r = restart r).
    pub restart: Array1<usize>,
}

impl FitResult {
    /// Member b's outcome in words: its status, and the reason or degeneracy behind it.
    pub fn describe(&self, b: usize) -> String {
        match (self.status[b], self.degeneracy[b]) {
            (Status::Degenerate, Some(d)) => format!("degenerate ({}), {}", d.text(), self.reason[b].text()),
            (Status::MaxIter, _) => format!("not converged ({})", self.reason[b].text()),
            (s, _) => s.text().to_string(),
        }
    }
}

/// A batched fit.
///
/// # Parameters
/// | name        | default                 | purpose                                                  | range |
/// |-------------|-------------------------|----------------------------------------------------------|-------|
/// | priors      | none                    | MAP priors ([`Priors`]); uniform ones are hard bounds    |       |
/// | init        | data-driven (see below) | starting hyperparameters (B members)                     | valid hyperparameters |
/// | fix         | nothing                 | hyperparameters held at their initial value (per kind or member) | |
/// | optimizer   | L-BFGS                  | [`Optimizer`]                                            |       |
/// | max_iter    | 1000                    | iterations per member                                    | >= 0  |
/// | kernel      | rbf                     | the covariance kernel ([`Kernel`])                       |       |
/// | gtol        | 1e-6                    | stop when the max abs projected gradient in the optimiser's scale-free coordinates is below | > 0 |
/// | ftol        | 1e-12                   | stop when the relative decrease of the objective is below | >= 0 |
/// | restarts    | 0                       | extra starts per GP from spread points; best kept        | >= 0  |
/// | standardize | false                   | kept for compatibility: every fit runs on y standardised per member, with results in the data's units |       |
/// | bounds      | none                    | box (low, high) on positive hyperparameters, as scikit-learn's; L-BFGS then runs as L-BFGS-B on a boxed problem | 0 < low < high |
/// | hyperparameter_bounds | none          | [`Bounds`] per kind, member and dimension (GPyTorch's constraints, scikit-learn's `*_bounds`) | low < high |
/// | learning_rate | 0.1                   | Adam's step                                              | > 0   |
/// | seed        | 0                       | restarts' spread (one random stream per GP)               |       |
/// | first_member | 0                      | index of the first GP in a larger batch split into chunks |       |
/// | backend     | auto                    | where to compute                                         |       |
/// | precision   | f64                     | arithmetic inside the backend                            |       |
/// | max_memory  | the memory available    | budget in bytes: members run in chunks that fit it        | >= 1  |
///
/// The data-driven start (docs/design.md section 7): lengthscale = std of x per dimension,
/// outputscale = var(y), noise = var(y) / 10, mean = mean(y), per member (for rq, alpha = 1); a
/// start outside a uniform prior's interval is moved inside it. The fit does not depend on the
/// data's units (docs/design.md section 14): see the `exact` module.
pub struct FitRequest<'a> {
    data: &'a Dataset,
    kernel: Kernel,
    priors: Priors,
    init: Option<Hyperparameters>,
    fixed_kinds: Vec<Target>,
    fixed_members: Vec<(Target, usize)>,
    optimizer: Optimizer,
    max_iter: usize,
    gtol: f64,
    ftol: f64,
    restarts: usize,
    standardize: bool,
    bounds: Option<(f64, f64)>,
    hyperparameter_bounds: Bounds,
    learning_rate: f64,
    seed: u64,
    choice: BackendChoice,
    backend: Option<&'a dyn Backend>,
    precision: Precision,
    max_memory: Option<u64>,
    first_member: u64,
    observer: Option<&'a mut dyn FitObserver>,
}

impl<'a> FitRequest<'a> {
    /// A fit of every member of `data`, with the defaults of the table above.
    pub fn new(data: &'a Dataset) -> Self {
        FitRequest {
            data,
            kernel: Kernel::Rbf,
            priors: Priors::none(),
            init: None,
            fixed_kinds: Vec::new(),
            fixed_members: Vec::new(),
            optimizer: Optimizer::Lbfgs,
            max_iter: 1000,
            gtol: 1e-6,
            ftol: 1e-12,
            restarts: 0,
            standardize: false,
            bounds: None,
            hyperparameter_bounds: Bounds::none(),
            learning_rate: 0.1,
            seed: 0,
            choice: BackendChoice::Auto,
            backend: None,
            precision: Precision::F64,
            max_memory: None,
            first_member: 0,
            observer: None,
        }
    }
    /// The covariance kernel (an `init` must be of the same kernel).
    pub fn kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = kernel;
        self
    }
    pub fn priors(mut self, priors: &Priors) -> Self {
        self.priors = priors.clone();
        self
    }
    pub fn init(mut self, hyp: &Hyperparameters) -> Self {
        self.init = Some(hyp.clone());
        self
    }
    /// Holds one kind of hyperparameter at its initial value for every member.
    pub fn fix(mut self, target: Target) -> Self {
        self.fixed_kinds.push(target);
        self
    }
    /// Holds one kind of hyperparameter at its initial value for one member.
    pub fn fix_member(mut self, target: Target, member: usize) -> Self {
        self.fixed_members.push((target, member));
        self
    }
    pub fn optimizer(mut self, o: Optimizer) -> Self {
        self.optimizer = o;
        self
    }
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }
    /// Convergence tolerances: gradient (max abs) and relative objective decrease.
    pub fn tolerances(mut self, gtol: f64, ftol: f64) -> Self {
        self.gtol = gtol;
        self.ftol = ftol;
        self
    }
    pub fn restarts(mut self, r: usize) -> Self {
        self.restarts = r;
        self
    }
    pub fn standardize(mut self, on: bool) -> Self {
        self.standardize = on;
        self
    }
    /// Box bounds (low, high) on every positive hyperparameter (lengthscale, outputscale,
    /// noise) without a uniform prior, in natural units, as scikit-learn's `*_bounds`. With
    /// them, L-BFGS runs as scipy's L-BFGS-B runs on a boxed problem (a projected first step),
    /// so that a fit reproduces scikit-learn's from the same start and bounds.
    pub fn bounds(mut self, low: f64, high: f64) -> Self {
        self.bounds = Some((low, high));
        self
    }
    /// Bounds per kind of hyperparameter, per member and per dimension ([`Bounds`]); they
    /// compose with `bounds` and with uniform priors as intersections.
    pub fn hyperparameter_bounds(mut self, bounds: Bounds) -> Self {
        self.hyperparameter_bounds = bounds;
        self
    }
    pub fn learning_rate(mut self, lr: f64) -> Self {
        self.learning_rate = lr;
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn backend(mut self, choice: BackendChoice) -> Self {
        self.choice = choice;
        self
    }
    /// Uses a backend already made.
    pub fn on(mut self, be: &'a dyn Backend) -> Self {
        self.backend = Some(be);
        self
    }
    pub fn precision(mut self, p: Precision) -> Self {
        self.precision = p;
        self
    }
    /// The index of this batch's first member in a larger batch that was split into chunks:
    /// with the same seed, each chunk's restarts then start where the whole batch's would, so
    /// the chunks fit exactly as the whole (default 0).
    pub fn first_member(mut self, index: u64) -> Self {
        self.first_member = index;
        self
    }
    /// Memory budget in bytes (default: the memory available); see [`crate::backend::memory`].
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = Some(bytes);
        self
    }
    pub fn observer(mut self, o: &'a mut dyn FitObserver) -> Self {
        self.observer = Some(o);
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

    /// Checks the options that do not depend on the data.
    fn check_options(&self, b: usize) -> Result<()> {
        check_steps(self.gtol, self.ftol, self.learning_rate)?;
        if let Some((lo, hi)) = self.bounds {
            if lo.is_nan() || hi.is_nan() || lo <= 0.0 || lo >= hi {
                return Err(Error::option("bounds", format!("need 0 < low < high, got ({lo}, {hi})")));
            }
        }
        for &(t, m) in &self.fixed_members {
            if m >= b {
                return Err(Error::option("fix", format!("member {m} of {} is out of range for {}", b, t.name())));
            }
        }
        for t in self.fixed_kinds.iter().chain(self.fixed_members.iter().map(|(t, _)| t)) {
            if *t == Target::Alpha && !self.kernel.has_alpha() {
                return Err(Error::option(
                    "fix",
                    format!("alpha is not a hyperparameter of the {} kernel", self.kernel),
                ));
            }
        }
        if self.priors.alpha.is_some() && !self.kernel.has_alpha() {
            return Err(Error::InvalidPrior {
                target: "alpha".into(),
                reason: format!("the {} kernel has no alpha", self.kernel),
            });
        }
        Ok(())
    }

    /// Runs the fit.
    ///
    /// # Errors
    /// Invalid init, priors or options; an unavailable backend; [`Error::Interrupted`] when the
    /// observer stops it. Numerical failure of a member is reported in its status, never as an
    /// error.
    pub fn run(mut self) -> Result<FitResult> {
        let data = self.data;
        let (b, d) = (data.batch_size(), data.n_dims());
        self.check_options(b)?;
        let layout = Layout::new(self.kernel, d);
        let init = match self.init.take() {
            Some(h) => {
                if h.kernel != self.kernel {
                    return Err(Error::option(
                        "init",
                        format!("holds {} hyperparameters for a fit of the {} kernel", h.kernel, self.kernel),
                    ));
                }
                h.validate(b, d)?;
                h
            }
            None => Self::default_init(data).with_kernel(self.kernel),
        };
        let priors = self.priors.resolve(b, d)?;
        let mut owned = None;
        let be = backend::given_or_select(self.backend, self.choice, &mut owned)?;
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

        // Restarts are extra members: member e fits GP e % B.
        let e_total = b * (self.restarts + 1);
        let gp: Vec<usize> = (0..e_total).map(|e| e % b).collect();
        let std_data = units.standardise(data);
        let data_e = if self.restarts > 0 { std_data.select(&gp) } else { std_data };
        let mut priors_e = if self.restarts > 0 { priors.select(&gp) } else { priors.clone() };
        for t in Target::ALL {
            priors_e.hold(t, |e| self.fixed_kinds.contains(&t) || self.fixed_members.contains(&(t, gp[e])));
        }
        let mut maps = self.maps(layout, &init, &priors_e, &units, &gp);
        let (mut lower, mut upper) = self.boxes(layout, &maps, &degeneracy, &gp);
        self.hyperparameter_bounds.resolve(layout, b)?.apply(layout, &gp, &mut maps, &mut lower, &mut upper)?;
        let starts = self.starts(layout, &init, &maps, &lower, &upper, &gp);

        let mut states: Vec<Box<dyn MemberOptimizer>> = starts
            .into_iter()
            .enumerate()
            .map(|(e, u)| -> Box<dyn MemberOptimizer> {
                if data.n_observed(gp[e]) == 0 {
                    return Box::new(NotRun(u));
                }
                let free: Vec<bool> = maps[e].iter().map(|m| m.free()).collect();
                let (lo, hi) = (lower[e].clone(), upper[e].clone());
                match self.optimizer {
                    Optimizer::Lbfgs => Box::new(Lbfgs {
                        state: LbfgsState::new(u, free, 10).with_bounds(lo, hi),
                        gtol: self.gtol,
                        ftol: self.ftol,
                        max_iter: self.max_iter,
                    }),
                    Optimizer::Adam => Box::new(Adam {
                        state: AdamState::new(u, free, self.learning_rate).with_bounds(lo, hi),
                        gtol: self.gtol,
                        max_iter: self.max_iter,
                    }),
                }
            })
            .collect();
        let opts = MllOptions { max_memory: self.max_memory, ..MllOptions::new(self.precision) };
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
        let res = self.fold(&mut objective, &states, &degeneracy, rounds)?;
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
        let fixed = |e: usize, t: Target| self.fixed_kinds.contains(&t) || self.fixed_members.contains(&(t, gp[e]));
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
                        let (mut lo, mut hi) = match self.bounds {
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

    /// Starting points: the init's, and for restarts spread by N(0, 1) in every free
    /// scale-free coordinate (a factor of e^N(0,1) on positive values, N(0, sd(y)) on the mean).
    /// GP m draws from its own ChaCha8 stream (seed, stream first_member + m), restart r taking
    /// the r-th P draws, so a GP's restarts do not depend on which other GPs share the batch (a
    /// batch split into chunks fits exactly as a whole).
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
                let spread: Vec<f64> = if e >= b {
                    let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
                    rng.set_stream(self.first_member + gp[e] as u64);
                    let draws: Vec<f64> = (0..(e / b) * p).map(|_| StandardNormal.sample(&mut rng)).collect();
                    draws[draws.len() - p..].to_vec()
                } else {
                    vec![0.0; p]
                };
                (0..p)
                    .map(|c| {
                        let (t, k) = layout.coordinate(c);
                        let mut u = maps[e][c].u(init.get(t, gp[e], k));
                        if maps[e][c].free() {
                            u += spread[c];
                        }
                        u.clamp(lower[e][c], upper[e][c])
                    })
                    .collect()
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
        };
        if let Some(a) = res.hyperparameters.alpha.as_mut() {
            a.fill(nan);
        }
        let mut kept = Vec::new();
        for m in 0..b {
            let runs = (0..=self.restarts).map(|r| m + r * b);
            if self.data.n_observed(m) == 0 {
                res.status[m] = Status::Empty;
                res.reason[m] = Termination::NoData;
                continue;
            }
            let best = runs
                .filter(|&e| states[e].termination() != Some(Termination::Failed) && states[e].point().1.is_finite())
                .min_by(|&x, &y| states[x].point().1.total_cmp(&states[y].point().1));
            match best {
                Some(e) => kept.push((m, e)),
                None => res.reason[m] = Termination::Failed,
            }
        }
        let members: Vec<usize> = kept.iter().map(|&(_, e)| e).collect();
        let points: Vec<&[f64]> = members.iter().map(|&e| states[e].point().0).collect();
        let report = objective.report(&members, &points)?;
        for (&(m, e), r) in kept.iter().zip(report) {
            let theta = objective.theta(e, states[e].point().0);
            objective.layout.write(&mut res.hyperparameters, m, &theta);
            let reason = states[e].termination().unwrap_or(Termination::Failed);
            res.reason[m] = reason;
            res.iterations[m] = states[e].iterations();
            res.restart[m] = e / b;
            res.jitter[m] = r.jitter;
            res.status[m] = match (r.status, reason) {
                (Status::Failed, _) | (_, Termination::Failed) => Status::Failed,
                _ if degeneracy[m].is_some() => Status::Degenerate,
                (_, Termination::IterationLimit | Termination::LineSearchStalled) => Status::MaxIter,
                (st, _) => st,
            };
            if res.status[m] != Status::Failed {
                res.mll[m] = r.mll;
                res.log_prior[m] = r.log_prior;
                res.objective[m] = r.mll + r.log_prior;
            }
        }
        Ok(res)
    }
}

/// The optimiser options every fit shares: gtol > 0, ftol >= 0, a finite learning rate > 0.
fn check_steps(gtol: f64, ftol: f64, learning_rate: f64) -> Result<()> {
    if gtol.is_nan() || gtol <= 0.0 || ftol.is_nan() || ftol < 0.0 {
        return Err(Error::option("tolerances", "need gtol > 0 and ftol >= 0"));
    }
    if !(learning_rate > 0.0 && learning_rate.is_finite()) {
        return Err(Error::option("learning_rate", "must be > 0"));
    }
    Ok(())
}

/// The natural values of a member at u, through its maps.
fn theta_of(maps: &[Map], u: &[f64]) -> Vec<f64> {
    u.iter().zip(maps).map(|(u, m)| m.theta(*u)).collect()
}

/// A member that is not optimised (no observed point): stopped from the start.
struct NotRun(Vec<f64>);

impl MemberOptimizer for NotRun {
    fn trial(&self) -> Option<&[f64]> {
        None
    }
    fn observe(&mut self, _f: f64, _g: &[f64]) -> bool {
        false
    }
    fn point(&self) -> (&[f64], f64) {
        (&self.0, f64::NAN)
    }
    fn iterations(&self) -> usize {
        0
    }
    fn termination(&self) -> Option<Termination> {
        Some(Termination::NoData)
    }
}

/// Used by the CLI: the resolved priors of a request (validated), for reporting.
pub fn resolve_priors(priors: &Priors, b: usize, d: usize) -> Result<ResolvedPriors> {
    priors.resolve(b, d)
}
