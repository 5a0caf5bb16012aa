//! Batched fitting (DESIGN.md section 5): every member keeps its own optimiser state, line
//! search and convergence test, and a converged member stops costing work.
//!
//! Each round of the driver collects the point every running member wants evaluated, makes one
//! backend call for all of them, and hands each member its objective and gradient. Restarts are
//! extra members started from spread points; the best one per GP is kept. With
//! standardisation, the backend sees y standardised per member and the hyperparameters scaled
//! to match, while the optimiser, the priors and the results stay in the data's own units, so
//! the MAP point is the same with or without it.

mod adam;
mod lbfgs;
mod linesearch;
mod progress;
mod transform;

pub use progress::ProgressBarObserver;

use crate::backend::{self, Backend, BackendChoice, MllOptions};
use crate::data::{Dataset, Hyperparameters, Precision, Status};
use crate::error::{Error, Result};
use crate::prior::{Priors, ResolvedPriors, Target};
use adam::AdamState;
use lbfgs::{LbfgsState, Stop};
use ndarray::Array1;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use transform::Map;
use crate::layout::Layout;

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
    /// Members (restarts included) in all.
    pub total: usize,
    /// Highest current objective over the members.
    pub best_objective: f64,
    /// Current objective (mll + log prior) of every member (restarts included), NaN until known.
    pub objective: &'a [f64],
    u: &'a [Vec<f64>],
    maps: &'a [Vec<Map>],
    layout: Layout,
}

impl FitProgress<'_> {
    /// Current hyperparameters of every member (restarts included), in the data's units.
    pub fn hyperparameters(&self) -> Hyperparameters {
        let e = self.u.len();
        let mut h = Hyperparameters::broadcast(e, &vec![1.0; self.layout.n_dims()], 1.0, 1.0, 0.0)
            .with_kernel(self.layout.kernel());
        for i in 0..e {
            write_theta(&mut h, self.layout, i, &self.u[i], &self.maps[i]);
        }
        h
    }
}

