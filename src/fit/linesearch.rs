//! The Moré–Thuente line search (MINPACK-2's dcsrch and dcstep), the one scipy's L-BFGS-B
//! uses, as a state machine: the caller evaluates f and its slope at each step it asks for.
//!
//! It looks for a step satisfying the strong Wolfe conditions
//! f(stp) <= f(0) + ftol stp f'(0) and |f'(stp)| <= gtol |f'(0)|, keeping an interval
//! [stx, sty] that is known to hold one once `brackt` is set, and choosing trial steps by
//! safeguarded cubic and quadratic interpolation (dcstep's four cases). Stage 1 works on the
//! auxiliary function psi(stp) = f(stp) - f(0) - ftol stp f'(0) until a step with psi <= 0 and
//! f' >= 0 is seen, as in the original.

const XTRAPL: f64 = 1.1;
const XTRAPU: f64 = 4.0;
/// L-BFGS-B's constants: sufficient decrease, curvature, relative interval width.
const FTOL: f64 = 1e-3;
const GTOL: f64 = 0.9;
const XTOL: f64 = 0.1;

/// What the search wants next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Next {
    /// Evaluate at this step.
    Evaluate(f64),
    /// The step just evaluated is accepted (the Wolfe conditions hold, or no further progress
    /// is possible at working precision).
    Accept,
}

#[derive(Debug, Clone)]
pub(crate) struct MoreThuente {
    gtol: f64,
    xtol: f64,
    stpmin: f64,
    stpmax: f64,
    brackt: bool,
    stage1: bool,
    finit: f64,
    ginit: f64,
    gtest: f64,
    width: f64,
    width1: f64,
    pub stx: f64,
    fx: f64,
    gx: f64,
    sty: f64,
    fy: f64,
    gy: f64,
    stmin: f64,
    stmax: f64,
}

impl MoreThuente {
    /// Starts a search from f(0) = `f0` with slope `g0` < 0 and first trial step `stp`, within
    /// (0, stpmax], with L-BFGS-B's constants (ftol = 1e-3, gtol = 0.9, xtol = 0.1).
    pub fn new(f0: f64, g0: f64, stp: f64, stpmax: f64) -> Self {
        let stpmin = 0.0;
        MoreThuente {
            gtol: GTOL,
            xtol: XTOL,
            stpmin,
            stpmax,
            brackt: false,
            stage1: true,
            finit: f0,
            ginit: g0,
            gtest: FTOL * g0,
            width: stpmax - stpmin,
            width1: 2.0 * (stpmax - stpmin),
            stx: 0.0,
            fx: f0,
            gx: g0,
            sty: 0.0,
            fy: f0,
            gy: g0,
            stmin: 0.0,
            stmax: stp + XTRAPU * stp,
        }
    }

    /// Takes f and its slope g at step `stp` (the step last asked for) and says what to do next.
    pub fn step(&mut self, mut stp: f64, f: f64, g: f64) -> Next {
        let ftest = self.finit + stp * self.gtest;
        if self.stage1 && f <= ftest && g >= 0.0 {
            self.stage1 = false;
        }
        // Warnings: no further progress possible; the caller takes the step as it is.
        if (self.brackt
            && (stp <= self.stmin || stp >= self.stmax || self.stmax - self.stmin <= self.xtol * self.stmax))
            || (stp == self.stpmax && f <= ftest && g <= self.gtest)
            || (stp == self.stpmin && (f > ftest || g >= self.gtest))
        {
            return Next::Accept;
        }
        if f <= ftest && g.abs() <= self.gtol * (-self.ginit) {
            return Next::Accept;
        }
        if self.stage1 && f <= self.fx && f > ftest {
            // The modified function psi.
            let fm = f - stp * self.gtest;
            let mut fxm = self.fx - self.stx * self.gtest;
            let mut fym = self.fy - self.sty * self.gtest;
            let gm = g - self.gtest;
            let mut gxm = self.gx - self.gtest;
            let mut gym = self.gy - self.gtest;
            stp = dcstep(
                &mut self.stx,
                &mut fxm,
                &mut gxm,
                &mut self.sty,
                &mut fym,
                &mut gym,
                stp,
                fm,
                gm,
                &mut self.brackt,
                self.stmin,
                self.stmax,
            );
            self.fx = fxm + self.stx * self.gtest;
            self.fy = fym + self.sty * self.gtest;
            self.gx = gxm + self.gtest;
            self.gy = gym + self.gtest;
        } else {
            stp = dcstep(
                &mut self.stx,
                &mut self.fx,
                &mut self.gx,
                &mut self.sty,
                &mut self.fy,
                &mut self.gy,
                stp,
                f,
                g,
                &mut self.brackt,
                self.stmin,
                self.stmax,
            );
        }
        if self.brackt {
            if (self.sty - self.stx).abs() >= 0.66 * self.width1 {
                stp = self.stx + 0.5 * (self.sty - self.stx);
            }
            self.width1 = self.width;
            self.width = (self.sty - self.stx).abs();
            self.stmin = self.stx.min(self.sty);
            self.stmax = self.stx.max(self.sty);
        } else {
            self.stmin = stp + XTRAPL * (stp - self.stx);
            self.stmax = stp + XTRAPU * (stp - self.stx);
        }
        stp = stp.max(self.stpmin).min(self.stpmax);
        if self.brackt && (stp <= self.stmin || stp >= self.stmax || self.stmax - self.stmin <= self.xtol * self.stmax)
        {
            stp = self.stx;
        }
        Next::Evaluate(stp)
    }

    /// After a failed evaluation at `stp` (f not finite): never go that far again, and try
    /// halfway back towards the best step so far.
    pub fn failed(&mut self, stp: f64) -> Next {
        self.stpmax = stp.min(self.stpmax);
        self.stmax = self.stmax.min(stp);
        Next::Evaluate(self.stx + 0.5 * (stp - self.stx))
    }
}

