//! The kinds of hyperparameter ([`Target`]): a leaf word that data, layouts, priors and
//! gradients all name.

/// The kinds of hyperparameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Lengthscale,
    Outputscale,
    Noise,
    Mean,
    /// rq's shape parameter.
    Alpha,
}

impl Target {
    /// Every kind, in layout order.
    pub const ALL: [Target; 5] = [Target::Lengthscale, Target::Outputscale, Target::Noise, Target::Mean, Target::Alpha];
    /// Its name in files, priors and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Lengthscale => "lengthscale",
            Target::Outputscale => "outputscale",
            Target::Noise => "noise",
            Target::Mean => "mean",
            Target::Alpha => "alpha",
        }
    }
    /// Parses a name.
    pub fn from_name(s: &str) -> Option<Self> {
        Target::ALL.into_iter().find(|t| t.name() == s)
    }
    /// Whether the hyperparameter is positive (reported and optimised on the log scale).
    pub fn positive(self) -> bool {
        self != Target::Mean
    }
}
