//! A terminal progress bar for fits (indicatif; compiled with the `cli` feature only), silent
//! when stderr is not a terminal. The bar stays on screen when the fit ends, with the members
//! converged out of B.

use super::{FitObserver, FitProgress};
use crate::data::Status;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Shows runs converged out of all (restarts included: B (R + 1)), the evaluation round, runs
/// still going and the best current objective; when the fit ends, the members converged out of
/// B and what became of the others, which stays on screen. Draws nothing when stderr is not a
/// terminal (CI logs, pipes).
pub struct ProgressBarObserver {
    bar: Option<ProgressBar>,
}

impl ProgressBarObserver {
    /// A bar on stderr, or a silent observer when stderr is not a terminal.
    pub fn new() -> Self {
        ProgressBarObserver { bar: None }
    }
}

impl Default for ProgressBarObserver {
    fn default() -> Self {
        Self::new()
    }
}

/// The last line: members converged out of B, and the others by status.
fn final_message(status: &[Status]) -> String {
    let count = |f: &dyn Fn(Status) -> bool| status.iter().filter(|s| f(**s)).count();
    let converged = count(&|s| matches!(s, Status::Ok | Status::Jitter));
    let mut msg = format!("converged {converged} of {} members", status.len());
    for s in [Status::MaxIter, Status::Degenerate, Status::Empty, Status::Failed] {
        let n = count(&|t| t == s);
        if n > 0 {
            msg.push_str(&format!(", {n} {}", s.text()));
        }
    }
    msg
}

impl FitObserver for ProgressBarObserver {
    fn init(&mut self, members: usize) {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(members as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} fit [{elapsed_precise}] {bar:30} {pos}/{len} converged  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        self.bar = Some(bar);
    }
    fn iter(&mut self, p: &FitProgress<'_>) {
        if let Some(bar) = &self.bar {
            bar.set_position(p.converged as u64);
            let best = p.objective.iter().copied().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
            bar.set_message(format!("round {}  running {}  best objective {best:.6e}", p.iteration, p.running));
        }
    }
    fn finish(&mut self, status: &[Status]) {
        if let Some(bar) = self.bar.take() {
            let converged = status.iter().filter(|s| matches!(s, Status::Ok | Status::Jitter)).count();
            bar.set_length(status.len() as u64);
            bar.set_position(converged as u64);
            bar.set_style(
                ProgressStyle::with_template("  fit [{elapsed_precise}] {bar:30} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.finish_with_message(final_message(status));
        }
    }
}
