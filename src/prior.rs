//! Priors on hyperparameters, with parameters per GP and per dimension (docs/design.md section 2).
//!
//! A prior is a density on the natural value (the lengthscale, not its log), as in GPyTorch
//! and Pyro; the MAP objective is mll + sum log p(theta), with no Jacobian. A uniform prior is
//! also a hard bound: the optimiser parametrises that hyperparameter through a scaled sigmoid
//! and never leaves (low, high).
//!
//! # Parameters and broadcasting
//! Each parameter of a prior is a number (every member, every dimension); for the lengthscale a
//! list of D numbers (per dimension) or B lists of D numbers (per member and dimension); for
//! outputscale, noise and mean a list of B numbers (per member).
//!
//! | family     | parameters            | log density at theta                                   |
//! |------------|-----------------------|--------------------------------------------------------|
//! | gamma      | concentration a, rate b | a ln b - lnGamma(a) + (a - 1) ln theta - b theta     |
//! | lognormal  | loc mu, scale sigma   | -ln theta - ln sigma - ln(2 pi)/2 - (ln theta - mu)^2 / (2 sigma^2) |
//! | normal     | loc mu, scale sigma   | -ln sigma - ln(2 pi)/2 - (theta - mu)^2 / (2 sigma^2) |
//! | halfcauchy | scale g               | ln 2 - ln pi - ln g - ln(1 + (theta / g)^2), theta >= 0 |
//! | uniform    | low, high             | -ln(high - low) inside, -inf outside                   |

use crate::data::Hyperparameters;
use crate::error::{Error, Result};
use crate::special::ln_gamma;
use ndarray::{Array1, Array2};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// The distribution family of a prior.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriorFamily {
    Gamma,
    LogNormal,
    Normal,
    HalfCauchy,
    Uniform,
}

impl PriorFamily {
    /// The family's name in priors files, and the names of its parameters in order.
    pub fn names(self) -> (&'static str, &'static [&'static str]) {
        match self {
            PriorFamily::Gamma => ("gamma", &["concentration", "rate"]),
            PriorFamily::LogNormal => ("lognormal", &["loc", "scale"]),
            PriorFamily::Normal => ("normal", &["loc", "scale"]),
            PriorFamily::HalfCauchy => ("halfcauchy", &["scale"]),
            PriorFamily::Uniform => ("uniform", &["low", "high"]),
        }
    }
    fn from_name(s: &str) -> Option<Self> {
        [PriorFamily::Gamma, PriorFamily::LogNormal, PriorFamily::Normal, PriorFamily::HalfCauchy, PriorFamily::Uniform]
            .into_iter()
            .find(|f| f.names().0 == s)
    }
}

/// One parameter of a prior as given, before broadcasting over (B, D).
#[derive(Debug, Clone, PartialEq)]
pub enum PriorParam {
    /// The same value everywhere.
    Scalar(f64),
    /// D values (lengthscale: per dimension) or B values (other hyperparameters: per member).
    List(Vec<f64>),
    /// B lists of D values (lengthscale only: per member and dimension).
    Nested(Vec<Vec<f64>>),
}

impl From<f64> for PriorParam {
    fn from(v: f64) -> Self {
        PriorParam::Scalar(v)
    }
}
impl From<Vec<f64>> for PriorParam {
    fn from(v: Vec<f64>) -> Self {
        PriorParam::List(v)
    }
}
impl From<&[f64]> for PriorParam {
    fn from(v: &[f64]) -> Self {
        PriorParam::List(v.to_vec())
    }
}
impl From<Vec<Vec<f64>>> for PriorParam {
    fn from(v: Vec<Vec<f64>>) -> Self {
        PriorParam::Nested(v)
    }
}

/// A prior on one kind of hyperparameter, its parameters not yet broadcast.
#[derive(Debug, Clone, PartialEq)]
pub struct Prior {
    pub family: PriorFamily,
    pub params: Vec<PriorParam>,
}

impl Prior {
    /// Gamma(concentration, rate), mean concentration / rate.
    pub fn gamma(concentration: impl Into<PriorParam>, rate: impl Into<PriorParam>) -> Self {
        Prior { family: PriorFamily::Gamma, params: vec![concentration.into(), rate.into()] }
    }
    /// LogNormal(loc, scale): ln theta ~ Normal(loc, scale).
    pub fn lognormal(loc: impl Into<PriorParam>, scale: impl Into<PriorParam>) -> Self {
        Prior { family: PriorFamily::LogNormal, params: vec![loc.into(), scale.into()] }
    }
    /// Normal(loc, scale).
    pub fn normal(loc: impl Into<PriorParam>, scale: impl Into<PriorParam>) -> Self {
        Prior { family: PriorFamily::Normal, params: vec![loc.into(), scale.into()] }
    }
    /// HalfCauchy(scale).
    pub fn halfcauchy(scale: impl Into<PriorParam>) -> Self {
        Prior { family: PriorFamily::HalfCauchy, params: vec![scale.into()] }
    }
    /// Uniform(low, high): also a hard bound for the optimiser.
    pub fn uniform(low: impl Into<PriorParam>, high: impl Into<PriorParam>) -> Self {
        Prior { family: PriorFamily::Uniform, params: vec![low.into(), high.into()] }
    }
}

pub use crate::target::Target;

/// Priors on each kind of hyperparameter (any may be absent: a flat prior).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Priors {
    pub lengthscale: Option<Prior>,
    pub outputscale: Option<Prior>,
    pub noise: Option<Prior>,
    pub mean: Option<Prior>,
    /// rq's shape parameter alpha.
    pub alpha: Option<Prior>,
}

