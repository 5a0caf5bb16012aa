//! A terminal progress bar for fits (indicatif), silent when stderr is not a terminal.

use super::{FitObserver, FitProgress, FitResult};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Shows: evaluation round, members still running out of all, best objective.
/// Draws nothing when stderr is not a terminal (CI logs, pipes).
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
            bar.set_position((p.total - p.running) as u64);
            bar.set_message(format!(
                "iter {}  running {}  best objective {:.6e}",
                p.iteration, p.running, p.best_objective
            ));
        }
    }
    fn finish(&mut self, _r: &FitResult) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