/// Receives progress (init / iter / finish), so the core needs no terminal code.
pub trait FitObserver {
    /// Before the first evaluation: members in all (restarts included).
    fn init(&mut self, _members: usize) {}
    /// After every batched evaluation.
    fn iter(&mut self, _progress: &FitProgress<'_>) {}
    /// After the last one.
    fn finish(&mut self, _result: &FitResult) {}
}

/// What a fit returns, per GP (restarts folded in: the best kept). Arrays are (B,) unless noted.
#[derive(Debug, Clone, PartialEq)]
pub struct FitResult {
    /// Fitted hyperparameters in the data's units (NaN for a failed member).
    pub hyperparameters: Hyperparameters,
    pub mll: Array1<f64>,
    pub log_prior: Array1<f64>,
    /// mll + log_prior at the fitted point.
    pub objective: Array1<f64>,
    /// Ok, Jitter (converged, with jitter), MaxIter, or Failed.
    pub status: Vec<Status>,
    pub jitter: Array1<f64>,
    /// Optimiser iterations (accepted steps) of the kept run.
    pub iterations: Array1<usize>,
    /// Batched evaluation rounds in all.
    pub rounds: usize,
    /// Which start was kept per GP (0 = the initial point, r = restart r).
    pub restart: Array1<usize>,
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
/// | gtol        | 1e-6                    | stop when max abs gradient (in the optimiser's coordinates) is below | > 0 |
/// | ftol        | 1e-12                   | stop when the relative decrease of the objective is below | >= 0 |
/// | restarts    | 0                       | extra starts per GP from spread points; best kept        | >= 0  |
/// | standardize | false                   | fit on y standardised per member; results in data units  |       |
/// | bounds      | none                    | box (low, high) on positive hyperparameters, as scikit-learn's; L-BFGS then runs as L-BFGS-B on a boxed problem | 0 < low < high |
/// | learning_rate | 0.1                   | Adam's step                                              | > 0   |
/// | seed        | 0                       | restarts' spread                                          |       |
/// | backend     | auto                    | where to compute                                         |       |
/// | precision   | f64                     | arithmetic inside the backend                            |       |
///
/// The data-driven start (DESIGN.md section 7): lengthscale = std of x per dimension,
/// outputscale = var(y), noise = var(y) / 10 (at least 1e-6), mean = mean(y), per member; a
/// start outside a uniform prior's interval is moved inside it.
pub struct FitRequest<'a> {
    data: &'a Dataset,
    kernel: crate::Kernel,
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
    learning_rate: f64,
    seed: u64,
    choice: BackendChoice,
    backend: Option<&'a dyn Backend>,
    precision: Precision,
    observer: Option<&'a mut dyn FitObserver>,
}

impl<'a> FitRequest<'a> {
    /// A fit of every member of `data`, with the defaults of the table above.
    pub fn new(data: &'a Dataset) -> Self {
        FitRequest {
            data,
            kernel: crate::Kernel::Rbf,
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
            learning_rate: 0.1,
            seed: 0,
            choice: BackendChoice::Auto,
            backend: None,
            precision: Precision::F64,
            observer: None,
        }
    }
    pub fn kernel(mut self, kernel: crate::Kernel) -> Self {
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
    pub fn observer(mut self, o: &'a mut dyn FitObserver) -> Self {
        self.observer = Some(o);
        self
    }

    /// The data-driven starting point of every member (see the type's docs).
    pub fn default_init(data: &Dataset) -> Hyperparameters {
        let (b, d) = (data.batch_size(), data.n_dims());
        let mut h = Hyperparameters::broadcast(b, &vec![1.0; d], 1.0, 0.1, 0.0);
        for m in 0..b {
            let sd = data.x_std(m);
            for k in 0..d {
                h.lengthscale[[m, k]] = if sd[k] > 0.0 && sd[k].is_finite() { sd[k] } else { 1.0 };
            }
            let (mean, var) = data.y_moments(m);
            let var = if var > 0.0 && var.is_finite() { var } else { 1.0 };
            h.outputscale[m] = var;
            h.noise[m] = (var / 10.0).max(1e-6);
            h.mean[m] = mean;
        }
        h
    }

    /// Runs the fit.
    ///
    /// # Errors
    /// Invalid init, priors or options; an unavailable backend. Numerical failure of a member
    /// is reported in its status, never as an error.
    pub fn run(mut self) -> Result<FitResult> {
        let data = self.data;
        let (b, d) = (data.batch_size(), data.n_dims());
        let layout = Layout::new(self.kernel, d);
        let p = layout.len();
        if self.gtol.is_nan() || self.gtol <= 0.0 || self.ftol.is_nan() || self.ftol < 0.0 {
            return Err(Error::option("tolerances", "need gtol > 0 and ftol >= 0"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::option("learning_rate", "must be > 0"));
        }
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
        let init = match self.init.take() {
            Some(h) => {
                h.validate(b, d)?;
                h
            }
            None => Self::default_init(data).with_kernel(self.kernel),
        };
        let priors = self.priors.resolve(b, d)?;
        let mut owned = None;
        let be = backend::given_or_select(self.backend, self.choice, &mut owned)?;

        // Standardisation: the backend sees y' = (y - mu) / sigma.
        let (mu, sigma): (Vec<f64>, Vec<f64>) = (0..b)
            .map(|m| {
                if self.standardize {
                    let (mean, var) = data.y_moments(m);
                    (mean, if var > 0.0 { var.sqrt() } else { 1.0 })
                } else {
                    (0.0, 1.0)
                }
            })
            .unzip();
        let std_data;
        let data_s: &Dataset = if self.standardize {
            let y = ndarray::Array2::from_shape_fn((b, data.n_points()), |(m, i)| {
                if data.is_observed(m, i) {
                    (data.y()[[m, i]] - mu[m]) / sigma[m]
                } else {
                    0.0
                }
            });
            std_data = data.with_values(data.x().clone(), y, data.yvar().map(|v| v / &ndarray::Array1::from(sigma.iter().map(|s| s * s).collect::<Vec<_>>()).insert_axis(ndarray::Axis(1))));
            &std_data
        } else {
            data
        };

        // Restarts are extra members: member e fits GP e % B.
        let e_total = b * (self.restarts + 1);
        let rows: Vec<usize> = (0..e_total).map(|e| e % b).collect();
        let exp_data;
        let data_e: &Dataset = if self.restarts > 0 {
            exp_data = data_s.select(&rows);
            &exp_data
        } else {
            data_s
        };
        let priors_e = if self.restarts > 0 { priors.select(&rows) } else { priors.clone() };
        let n_obs: Vec<f64> = (0..b).map(|m| data.n_observed(m) as f64).collect();

        let maps: Vec<Vec<Map>> = (0..e_total)
            .map(|e| {
                (0..p)
                    .map(|c| {
                        let (t, k) = layout.coordinate(c);
                        Map::for_coordinate(&priors_e, t, e, k)
                    })
                    .collect()
            })
            .collect();
        let fixed = |e: usize, t: Target| self.fixed_kinds.contains(&t) || self.fixed_members.contains(&(t, e % b));
        let free: Vec<Vec<bool>> =
            (0..e_total).map(|e| (0..p).map(|c| !fixed(e, layout.coordinate(c).0)).collect()).collect();
        // Box bounds in the optimiser's coordinates: log-scale positive hyperparameters only.
        let (box_lo, box_hi): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (0..e_total)
            .map(|e| {
                (0..p)
                    .map(|c| match (self.bounds, maps[e][c]) {
                        (Some((lo, hi)), Map::Log) => (lo.ln(), hi.ln()),
                        _ => (f64::NEG_INFINITY, f64::INFINITY),
                    })
                    .unzip()
            })
            .unzip();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let u0: Vec<Vec<f64>> = (0..e_total)
            .map(|e| {
                let m = e % b;
                (0..p)
                    .map(|c| {
                        let (t, k) = layout.coordinate(c);
                        let theta = init.get(t, m, k);
                        let mut u = maps[e][c].u(theta);
                        if e >= b && free[e][c] {
                            // Spread restarts: a factor of e^N(0,1) on positive values (or a
                            // shift of N(0,1) in the sigmoid's coordinate), N(0, sd(y)) on the mean.
                            let z: f64 = StandardNormal.sample(&mut rng);
                            u += match (maps[e][c], t) {
                                (Map::Identity, _) => z * data.y_moments(m).1.sqrt().max(1e-3),
                                _ => z,
                            };
                        }
                        u.clamp(box_lo[e][c], box_hi[e][c])
                    })
                    .collect()
            })
            .collect();

        enum State {
            L(Box<LbfgsState>),
            A(Box<AdamState>),
        }
        let mut states: Vec<State> = u0
            .into_iter()
            .enumerate()
            .map(|(e, u)| {
                let (fr, lo, hi) = (free[e].clone(), box_lo[e].clone(), box_hi[e].clone());
                match self.optimizer {
                    Optimizer::Lbfgs => State::L(Box::new(LbfgsState::new(u, fr, 10).with_bounds(lo, hi))),
                    Optimizer::Adam => {
                        State::A(Box::new(AdamState::new(u, fr, self.learning_rate).with_bounds(lo, hi)))
                    }
                }
            })
            .collect();
        fn trial(s: &State) -> Option<&[f64]> {
            match s {
                State::L(s) => s.trial(),
                State::A(s) => s.trial(),
            }
        }

        // Per member: (mll, log_prior, objective, status, jitter) at the current iterate.
        let mut record: Vec<(f64, f64, f64, Status, f64)> =
            vec![(f64::NAN, f64::NAN, f64::NAN, Status::Failed, 0.0); e_total];
        let mut hyp_s = Hyperparameters::broadcast(e_total, &vec![1.0; d], 1.0, 1.0, 0.0).with_kernel(self.kernel);
        let mut hyp_d = hyp_s.clone();
        let opts = MllOptions::new(self.precision);
        let mut objective_now = vec![f64::NAN; e_total];
        if let Some(o) = self.observer.as_deref_mut() {
            o.init(e_total);
        }
        let mut rounds = 0;
        loop {
            let active: Vec<usize> = (0..e_total).filter(|&e| trial(&states[e]).is_some()).collect();
            if active.is_empty() {
                break;
            }
            for &e in &active {
                let u = trial(&states[e]).expect("active");
                write_theta(&mut hyp_d, layout, e, u, &maps[e]);
                let m = e % b;
                let s2 = sigma[m] * sigma[m];
                hyp_s.lengthscale.row_mut(e).assign(&hyp_d.lengthscale.row(e));
                hyp_s.outputscale[e] = hyp_d.outputscale[e] / s2;
                hyp_s.noise[e] = hyp_d.noise[e] / s2;
                hyp_s.mean[e] = (hyp_d.mean[e] - mu[m]) / sigma[m];
            }
            let raw = be.mll(data_e, &hyp_s, Some(&active), &opts)?;
            let pri = priors_e.evaluate(&hyp_d, Some(&active));
            let grad = raw.gradient.as_ref().expect("gradient requested");
            for (i, &e) in active.iter().enumerate() {
                let m = e % b;
                let failed = raw.status[i] == Status::Failed;
                let mll = raw.mll[i] - n_obs[m] * sigma[m].ln();
                let obj = mll + pri.log_prior[i];
                let mut g_u = vec![f64::NAN; p];
                if !failed {
                    let u = trial(&states[e]).expect("active");
                    for (c, gu) in g_u.iter_mut().enumerate() {
                        let (t, k) = layout.coordinate(c);
                        let g_rep = match t {
                            Target::Lengthscale => grad.log_lengthscale[[i, k]] + pri.grad_log_lengthscale[[i, k]],
                            Target::Outputscale => grad.log_outputscale[i] + pri.grad_log_outputscale[i],
                            Target::Noise => grad.log_noise[i] + pri.grad_log_noise[i],
                            Target::Mean => grad.mean[i] / sigma[m] + pri.grad_mean[i],
                            Target::Alpha => grad.get(t, i, k) + pri.grad_log_alpha[i],
                        };
                        let theta = maps[e][c].theta(u[c]);
                        *gu = -maps[e][c].grad_u(t.positive(), theta, g_rep);
                    }
                }
                let f = if failed { f64::INFINITY } else { -obj };
                let accepted = match &mut states[e] {
                    State::L(s) => s.observe(f, &g_u, self.gtol, self.ftol, self.max_iter),
                    State::A(s) => s.observe(f, &g_u, self.gtol, self.max_iter),
                };
                if accepted {
                    record[e] = (mll, pri.log_prior[i], obj, raw.status[i], raw.jitter[i]);
                    objective_now[e] = obj;
                }
            }
            rounds += 1;
            if let Some(o) = self.observer.as_deref_mut() {
                let us: Vec<Vec<f64>> = states
                    .iter()
                    .map(|s| match s {
                        State::L(s) => s.u.clone(),
                        State::A(s) => s.u.clone(),
                    })
                    .collect();
                let best = objective_now.iter().cloned().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
                o.iter(&FitProgress {
                    iteration: rounds,
                    running: active.len(),
                    total: e_total,
                    best_objective: best,
                    objective: &objective_now,
                    u: &us,
                    maps: &maps,
                    layout,
                });
            }
        }

        // Fold restarts: keep the best non-failed run per GP.
        let mut out_h = Hyperparameters::broadcast(b, &vec![f64::NAN; d], f64::NAN, f64::NAN, f64::NAN).with_kernel(self.kernel);
        let mut res = FitResult {
            hyperparameters: Hyperparameters::broadcast(0, &vec![0.0; d], 0.0, 0.0, 0.0),
            mll: Array1::from_elem(b, f64::NAN),
            log_prior: Array1::from_elem(b, f64::NAN),
            objective: Array1::from_elem(b, f64::NAN),
            status: vec![Status::Failed; b],
            jitter: Array1::zeros(b),
            iterations: Array1::zeros(b),
            rounds,
            restart: Array1::zeros(b),
        };
        for m in 0..b {
            let mut best: Option<usize> = None;
            for r in 0..=self.restarts {
                let e = m + r * b;
                let stop = match &states[e] {
                    State::L(s) => s.stop,
                    State::A(s) => s.stop,
                };
                if stop == Some(Stop::Failed) || !record[e].2.is_finite() {
                    continue;
                }
                if best.is_none_or(|bb| record[e].2 > record[bb].2) {
                    best = Some(e);
                }
            }
            let Some(e) = best else {
                res.jitter[m] = record[m].4;
                continue;
            };
            let (u, stop, iters) = match &states[e] {
                State::L(s) => (s.u.clone(), s.stop, s.iterations),
                State::A(s) => (s.u.clone(), s.stop, s.iterations),
            };
            write_theta(&mut out_h, layout, m, &u, &maps[e]);
            let (mll, lp, obj, st, jit) = record[e];
            res.mll[m] = mll;
            res.log_prior[m] = lp;
            res.objective[m] = obj;
            res.jitter[m] = jit;
            res.iterations[m] = iters;
            res.restart[m] = e / b;
            res.status[m] = match stop {
                Some(Stop::MaxIter) => Status::MaxIter,
                _ if st == Status::Jitter => Status::Jitter,
                _ => Status::Ok,
            };
        }
        res.hyperparameters = out_h;
        if let Some(o) = self.observer.as_deref_mut() {
            o.finish(&res);
        }
        Ok(res)
    }
}

/// Writes the natural values of member `e`'s vector `u` into row `e` of `h`.
fn write_theta(h: &mut Hyperparameters, layout: Layout, e: usize, u: &[f64], maps: &[Map]) {
    let theta: Vec<f64> = u.iter().zip(maps).map(|(u, m)| m.theta(*u)).collect();
    layout.write(h, e, &theta);
}

/// Used by the CLI: the resolved priors of a request (validated), for reporting.
pub fn resolve_priors(priors: &Priors, b: usize, d: usize) -> Result<ResolvedPriors> {
    priors.resolve(b, d)
}