impl Priors {
    /// No prior at all: the fit is maximum likelihood.
    pub fn none() -> Self {
        Priors::default()
    }
    /// Sets the prior of one kind of hyperparameter.
    pub fn with(mut self, target: Target, prior: Prior) -> Self {
        *self.slot(target) = Some(prior);
        self
    }
    fn slot(&mut self, target: Target) -> &mut Option<Prior> {
        match target {
            Target::Lengthscale => &mut self.lengthscale,
            Target::Outputscale => &mut self.outputscale,
            Target::Noise => &mut self.noise,
            Target::Mean => &mut self.mean,
            Target::Alpha => &mut self.alpha,
        }
    }
    /// The prior of one kind of hyperparameter.
    pub fn get(&self, target: Target) -> Option<&Prior> {
        match target {
            Target::Lengthscale => self.lengthscale.as_ref(),
            Target::Outputscale => self.outputscale.as_ref(),
            Target::Noise => self.noise.as_ref(),
            Target::Mean => self.mean.as_ref(),
            Target::Alpha => self.alpha.as_ref(),
        }
    }

    /// Parses a priors file (TOML), for example the Pyro "Batching Gaussian Processes" request:
    ///
    /// ```toml
    /// [lengthscale]
    /// gamma = { concentration = [2.0, 2.0, 2.0], rate = [0.0075, 0.075, 0.075] }
    /// [outputscale]
    /// uniform = { low = 10.0, high = 150.0 }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidPrior`] naming the section and key, and their line, for anything unknown
    /// or malformed; a syntax error gives its line and column.
    pub fn from_toml(text: &str) -> Result<Self> {
        // "line L, column C" of a byte offset, both from 1.
        let position = |offset: usize| {
            let before = &text.as_bytes()[..offset.min(text.len())];
            let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
            let start = before.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
            (line, column)
        };
        // The line of the innermost key of `path` (section, family, parameter) that the file has.
        let key_line = |path: &[&str]| -> Option<usize> {
            let root = toml::de::DeTable::parse(text).ok()?;
            let mut table = root.get_ref();
            let mut line = None;
            for k in path {
                let Some((key, value)) = table.get_key_value(*k) else { break };
                line = Some(position(key.span().start).0);
                match value.get_ref().as_table() {
                    Some(t) => table = t,
                    None => break,
                }
            }
            line
        };
        let bad = |path: &[&str], reason: String| Error::InvalidPrior {
            target: path[0].into(),
            reason: match key_line(path) {
                Some(line) => format!("line {line}: {reason}"),
                None => reason,
            },
        };
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let reason = match e.span() {
                Some(span) => {
                    let (line, column) = position(span.start);
                    format!("line {line}, column {column}: {}", e.message().trim_end())
                }
                None => e.message().trim_end().to_string(),
            };
            Error::InvalidPrior { target: "file".into(), reason }
        })?;
        let mut priors = Priors::none();
        for (section, value) in &table {
            let target = Target::from_name(section).ok_or_else(|| {
                let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
                bad(&[section], format!("unknown section (expected one of {})", names.join(", ")))
            })?;
            let inner =
                value.as_table().ok_or_else(|| bad(&[section], "expected a table like `gamma = { ... }`".into()))?;
            if inner.len() != 1 {
                return Err(bad(&[section], format!("expected exactly one family, found {}", inner.len())));
            }
            let (fname, fval) = inner.iter().next().expect("one entry");
            let family = PriorFamily::from_name(fname).ok_or_else(|| {
                bad(
                    &[section, fname],
                    format!("unknown family `{fname}` (expected gamma, lognormal, normal, halfcauchy or uniform)"),
                )
            })?;
            let ftab = fval
                .as_table()
                .ok_or_else(|| bad(&[section, fname], format!("`{fname}` must be a table of parameters")))?;
            let (_, pnames) = family.names();
            for k in ftab.keys() {
                if !pnames.contains(&k.as_str()) {
                    return Err(bad(
                        &[section, fname, k],
                        format!("unknown parameter `{k}` of {fname} (expected {})", pnames.join(", ")),
                    ));
                }
            }
            let mut params = Vec::new();
            for p in pnames {
                let v = ftab.get(*p).ok_or_else(|| bad(&[section, fname], format!("{fname} needs `{p}`")))?;
                params.push(param_from_toml(v).ok_or_else(|| {
                    bad(
                        &[section, fname, p],
                        format!("`{p}` must be a number, a list of numbers or a list of lists of numbers"),
                    )
                })?);
            }
            *priors.slot(target) = Some(Prior { family, params });
        }
        Ok(priors)
    }

    /// Broadcasts every prior to the batch (B members, D dimensions) and checks its parameters.
    ///
    /// # Errors
    /// [`Error::InvalidPrior`] for a shape that does not broadcast or an invalid parameter,
    /// naming the hyperparameter and (member, index).
    pub fn resolve(&self, b: usize, d: usize) -> Result<ResolvedPriors> {
        let mut out = ResolvedPriors { b, d, terms: Vec::new() };
        for t in Target::ALL {
            if let Some(p) = self.get(t) {
                let width = if t == Target::Lengthscale { d } else { 1 };
                let params = p
                    .params
                    .iter()
                    .zip(p.family.names().1)
                    .map(|(v, name)| broadcast(v, t, name, b, width))
                    .collect::<Result<Vec<_>>>()?;
                let r = Resolved { target: t, family: p.family, params, held: vec![false; b] };
                r.check()?;
                out.terms.push(r);
            }
        }
        Ok(out)
    }
}

