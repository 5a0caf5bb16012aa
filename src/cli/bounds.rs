//! The command line's `--bounds`: the single box `LOW,HIGH` on every positive hyperparameter
//! (scikit-learn's one pair of bounds), and bounds per kind of hyperparameter,
//! `NAME=LOW,HIGH` (lengthscale, outputscale, noise, mean, alpha), the same for every member and
//! dimension; `inf` and `-inf` stand for no bound on that side. `--bounds` may be repeated, and
//! one value may hold several entries separated by spaces.

use batchgp::fit::Bounds;
use batchgp::{Error, Target};

/// What `--bounds` asked for: the single box, if given, and the bounds per kind.
pub fn parse(args: &[String]) -> Result<(Option<(f64, f64)>, Bounds), Error> {
    let mut single = None;
    let mut per = Bounds::none();
    for arg in args.iter().flat_map(|a| a.split_whitespace()) {
        let bad = |why: &str| {
            Error::InvalidOption {
            name: "bounds".into(),
            reason: format!("expected LOW,HIGH or NAME=LOW,HIGH (NAME: lengthscale, outputscale, noise, mean or alpha){why}, got `{arg}`"),
        }
        };
        let (name, pair) = match arg.split_once('=') {
            Some((n, p)) => (Some(n.trim()), p),
            None => (None, arg),
        };
        let v: Vec<f64> =
            pair.split(',').map(|t| t.trim().parse::<f64>().map_err(|_| bad(""))).collect::<Result<_, _>>()?;
        let [lo, hi] = v[..] else { return Err(bad("")) };
        match name {
            None if single.is_some() => return Err(bad(" (one LOW,HIGH box at most)")),
            None => single = Some((lo, hi)),
            Some(n) => {
                let t = Target::from_name(n).ok_or_else(|| bad(""))?;
                per = per.with(t, lo, hi);
            }
        }
    }
    Ok((single, per))
}
