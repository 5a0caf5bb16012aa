//! The one fit request of every model: [`FitRequest`], generic over the [`Model`] it fits (the
//! exact GP by default, [`Svgp`] for the sparse variational GP), with the options every fit
//! shares, their setters and their checks written once; a model adds its own options (`init`,
//! restarts, inducing points, ...) and its run (`exact/`, `svgp.rs`).

use super::adam::{Adam, AdamState};
use super::bounds::Bounds;
use super::driver::MemberOptimizer;
use super::lbfgs::{resolution_of, Lbfgs, LbfgsState};
use super::{check_steps, FitObserver, FitResult, NotRun, Optimizer};
use crate::backend::{self, memory, Backend, BackendChoice, Kind, PredictOptions, Prediction};
use crate::data::{Dataset, Hyperparameters, Inputs, Precision};
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::model::Evaluate;
use crate::prior::{Priors, Target};
use crate::svgp::SvgpParams;

/// A model that [`FitRequest`] fits: its own options, its part of a fit's result, its defaults, its
/// own checks, its memory need, its run and its prediction. Implemented by [`Exact`] and
/// [`Svgp`]; a third model implements it in its own module (docs/design.md, "Adding a model").
/// Its batched objective and gradient are its parameters' [`Evaluate`].
pub trait Model: Sized {
    /// The model's own options (its init, restarts, inducing points, ...).
    type Options;
    /// Its own part of a fit's result ([`FitResult`]'s `model`): its fitted parameters, its
    /// likelihood term and what else it alone reports.
    type Fitted: std::fmt::Debug + Clone + PartialEq;
    /// Its parameters: what a fit finds, an evaluation reads and a prediction uses.
    type Params: Evaluate;
    /// The fitted parameters in its part of a fit's result ([`FitResult::params`]).
    fn params(fitted: &Self::Fitted) -> &Self::Params;
    /// Bytes one member's objective and gradient need on the CPU backend
    /// (`backend::memory`, docs/design.md section 14).
    fn member_bytes(req: &FitRequest<'_, Self>) -> u64;
    /// The fit's memory budget on the CPU (None: the memory available).
    fn max_memory(req: &FitRequest<'_, Self>) -> Option<u64>;
    /// The posterior of every member at test points ((M, D) shared or (B, M, D)); `data` is the
    /// training data (a model that does not need it ignores it).
    fn predict(
        be: &dyn Backend,
        data: &Dataset,
        params: &Self::Params,
        test: &Inputs,
        opts: &PredictOptions,
    ) -> Result<Prediction>;
    /// The model's default options, optimiser and learning rate.
    fn defaults() -> (Self::Options, Optimizer, f64);
    /// Checks the model's own options; Err names the option.
    fn check(req: &FitRequest<'_, Self>) -> Result<()>;
    /// Targets the model holds fixed beyond the request's `fix` (for the alpha check).
    fn fixed(_req: &FitRequest<'_, Self>) -> Vec<Target> {
        Vec::new()
    }
    /// The backend a choice means for this model (the exact GP: as chosen).
    fn backend_choice(choice: BackendChoice) -> BackendChoice {
        choice
    }
    /// Runs the fit (options already checked).
    fn run(req: FitRequest<'_, Self>) -> Result<FitResult<Self>>;
}

/// The exact GP (docs/design.md sections 1 to 5): the default model of a [`FitRequest`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exact;

/// The sparse variational GP (docs/design.md section 11).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Svgp;

/// The exact GP's own options.
#[derive(Debug, Clone)]
pub struct ExactOptions {
    pub(super) init: Option<Hyperparameters>,
    pub(super) fixed_members: Vec<(Target, usize)>,
    pub(super) restarts: usize,
    pub(super) bounds: Option<(f64, f64)>,
    pub(super) hyperparameter_bounds: Bounds,
    pub(super) max_memory: Option<u64>,
}

impl Default for ExactOptions {
    fn default() -> Self {
        ExactOptions {
            init: None,
            fixed_members: Vec::new(),
            restarts: super::DEFAULT_RESTARTS,
            bounds: None,
            hyperparameter_bounds: Bounds::none(),
            max_memory: None,
        }
    }
}

/// The SVGP's own options.
#[derive(Debug, Clone)]
pub struct SvgpOptions {
    pub(super) num_inducing: Option<usize>,
    pub(super) init: Option<SvgpParams>,
    pub(super) fix_inducing: bool,
    pub(super) batch_size: Option<usize>,
    pub(super) max_memory: Option<u64>,
    pub(super) optimal_q: bool,
}

impl Default for SvgpOptions {
    fn default() -> Self {
        SvgpOptions {
            num_inducing: None,
            init: None,
            fix_inducing: false,
            batch_size: None,
            max_memory: None,
            optimal_q: true,
        }
    }
}

/// A batched fit of a [`Model`] (the exact GP unless said otherwise).
///
/// # Parameters every model shares
/// | name        | default                 | purpose                                                  | range |
/// |-------------|-------------------------|----------------------------------------------------------|-------|
/// | kernel      | rbf                     | the covariance kernel ([`Kernel`]); an `init` must be of the same kernel |  |
/// | priors      | none                    | MAP priors ([`Priors`]); uniform ones are hard bounds    |       |
/// | fix         | nothing                 | hyperparameter kinds held at their initial value         |       |
/// | optimizer   | L-BFGS (exact), Adam (SVGP) | [`Optimizer`]                                        |       |
/// | max_iter, steps | 1000                | iterations per member (two names, one option)            | >= 0  |
/// | gtol        | 1e-6                    | stop when the max abs projected gradient in the optimiser's scale-free coordinates is below | > 0 |
/// | ftol        | 1e-12                   | stop when the relative decrease of the objective is below | >= 0 |
/// | learning_rate | 0.1 (exact), 0.05 (SVGP) | Adam's step                                           | > 0   |
/// | seed        | 0                       | restarts' spread, k-means++, mini-batches (one random stream per GP) |  |
/// | first_member | 0                      | index of the first GP in a larger batch split into chunks |       |
/// | backend     | auto                    | where to compute                                         |       |
/// | precision   | f64                     | arithmetic inside the backend                            |       |
///
/// # The exact GP's own ([`FitRequest::new`])
/// | name        | default                 | purpose                                                  | range |
/// |-------------|-------------------------|----------------------------------------------------------|-------|
/// | init        | data-driven (see below) | starting hyperparameters (B members)                     | valid hyperparameters |
/// | fix_member  | nothing                 | a hyperparameter held for one member                     |       |
/// | restarts    | [`DEFAULT_RESTARTS`](super::DEFAULT_RESTARTS) | extra starts per GP, spread log-uniformly over the ranges where optima lie (`starts`); best kept | >= 0  |
/// | bounds      | none                    | box (low, high) on positive hyperparameters, as scikit-learn's; L-BFGS then runs as L-BFGS-B on a boxed problem | 0 < low < high |
/// | hyperparameter_bounds | none          | [`Bounds`] per kind, member and dimension (GPyTorch's constraints, scikit-learn's `*_bounds`) | low < high |
/// | max_memory  | the memory available    | budget in bytes: members run in chunks that fit it        | >= 1  |
///
/// The data-driven start (docs/design.md section 7): lengthscale = std of x per dimension,
/// outputscale = var(y), noise = var(y) / 10, mean = mean(y), per member (for rq, alpha = 1); a
/// start outside a uniform prior's interval is moved inside it. The fit does not depend on the
/// data's units (docs/design.md section 14): see the `exact` module.
///
/// # The SVGP's own ([`SvgpFitRequest::new`])
/// | name         | default                      | purpose |
/// |--------------|------------------------------|---------|
/// | num_inducing | min(N, 64)                   | M, inducing points per member (without `init`) |
/// | init         | k-means++ Z, q = N(0, I), the exact GP's data-driven hyperparameters | starting parameters |
/// | fix_inducing | false                        | holds Z at its start |
/// | batch_size   | none (full data)             | mini-batch size S per member (Adam only) |
/// | max_memory   | the memory available         | CPU budget in bytes: members run in chunks that fit it |
/// | optimal_q    | true                         | q at its closed-form optimum (full data: at every evaluation; mini-batches: natural-gradient steps toward it, then at the end) |
pub struct FitRequest<'a, M: Model = Exact> {
    pub(super) data: &'a Dataset,
    pub(super) kernel: Kernel,
    pub(super) priors: Priors,
    pub(super) fixed: Vec<Target>,
    pub(super) optimizer: Optimizer,
    pub(super) max_iter: usize,
    pub(super) gtol: f64,
    pub(super) ftol: f64,
    pub(super) learning_rate: f64,
    pub(super) seed: u64,
    pub(super) first_member: u64,
    pub(super) choice: BackendChoice,
    pub(super) backend: Option<&'a dyn Backend>,
    pub(super) precision: Precision,
    pub(super) observer: Option<&'a mut dyn FitObserver>,
    pub(super) model: M::Options,
    /// Adam's rate anneals over the second half of the steps (stochastic objectives: set by the
    /// model, not an option).
    pub(super) anneal: bool,
}

/// The SVGP's fit request: `SvgpFitRequest::new(&data)` is a [`FitRequest`] of [`Svgp`].
pub struct SvgpFitRequest;

impl SvgpFitRequest {
    /// An SVGP fit of every member of `data`, with the defaults of [`FitRequest`]'s tables.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(data: &Dataset) -> FitRequest<'_, Svgp> {
        FitRequest::of(data)
    }
}

impl<'a> FitRequest<'a, Exact> {
    /// An exact fit of every member of `data`, with the defaults of the tables above.
    pub fn new(data: &'a Dataset) -> Self {
        FitRequest::of(data)
    }
}

impl<'a, M: Model> FitRequest<'a, M> {
    /// A fit of model M of every member of `data`, with M's defaults.
    pub fn of(data: &'a Dataset) -> Self {
        let (model, optimizer, learning_rate) = M::defaults();
        FitRequest {
            data,
            kernel: Kernel::Rbf,
            priors: Priors::none(),
            fixed: Vec::new(),
            optimizer,
            max_iter: 1000,
            gtol: 1e-6,
            ftol: 1e-12,
            learning_rate,
            seed: 0,
            first_member: 0,
            choice: BackendChoice::Auto,
            backend: None,
            precision: Precision::F64,
            observer: None,
            model,
            anneal: false,
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
    /// Holds one kind of hyperparameter at its initial value for every member.
    pub fn fix(mut self, target: Target) -> Self {
        self.fixed.push(target);
        self
    }
    pub fn optimizer(mut self, o: Optimizer) -> Self {
        self.optimizer = o;
        self
    }
    /// Iterations per member.
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }
    /// Iterations per member (the SVGP notebooks' word for `max_iter`).
    pub fn steps(self, t: usize) -> Self {
        self.max_iter(t)
    }
    /// Convergence tolerances: gradient (max abs) and relative objective decrease.
    pub fn tolerances(mut self, gtol: f64, ftol: f64) -> Self {
        self.gtol = gtol;
        self.ftol = ftol;
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
    /// The index of this batch's first member in a larger batch that was split into chunks:
    /// with the same seed, each chunk's random streams (restarts, k-means++, mini-batches) then
    /// start where the whole batch's would, so the chunks fit exactly as the whole (default 0).
    pub fn first_member(mut self, index: u64) -> Self {
        self.first_member = index;
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

    /// Runs the fit.
    ///
    /// # Errors
    /// Invalid init, priors or options; an unavailable backend; [`Error::Interrupted`] when the
    /// observer stops it. Numerical failure of a member is reported in its status, never as an
    /// error.
    pub fn run(self) -> Result<FitResult<M>> {
        self.check()?;
        self.plan()?;
        M::run(self)
    }

    /// On the CPU, refuses before any work (the start, k-means++, restarts' spread) a fit whose
    /// one member does not fit the memory budget alone; the backend then runs the members in
    /// chunks that fit (docs/design.md section 14). Other backends size their own chunks.
    fn plan(&self) -> Result<()> {
        let on_cpu = match self.backend {
            Some(be) => matches!(backend::kind(be), Kind::Cpu(_)),
            None => M::backend_choice(self.choice) == BackendChoice::Cpu,
        };
        if on_cpu {
            memory::in_flight(M::member_bytes(self), 0, M::max_memory(self), self.data.n_points())?;
        }
        Ok(())
    }

    /// The one set of option checks: the steps, the model's own options, then alpha (held or
    /// given a prior) only for a kernel that has it.
    fn check(&self) -> Result<()> {
        check_steps(self.gtol, self.ftol, self.learning_rate)?;
        M::check(self)?;
        if self.fixed.iter().chain(&M::fixed(self)).any(|t| *t == Target::Alpha) && !self.kernel.has_alpha() {
            return Err(Error::option("fix", format!("alpha is not a hyperparameter of the {} kernel", self.kernel)));
        }
        if self.priors.alpha.is_some() && !self.kernel.has_alpha() {
            return Err(Error::InvalidPrior {
                target: "alpha".into(),
                reason: format!("the {} kernel has no alpha", self.kernel),
            });
        }
        Ok(())
    }

    /// An init's kernel must be the fit's: Err names what the init holds (`what`).
    pub(super) fn check_init_kernel(&self, what: &str, kernel: Kernel) -> Result<()> {
        if kernel != self.kernel {
            return Err(Error::option(
                "init",
                format!("holds {kernel} {what} for a fit of the {} kernel", self.kernel),
            ));
        }
        Ok(())
    }

    /// The backend this fit runs on: the one given, else a new one of the model's choice.
    pub(super) fn backend_in<'s>(&self, slot: &'s mut Option<Box<dyn Backend>>) -> Result<&'s dyn Backend>
    where
        'a: 's,
    {
        backend::given_or_select(self.backend, M::backend_choice(self.choice), slot)
    }

    /// Member e's optimiser from its start `u` (stopped from the start when it has no data):
    /// which entries are free, and its box.
    pub(super) fn member_optimizer(
        &self,
        u: Vec<f64>,
        has_data: bool,
        free: Vec<bool>,
        lower: Vec<f64>,
        upper: Vec<f64>,
    ) -> Box<dyn MemberOptimizer> {
        if !has_data {
            return Box::new(NotRun(u));
        }
        match self.optimizer {
            Optimizer::Lbfgs => Box::new(Lbfgs {
                state: LbfgsState::new(u, free, 10)
                    .with_bounds(lower, upper)
                    .with_resolution(resolution_of(self.precision)),
                gtol: self.gtol,
                ftol: self.ftol,
                max_iter: self.max_iter,
            }),
            Optimizer::Adam => Box::new(Adam {
                state: AdamState::new(u, free, self.learning_rate)
                    .with_bounds(lower, upper)
                    .with_anneal(self.anneal.then_some(self.max_iter)),
                gtol: self.gtol,
                max_iter: self.max_iter,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::cpu_mll_bytes;
    use ndarray::Array2;

    /// Fits model M and predicts at the training inputs through the trait alone.
    fn fit_then_predict<M: Model>(req: FitRequest<'_, M>, data: &Dataset, x: &Array2<f64>) -> Prediction {
        let fitted = req.backend(BackendChoice::Cpu).run().unwrap();
        let be = backend::select(BackendChoice::Cpu).unwrap();
        let test = Inputs::Shared(x.clone());
        M::predict(&*be, data, fitted.params(), &test, &PredictOptions::default()).unwrap()
    }

    #[test]
    fn every_model_fits_and_predicts_through_the_trait() {
        let (b, n) = (2, 40);
        let x = Array2::from_shape_fn((n, 1), |(i, _)| i as f64 / n as f64);
        let y = Array2::from_shape_fn((b, n), |(m, i)| (5.0 * x[[i, 0]] + m as f64).sin());
        let data = Dataset::new(x.clone(), y.clone()).unwrap();
        let exact = fit_then_predict(FitRequest::new(&data), &data, &x);
        let svgp = fit_then_predict(FitRequest::<Svgp>::of(&data).num_inducing(12).steps(400), &data, &x);
        for (name, p, tol) in [("exact", exact, 0.02), ("svgp", svgp, 0.1)] {
            let rms = ((&p.mean - &y).mapv(|v| v * v).mean().unwrap()).sqrt();
            assert!(rms < tol, "{name}: rms {rms} of the posterior mean at the training points");
        }
    }

    #[test]
    fn an_exact_fit_on_the_cpu_refuses_a_member_too_large_before_work() {
        let (b, n) = (2, 50);
        let x = Array2::from_shape_fn((n, 1), |(i, _)| i as f64);
        let data = Dataset::new(x, Array2::from_shape_fn((b, n), |(m, i)| (i + m) as f64)).unwrap();
        let per = cpu_mll_bytes(n, 1, Kernel::Rbf, Precision::F64, true);
        let e = FitRequest::new(&data).restarts(0).backend(BackendChoice::Cpu).max_memory(per - 1).run().unwrap_err();
        match e {
            Error::OutOfMemory { n: 50, needed, budget } => assert_eq!((needed, budget), (per, per - 1)),
            other => panic!("expected OutOfMemory, got {other:?}"),
        }
    }
}