fn param_from_toml(v: &toml::Value) -> Option<PriorParam> {
    let num = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
    if let Some(x) = num(v) {
        return Some(PriorParam::Scalar(x));
    }
    let arr = v.as_array()?;
    if arr.iter().all(|e| num(e).is_some()) {
        return Some(PriorParam::List(arr.iter().map(|e| num(e).unwrap()).collect()));
    }
    let nested: Option<Vec<Vec<f64>>> =
        arr.iter().map(|row| row.as_array().and_then(|r| r.iter().map(num).collect::<Option<Vec<f64>>>())).collect();
    nested.map(PriorParam::Nested)
}

pub(crate) fn broadcast(v: &PriorParam, t: Target, pname: &str, b: usize, width: usize) -> Result<Array2<f64>> {
    let bad = |reason: String| Error::InvalidPrior { target: t.name().into(), reason: format!("`{pname}`: {reason}") };
    match v {
        PriorParam::Scalar(x) => Ok(Array2::from_elem((b, width), *x)),
        PriorParam::List(l) if t == Target::Lengthscale => {
            if l.len() != width {
                return Err(bad(format!(
                    "a list for the lengthscale must hold D = {width} numbers (one per dimension), got {}",
                    l.len()
                )));
            }
            Ok(Array2::from_shape_fn((b, width), |(_, k)| l[k]))
        }
        PriorParam::List(l) => {
            if l.len() != b {
                return Err(bad(format!("a list must hold B = {b} numbers (one per member), got {}", l.len())));
            }
            Ok(Array2::from_shape_fn((b, 1), |(m, _)| l[m]))
        }
        PriorParam::Nested(rows) => {
            if t != Target::Lengthscale {
                return Err(bad("lists of lists are only for the lengthscale (B lists of D numbers)".into()));
            }
            if rows.len() != b || rows.iter().any(|r| r.len() != width) {
                let got: Vec<usize> = rows.iter().map(|r| r.len()).collect();
                return Err(bad(format!(
                    "expected B = {b} lists of D = {width} numbers, got lists of lengths {got:?}"
                )));
            }
            Ok(Array2::from_shape_fn((b, width), |(m, k)| rows[m][k]))
        }
    }
}

