//! The batched driver: each round collects the point every running member's optimiser wants
//! evaluated, makes one [`BatchObjective`] call for all of them, and hands each member its value
//! and gradient. A member that has stopped asks for nothing more, so it stops costing work.
//! The members' optimiser steps run in parallel (each touches only its own state, so the
//! result does not depend on the thread count).

use super::objective::{BatchObjective, MemberEval};
use super::{FitObserver, FitProgress, Termination};
use crate::data::Hyperparameters;
use crate::error::{Error, Result};
use rayon::prelude::*;

/// One member's optimiser, as the driver sees it (L-BFGS and Adam implement it).
pub(crate) trait MemberOptimizer: Send {
    /// The point it wants evaluated next (None once stopped).
    fn trial(&self) -> Option<&[f64]>;
    /// Takes f and its gradient at the trial point (f = +inf for a failed evaluation); returns
    /// true when the trial point became the current iterate.
    fn observe(&mut self, f: f64, g: &[f64]) -> bool;
    /// The current iterate and its value.
    fn point(&self) -> (&[f64], f64);
    /// Accepted steps so far.
    fn iterations(&self) -> usize;
    /// Why it stopped, once it has.
    fn termination(&self) -> Option<Termination>;
}

/// Every member's optimiser.
pub(crate) type Members = [Box<dyn MemberOptimizer>];

/// Runs every member to its stop; returns the evaluation rounds.
///
/// # Errors
/// A failure of the objective, or [`Error::Interrupted`] when the observer asks to stop.
pub(crate) fn drive(
    objective: &mut dyn BatchObjective,
    states: &mut Members,
    mut observer: Option<&mut (dyn FitObserver + '_)>,
    snapshot: &dyn Fn(&Members) -> Hyperparameters,
) -> Result<usize> {
    let e_total = objective.members();
    let mut objective_now = vec![f64::NAN; e_total];
    if let Some(o) = observer.as_deref_mut() {
        o.init(e_total);
    }
    let mut rounds = 0;
    loop {
        let active: Vec<usize> = (0..e_total).filter(|&e| states[e].trial().is_some()).collect();
        if active.is_empty() {
            break;
        }
        let points: Vec<&[f64]> = active.iter().map(|&e| states[e].trial().expect("active")).collect();
        let evals = objective.evaluate(&active, &points)?;
        let mut by_member: Vec<Option<MemberEval>> = (0..e_total).map(|_| None).collect();
        for (&e, ev) in active.iter().zip(evals) {
            by_member[e] = Some(ev);
        }
        let accepted: Vec<Option<f64>> = states
            .par_iter_mut()
            .zip(by_member.into_par_iter())
            .map(|(state, ev)| ev.and_then(|ev| state.observe(ev.f, &ev.grad).then_some(-ev.f)))
            .collect();
        for (now, a) in objective_now.iter_mut().zip(accepted) {
            if let Some(v) = a {
                *now = v;
            }
        }
        rounds += 1;
        if let Some(o) = observer.as_deref_mut() {
            let running = states.iter().filter(|s| s.trial().is_some()).count();
            let converged = states.iter().filter(|s| s.termination().is_some_and(Termination::converged)).count();
            o.iter(&FitProgress {
                iteration: rounds,
                running,
                converged,
                total: e_total,
                objective: &objective_now,
                snapshot: &|| snapshot(states),
            });
            if o.stop() {
                return Err(Error::Interrupted);
            }
        }
    }
    Ok(rounds)
}
