//! The lines the commands print on stderr when they are done: the one line after `mll`, `elbo`
//! and `predict`, the SVGP fit's line and the exact fit's summary, and their parts (counts per
//! status, durations for people).

use batchgp::backend::Backend;
use batchgp::{FitResult, Kernel, Precision, Status, Termination};

/// "(3 ok, 1 ok (jitter), 2 failed)": counts per status, in code order, the nonzero ones.
pub(super) fn status_counts(status: &[Status]) -> String {
    Status::ALL
        .iter()
        .filter_map(|s| {
            let n = status.iter().filter(|t| *t == s).count();
            (n > 0).then(|| format!("{n} {}", s.text()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Seconds for people: "12.3 ms", "1.234 s", "2 min 3.4 s".
pub(super) fn duration(secs: f64) -> String {
    if secs < 1.0 {
        format!("{:.3} ms", secs * 1e3)
    } else if secs < 120.0 {
        format!("{secs:.3} s")
    } else {
        format!("{} min {:.1} s", (secs / 60.0).floor(), secs % 60.0)
    }
}

/// The one line after mll and predict.
pub(super) fn one_line(
    what: &str,
    status: &[Status],
    secs: f64,
    be: &dyn Backend,
    precision: Precision,
    kernel: Kernel,
) -> String {
    let ok = status.iter().filter(|s| s.is_ok()).count();
    // The counts per status when they say more than "all ok".
    let detail =
        if status.iter().all(|s| *s == Status::Ok) { String::new() } else { format!(" ({})", status_counts(status)) };
    format!(
        "batchgp {what}: {} members, {ok} ok, {} failed{detail}; {} on {} ({}), kernel {kernel}",
        status.len(),
        status.len() - ok,
        duration(secs),
        be.name(),
        precision_name(precision),
    )
}

pub(super) fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::F64 => "f64",
        Precision::F32 => "f32",
    }
}

/// What the fit ran with, for its summary.
pub(super) struct FitSetup<'a> {
    pub be: &'a dyn Backend,
    pub precision: Precision,
    pub optimizer: &'a str,
    pub restarts: usize,
    pub out: &'a str,
}

/// The screen after a fit: members converged / at the limit / degenerate / failed with the
/// counts per status and per reason, iterations, time, backend, kernel.
pub(super) fn fit_summary(r: &FitResult, secs: f64, s: &FitSetup<'_>) -> String {
    let b = r.status.len();
    // "at the limit" is the iteration limit only; a member that stopped unconverged for
    // another reason (a stalled line search) is counted apart.
    let at_limit = |m: usize| r.reason[m] == Termination::IterationLimit;
    let group = |set: &[Status], limit: Option<bool>| -> (usize, String) {
        let members: Vec<Status> = (0..b)
            .filter(|&m| set.contains(&r.status[m]) && limit.is_none_or(|l| at_limit(m) == l))
            .map(|m| r.status[m])
            .collect();
        (members.len(), status_counts(&members))
    };
    let kernel = r.model.hyperparameters.kernel;
    let mut lines = vec![format!(
        "batchgp fit: {b} members, kernel {kernel}, {}{} on {} ({}), {}, {} evaluation rounds",
        s.optimizer,
        if s.restarts > 0 { format!(" (best of {} starts)", s.restarts + 1) } else { String::new() },
        s.be.name(),
        precision_name(s.precision),
        duration(secs),
        r.rounds
    )];
    for (label, set, limit) in [
        ("converged", &[Status::Ok, Status::Jitter][..], None),
        ("at the limit", &[Status::MaxIter][..], Some(true)),
        ("stalled (not converged)", &[Status::MaxIter][..], Some(false)),
        ("degenerate (flagged)", &[Status::Degenerate][..], None),
        ("failed", &[Status::Failed, Status::Empty][..], None),
    ] {
        let (n, detail) = group(set, limit);
        if n == 0 && limit == Some(false) {
            continue;
        }
        let detail = if n > 0 && set.len() > 1 { format!("  ({detail})") } else { String::new() };
        lines.push(format!("  {label:<24}{n:>8}{detail}"));
    }
    let mut reasons: Vec<(&str, usize)> = Vec::new();
    for t in &r.reason {
        match reasons.iter_mut().find(|(w, _)| *w == t.text()) {
            Some((_, n)) => *n += 1,
            None => reasons.push((t.text(), 1)),
        }
    }
    let reasons: Vec<String> = reasons.iter().map(|(w, n)| format!("{n} {w}")).collect();
    lines.push(format!("  {:<24}{}", "stopped because", reasons.join(", ")));
    let lone = (0..b).filter(|&m| r.starts_warning(m).is_some()).count();
    if lone > 0 {
        lines.push(format!(
            "  warning: {lone} member(s) reached their optimum from only 1 of {} starts; more restarts may find a better one",
            r.starts
        ));
    }
    let mut it: Vec<usize> = r.iterations.to_vec();
    it.sort_unstable();
    if !it.is_empty() {
        let median = if it.len() % 2 == 1 {
            it[it.len() / 2] as f64
        } else {
            (it[it.len() / 2 - 1] + it[it.len() / 2]) as f64 / 2.0
        };
        lines.push(format!("  {:<24}median {median}, max {}", "iterations", it[it.len() - 1]));
    }
    lines.push(format!("  {:<24}{}", "wrote", s.out));
    lines.join("\n")
}