/// A prior broadcast to (B, W): W = D for the lengthscale, 1 otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub target: Target,
    pub family: PriorFamily,
    /// One (B, W) array per parameter, in the family's order.
    pub params: Vec<Array2<f64>>,
    /// (B,) members whose hyperparameter is held fixed: their prior takes no part.
    pub held: Vec<bool>,
}

impl Resolved {
    fn check(&self) -> Result<()> {
        let (b, w) = self.params[0].dim();
        let names = self.family.names().1;
        for m in 0..b {
            for k in 0..w {
                let p: Vec<f64> = self.params.iter().map(|a| a[[m, k]]).collect();
                let fail = |reason: &str| Error::InvalidPrior {
                    target: self.target.name().into(),
                    reason: format!(
                        "{} {reason} at (member {m}, index {k}), got {p:?} for {names:?}",
                        self.family.names().0
                    ),
                };
                if p.iter().any(|v| !v.is_finite()) {
                    return Err(fail("parameters must be finite"));
                }
                match self.family {
                    PriorFamily::Gamma if p[0] <= 0.0 || p[1] <= 0.0 => {
                        return Err(fail("needs concentration > 0 and rate > 0"))
                    }
                    PriorFamily::LogNormal | PriorFamily::Normal if p[1] <= 0.0 => return Err(fail("needs scale > 0")),
                    PriorFamily::HalfCauchy if p[0] <= 0.0 => return Err(fail("needs scale > 0")),
                    PriorFamily::Uniform if p[0] >= p[1] => return Err(fail("needs low < high")),
                    PriorFamily::Uniform if self.target.positive() && p[0] < 0.0 => {
                        return Err(fail("needs low >= 0 for a positive hyperparameter"))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// (log density, d log density / d theta) at theta for member m, index k.
    pub fn log_density(&self, m: usize, k: usize, theta: f64) -> (f64, f64) {
        let p0 = self.params[0][[m, k]];
        let p1 = self.params.get(1).map_or(0.0, |a| a[[m, k]]);
        match self.family {
            PriorFamily::Gamma => {
                if theta <= 0.0 {
                    return (f64::NEG_INFINITY, 0.0);
                }
                (p0 * p1.ln() - ln_gamma(p0) + (p0 - 1.0) * theta.ln() - p1 * theta, (p0 - 1.0) / theta - p1)
            }
            PriorFamily::LogNormal => {
                if theta <= 0.0 {
                    return (f64::NEG_INFINITY, 0.0);
                }
                let z = (theta.ln() - p0) / p1;
                (-theta.ln() - p1.ln() - 0.5 * LN_2PI - 0.5 * z * z, -(1.0 + z / p1) / theta)
            }
            PriorFamily::Normal => {
                let z = (theta - p0) / p1;
                (-p1.ln() - 0.5 * LN_2PI - 0.5 * z * z, -z / p1)
            }
            PriorFamily::HalfCauchy => {
                if theta < 0.0 {
                    return (f64::NEG_INFINITY, 0.0);
                }
                let u = theta / p0;
                (
                    std::f64::consts::LN_2 - std::f64::consts::PI.ln() - p0.ln() - u.ln_1p_sq(),
                    -2.0 * theta / (p0 * p0 + theta * theta),
                )
            }
            PriorFamily::Uniform => {
                if theta > p0 && theta < p1 {
                    (-(p1 - p0).ln(), 0.0)
                } else {
                    (f64::NEG_INFINITY, 0.0)
                }
            }
        }
    }
}

trait Ln1pSq {
    fn ln_1p_sq(self) -> f64;
}
impl Ln1pSq for f64 {
    /// ln(1 + x^2) without overflow for large x.
    fn ln_1p_sq(self) -> f64 {
        let a = self.abs();
        if a > 1e150 {
            2.0 * a.ln()
        } else {
            (a * a).ln_1p()
        }
    }
}

/// Priors broadcast to a batch: ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPriors {
    b: usize,
    d: usize,
    terms: Vec<Resolved>,
}

/// Log prior per member and its gradient with respect to log(lengthscale), log(outputscale),
/// log(noise) and mean (the same coordinates as the MLL gradient).
#[derive(Debug, Clone, PartialEq)]
pub struct PriorTerms {
    /// (K,)
    pub log_prior: Array1<f64>,
    /// (K, D)
    pub grad_log_lengthscale: Array2<f64>,
    pub grad_log_outputscale: Array1<f64>,
    pub grad_log_noise: Array1<f64>,
    pub grad_mean: Array1<f64>,
    /// (K,) zeros unless alpha has a prior.
    pub grad_log_alpha: Array1<f64>,
}

impl PriorTerms {
    /// The gradient entry of kind `t` (index `k`) of row `i`, in the reported coordinates.
    pub fn grad(&self, t: Target, i: usize, k: usize) -> f64 {
        match t {
            Target::Lengthscale => self.grad_log_lengthscale[[i, k]],
            Target::Outputscale => self.grad_log_outputscale[i],
            Target::Noise => self.grad_log_noise[i],
            Target::Mean => self.grad_mean[i],
            Target::Alpha => self.grad_log_alpha[i],
        }
    }
}

impl ResolvedPriors {
    /// No priors for a batch of (B, D).
    pub fn flat(b: usize, d: usize) -> Self {
        ResolvedPriors { b, d, terms: Vec::new() }
    }
    /// The prior on one kind of hyperparameter, if any.
    pub fn get(&self, t: Target) -> Option<&Resolved> {
        self.terms.iter().find(|r| r.target == t)
    }
    /// The hard bounds (low, high) of a hyperparameter with a uniform prior.
    pub fn bounds(&self, t: Target, m: usize, k: usize) -> Option<(f64, f64)> {
        self.get(t).filter(|r| r.family == PriorFamily::Uniform).map(|r| (r.params[0][[m, k]], r.params[1][[m, k]]))
    }
    /// Takes the prior on `t` out of the objective of the members for which `held(m)` is true
    /// (a fixed hyperparameter is not a random variable of the fit: it keeps its value whatever
    /// its prior says, and its prior adds nothing, not even -inf outside a uniform's interval).
    pub fn hold(&mut self, t: Target, held: impl Fn(usize) -> bool) {
        for r in self.terms.iter_mut().filter(|r| r.target == t) {
            for (m, h) in r.held.iter_mut().enumerate() {
                *h |= held(m);
            }
        }
    }
    /// Members the priors were broadcast to.
    pub fn batch_size(&self) -> usize {
        self.b
    }
    /// The same priors for the members listed in `rows` (repeats allowed: restarts).
    pub fn select(&self, rows: &[usize]) -> ResolvedPriors {
        ResolvedPriors {
            b: rows.len(),
            d: self.d,
            terms: self
                .terms
                .iter()
                .map(|r| Resolved {
                    target: r.target,
                    family: r.family,
                    params: r.params.iter().map(|a| a.select(ndarray::Axis(0), rows)).collect(),
                    held: rows.iter().map(|&m| r.held[m]).collect(),
                })
                .collect(),
        }
    }

    /// Log prior and its gradient for the members listed in `rows` of `hyp` (all when None).
    pub fn evaluate(&self, hyp: &Hyperparameters, rows: Option<&[usize]>) -> PriorTerms {
        let all: Vec<usize>;
        let rows = match rows {
            Some(r) => r,
            None => {
                all = (0..self.b).collect();
                &all
            }
        };
        let k = rows.len();
        let mut out = PriorTerms {
            log_prior: Array1::zeros(k),
            grad_log_lengthscale: Array2::zeros((k, self.d)),
            grad_log_outputscale: Array1::zeros(k),
            grad_log_noise: Array1::zeros(k),
            grad_mean: Array1::zeros(k),
            grad_log_alpha: Array1::zeros(k),
        };
        for r in &self.terms {
            let width = r.params[0].ncols();
            for (i, &m) in rows.iter().enumerate() {
                if r.held[m] {
                    continue;
                }
                for kk in 0..width {
                    let theta = hyp.get(r.target, m, kk);
                    let (lp, dlp) = r.log_density(m, kk, theta);
                    out.log_prior[i] += lp;
                    // Positive hyperparameters: d/dlog theta = theta d/dtheta.
                    let g = if r.target.positive() { theta * dlp } else { dlp };
                    match r.target {
                        Target::Lengthscale => out.grad_log_lengthscale[[i, kk]] += g,
                        Target::Outputscale => out.grad_log_outputscale[i] += g,
                        Target::Noise => out.grad_log_noise[i] += g,
                        Target::Mean => out.grad_mean[i] += g,
                        Target::Alpha => out.grad_log_alpha[i] += g,
                    }
                }
            }
        }
        out
    }
}