/// dcstep: a safeguarded step from the interval [stx, sty] and the trial stp, updating the
/// interval (MINPACK-2).
#[allow(clippy::too_many_arguments)]
fn dcstep(
    stx: &mut f64,
    fx: &mut f64,
    dx: &mut f64,
    sty: &mut f64,
    fy: &mut f64,
    dy: &mut f64,
    stp: f64,
    fp: f64,
    dp: f64,
    brackt: &mut bool,
    stpmin: f64,
    stpmax: f64,
) -> f64 {
    let sgnd = dp * (*dx / dx.abs());
    let stpf;
    if fp > *fx {
        // Case 1: a higher value. The minimum is bracketed.
        let theta = 3.0 * (*fx - fp) / (stp - *stx) + *dx + dp;
        let s = theta.abs().max(dx.abs()).max(dp.abs());
        let mut gamma = s * ((theta / s).powi(2) - (*dx / s) * (dp / s)).sqrt();
        if stp < *stx {
            gamma = -gamma;
        }
        let p = (gamma - *dx) + theta;
        let q = ((gamma - *dx) + gamma) + dp;
        let r = p / q;
        let stpc = *stx + r * (stp - *stx);
        let stpq = *stx + ((*dx / ((*fx - fp) / (stp - *stx) + *dx)) / 2.0) * (stp - *stx);
        stpf = if (stpc - *stx).abs() < (stpq - *stx).abs() { stpc } else { stpc + (stpq - stpc) / 2.0 };
        *brackt = true;
    } else if sgnd < 0.0 {
        // Case 2: lower value, derivatives of opposite sign. Bracketed.
        let theta = 3.0 * (*fx - fp) / (stp - *stx) + *dx + dp;
        let s = theta.abs().max(dx.abs()).max(dp.abs());
        let mut gamma = s * ((theta / s).powi(2) - (*dx / s) * (dp / s)).sqrt();
        if stp > *stx {
            gamma = -gamma;
        }
        let p = (gamma - dp) + theta;
        let q = ((gamma - dp) + gamma) + *dx;
        let r = p / q;
        let stpc = stp + r * (*stx - stp);
        let stpq = stp + (dp / (dp - *dx)) * (*stx - stp);
        stpf = if (stpc - stp).abs() > (stpq - stp).abs() { stpc } else { stpq };
        *brackt = true;
    } else if dp.abs() < dx.abs() {
        // Case 3: lower value, same sign, the derivative's magnitude decreases.
        let theta = 3.0 * (*fx - fp) / (stp - *stx) + *dx + dp;
        let s = theta.abs().max(dx.abs()).max(dp.abs());
        let mut gamma = s * ((theta / s).powi(2) - (*dx / s) * (dp / s)).max(0.0).sqrt();
        if stp > *stx {
            gamma = -gamma;
        }
        let p = (gamma - dp) + theta;
        let q = (gamma + (*dx - dp)) + gamma;
        let r = p / q;
        let stpc = if r < 0.0 && gamma != 0.0 {
            stp + r * (*stx - stp)
        } else if stp > *stx {
            stpmax
        } else {
            stpmin
        };
        let stpq = stp + (dp / (dp - *dx)) * (*stx - stp);
        if *brackt {
            let mut t = if (stpc - stp).abs() < (stpq - stp).abs() { stpc } else { stpq };
            t = if stp > *stx { t.min(stp + 0.66 * (*sty - stp)) } else { t.max(stp + 0.66 * (*sty - stp)) };
            stpf = t;
        } else {
            let t = if (stpc - stp).abs() > (stpq - stp).abs() { stpc } else { stpq };
            stpf = t.min(stpmax).max(stpmin);
        }
    } else {
        // Case 4: lower value, same sign, the derivative's magnitude does not decrease.
        stpf = if *brackt {
            let theta = 3.0 * (fp - *fy) / (*sty - stp) + *dy + dp;
            let s = theta.abs().max(dy.abs()).max(dp.abs());
            let mut gamma = s * ((theta / s).powi(2) - (*dy / s) * (dp / s)).sqrt();
            if stp > *sty {
                gamma = -gamma;
            }
            let p = (gamma - dp) + theta;
            let q = ((gamma - dp) + gamma) + *dy;
            let r = p / q;
            stp + r * (*sty - stp)
        } else if stp > *stx {
            stpmax
        } else {
            stpmin
        };
    }
    // Update the interval that holds a minimiser.
    if fp > *fx {
        *sty = stp;
        *fy = fp;
        *dy = dp;
    } else {
        if sgnd < 0.0 {
            *sty = *stx;
            *fy = *fx;
            *dy = *dx;
        }
        *stx = stp;
        *fx = fp;
        *dx = dp;
    }
    stpf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives the search on phi(t) = (t - 2)^2 - 4 from slope -4: it must end at a step with
    /// sufficient decrease and a small slope.
    #[test]
    fn finds_a_strong_wolfe_step_on_a_quadratic() {
        let phi = |t: f64| ((t - 2.0).powi(2) - 4.0, 2.0 * (t - 2.0));
        let (f0, g0) = phi(0.0);
        let mut stp = 0.1;
        let mut ls = MoreThuente::new(f0, g0, stp, 1e10);
        for _ in 0..20 {
            let (f, g) = phi(stp);
            match ls.step(stp, f, g) {
                Next::Accept => {
                    assert!(f <= f0 + 1e-3 * stp * g0);
                    assert!(g.abs() <= 0.9 * g0.abs());
                    return;
                }
                Next::Evaluate(t) => stp = t,
            }
        }
        panic!("no step accepted");
    }
}
