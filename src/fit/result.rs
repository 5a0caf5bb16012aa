//! What a fit returns: [`FitResult`], one type for every model, holding the fields every fit
//! reports (status, reason, objective, jitter, iterations, restarts) beside the model's own part
//! (`model`: its fitted parameters and its likelihood term), and the outcome in words written
//! once for all models.

use super::request::{Exact, Model};
use super::{Degeneracy, Termination};
use crate::data::Status;
use ndarray::Array1;

/// What a fit of model M returns, per GP (restarts folded in: the best kept). Arrays are (B,)
/// unless noted.
///
/// The model's own part is `model`: [`ExactFit`](super::ExactFit) (`hyperparameters`, `mll`)
/// for the exact GP, [`SvgpFit`](super::SvgpFit) (`params`, `elbo`, `loss`) for the SVGP, so
/// `r.model.hyperparameters` or `r.model.elbo`; [`FitResult::params`] gives the fitted
/// parameters of any model. [`SvgpFitResult`](super::SvgpFitResult) is `FitResult<Svgp>`.
#[derive(Debug, Clone, PartialEq)]
pub struct FitResult<M: Model = Exact> {
    /// The model's own part: its fitted parameters in the data's units (NaN for a failed or
    /// empty member), its likelihood term (mll, elbo) and what else it alone reports.
    pub model: M::Fitted,
    pub log_prior: Array1<f64>,
    /// The likelihood term (mll, elbo) + log_prior at the fitted point.
    pub objective: Array1<f64>,
    /// Ok or Jitter (converged), MaxIter (not converged: see `reason`), Failed, Empty or
    /// Degenerate (the exact GP only).
    pub status: Vec<Status>,
    /// Why each member's optimiser stopped.
    pub reason: Vec<Termination>,
    /// Why a member is degenerate, if it is (the SVGP: never).
    pub degeneracy: Vec<Option<Degeneracy>>,
    pub jitter: Array1<f64>,
    /// Optimiser iterations (accepted steps) of the kept run.
    pub iterations: Array1<usize>,
    /// Batched evaluation rounds in all.
    pub rounds: usize,
    /// Which start was kept per GP (0 = the initial point, r = restart r; the SVGP has one).
    pub restart: Array1<usize>,
    /// Per GP, the hyperparameters that ended on a uniform prior's bound or a box bound, in
    /// words (`outputscale at its uniform prior's bound 10`); empty for none. Such a fit is the
    /// best within the bounds, not the data's optimum: [`FitResult::describe`] says so.
    pub at_bound: Vec<String>,
    /// How many of the GP's starts (of restarts + 1) ended at the kept objective, within
    /// [`SAME_OPTIMUM_NATS`](super::SAME_OPTIMUM_NATS); 0 for an empty or failed member.
    pub reached_best: Array1<usize>,
    /// Starts per GP (restarts + 1).
    pub starts: usize,
}

impl<M: Model> FitResult<M> {
    /// A result of B members with the model's part `model` and nothing fitted yet: every member
    /// Failed, NaN objective and log prior, no degeneracy, no bound, start 0 kept by none.
    pub(crate) fn unfitted(model: M::Fitted, b: usize, starts: usize, rounds: usize) -> Self {
        let nan = f64::NAN;
        FitResult {
            model,
            log_prior: Array1::from_elem(b, nan),
            objective: Array1::from_elem(b, nan),
            status: vec![Status::Failed; b],
            reason: vec![Termination::Failed; b],
            degeneracy: vec![None; b],
            jitter: Array1::zeros(b),
            iterations: Array1::zeros(b),
            rounds,
            restart: Array1::zeros(b),
            at_bound: vec![String::new(); b],
            reached_best: Array1::zeros(b),
            starts,
        }
    }

    /// The fitted parameters of every member (the model's `Params`: `Hyperparameters` for the
    /// exact GP, `SvgpParams` for the SVGP), ready for prediction or another fit's `init`.
    pub fn params(&self) -> &M::Params {
        M::params(&self.model)
    }

    /// Member b's outcome in words: its status, the reason or degeneracy behind it, and the
    /// bounds its hyperparameters ended on.
    pub fn describe(&self, b: usize) -> String {
        let text = match (self.status[b], self.degeneracy[b]) {
            (Status::Degenerate, Some(d)) => format!("degenerate ({}), {}", d.text(), self.reason[b].text()),
            (Status::MaxIter, _) => format!("not converged ({})", self.reason[b].text()),
            (s, _) if self.reason[b] == Termination::AtResolution => {
                format!("{} ({})", s.text(), self.reason[b].text())
            }
            (s, _) => s.text().to_string(),
        };
        let text = match self.at_bound.get(b).filter(|s| !s.is_empty()) {
            Some(hits) => format!("{text}; {hits}"),
            None => text,
        };
        match self.starts_warning(b) {
            Some(w) => format!("{text}; {w}"),
            None => text,
        }
    }

    /// A warning when member b's starts disagree: with restarts, only one start reached the
    /// kept optimum, so a better one may exist that no start found.
    pub fn starts_warning(&self, b: usize) -> Option<String> {
        (self.starts > 1 && self.reached_best[b] == 1).then(|| {
            format!(
                "warning: only 1 of {} starts reached this optimum (the others ended lower); more restarts may find a better one",
                self.starts
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::BackendChoice;
    use crate::data::{Dataset, Status};
    use crate::fit::{FitRequest, Svgp, Termination};
    use ndarray::Array2;

    /// An SVGP fit fills the fields every fit reports as a fit of one start: a round per row of
    /// its loss, start 0 kept and reached, and the exact GP's words for its outcome.
    #[test]
    fn an_svgp_result_reports_the_shared_fields_as_one_start() {
        let (b, n) = (3, 30);
        let x = Array2::from_shape_fn((n, 1), |(i, _)| i as f64 / n as f64);
        let mut y = Array2::from_shape_fn((b, n), |(m, i)| (4.0 * x[[i, 0]] + m as f64).sin());
        let mut mask = Array2::from_elem((b, n), true);
        mask.row_mut(2).fill(false);
        y.row_mut(2).fill(0.0);
        let data = Dataset::with_mask(crate::data::Inputs::Shared(x), y, Some(mask)).unwrap();
        let r = FitRequest::<Svgp>::of(&data).num_inducing(5).steps(7).backend(BackendChoice::Cpu).run().unwrap();
        assert_eq!(r.rounds, r.model.loss.nrows());
        assert!(r.rounds >= 7, "7 steps take at least 7 rounds, got {}", r.rounds);
        assert_eq!((r.starts, r.restart.to_vec()), (1, vec![0; b]));
        assert_eq!(r.status[2], Status::Empty);
        assert_eq!(r.reached_best.to_vec(), vec![1, 1, 0], "a fitted member reached its one start's value");
        for m in 0..2 {
            assert_eq!((r.status[m], r.reason[m]), (Status::MaxIter, Termination::IterationLimit));
            assert_eq!(r.describe(m), "not converged (iteration limit)");
            assert!((r.objective[m] - (r.model.elbo[m] + r.log_prior[m])).abs() <= 1e-12 * r.objective[m].abs());
        }
        assert_eq!(r.describe(2), Status::Empty.text());
        assert!(std::ptr::eq(r.params(), &r.model.params));
    }
}
