//! Every size a request's options imply is planned before anything is allocated (issue 21,
//! points 3 to 5 and 7): restarts x members, samples x B x M, inducing points (M x M per member
//! and the k-means++ work), steps x B of loss history. A request that cannot fit is refused with
//! `Error::TooLarge` naming the bytes it needs; none aborts the process.

use batchgp::{BackendChoice, Dataset, Error, FitRequest, Hyperparameters, Inputs, Precision, SvgpFitRequest};
use ndarray::{Array1, Array2};
use proptest::prelude::*;

fn data(b: usize, n: usize) -> Dataset {
    let x = Array2::from_shape_fn((n, 1), |(i, _)| i as f64 / n as f64);
    let y = Array2::from_shape_fn((b, n), |(m, i)| (6.0 * i as f64 / n as f64 + m as f64).sin());
    Dataset::new(x, y).unwrap()
}

/// The error is TooLarge, needs more than `at_least` bytes, and says so with the option.
fn refused(e: Error, at_least: u64, option: &str) {
    match &e {
        Error::TooLarge { request, needed, budget } => {
            assert!(*needed >= at_least, "{e}: needed {needed} < {at_least}");
            assert!(needed > budget, "{e}");
            assert!(request.contains(option), "{e} does not name {option}");
            let text = e.to_string();
            assert!(text.contains("of memory") && text.contains("iB"), "{text}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn restarts_beyond_memory_are_refused_with_the_bytes() {
    let d = data(3, 20);
    for r in [1_000_000_000_000usize, 1_000_000_000, usize::MAX] {
        let e = FitRequest::new(&d).restarts(r).backend(BackendChoice::Cpu).run().unwrap_err();
        // Each member holds at least its 20 residuals: 160 bytes.
        refused(e, (3 * r as u64).saturating_mul(160).min(u64::MAX - 1), &format!("restarts = {r}"));
    }
    // A budget makes the planning bite at small sizes; within it the fit runs.
    let e = FitRequest::new(&d).restarts(1000).max_memory(1 << 20).max_iter(3).run().unwrap_err();
    refused(e, 1 << 20, "restarts = 1000");
    let ok = FitRequest::new(&d).restarts(2).max_memory(64 << 20).max_iter(3).run().unwrap();
    assert_eq!(ok.status.len(), 3);
}

#[test]
fn prior_samples_beyond_memory_are_refused() {
    let be = batchgp::select(BackendChoice::Cpu).unwrap();
    let x = Inputs::Shared(Array2::from_shape_fn((50, 1), |(i, _)| i as f64));
    let hyp = Hyperparameters::broadcast(2, &[3.0], 1.0, 0.1, 0.0);
    for count in [10_000_000_000usize, usize::MAX] {
        let e = batchgp::sample_prior(be.as_ref(), &x, &hyp, count, 0, false, Precision::F64).unwrap_err();
        refused(e, (count as u64).saturating_mul(2 * 50 * 8).min(u64::MAX - 1), &format!("samples = {count}"));
    }
    let (s, _) = batchgp::sample_prior(be.as_ref(), &x, &hyp, 3, 0, false, Precision::F64).unwrap();
    assert_eq!(s.dim(), (3, 2, 50));
}

#[test]
fn inducing_points_beyond_memory_are_refused() {
    let d = data(2, 200);
    for m in [1_000_000usize, 100_000] {
        let e = SvgpFitRequest::new(&d).num_inducing(m).steps(2).run().unwrap_err();
        // q_sqrt alone: B M^2 doubles.
        refused(e, 2 * (m as u64) * (m as u64) * 8, &format!("M = {m}"));
    }
}

#[test]
fn loss_history_beyond_memory_is_refused() {
    // 20000 members x 10^7 steps: the history alone is 1.6 TB.
    let d = data(20_000, 4);
    let e = SvgpFitRequest::new(&d).num_inducing(2).steps(10_000_000).run().unwrap_err();
    refused(e, 20_000 * 10_000_000 * 8, "10000000 steps");
}

/// An option value drawn small (runs) or huge (refused), as a user could type either.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..3, (34u32..64).prop_map(|p| ((1u128 << p).min(usize::MAX as u128)) as usize)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// No option value panics or aborts: the fit runs within the plan, or TooLarge refuses it.
    #[test]
    fn option_values_run_or_are_refused(restarts in size(), samples in size(), inducing in size(), steps in size()) {
        let d = data(2, 12);
        let small = |v: usize| v < 3;
        let r = FitRequest::new(&d).restarts(restarts).max_iter(2).backend(BackendChoice::Cpu).run();
        match r {
            Ok(f) => prop_assert!(small(restarts) && f.status.len() == 2),
            Err(e) => prop_assert!(!small(restarts) && matches!(e, Error::TooLarge { .. }), "{e:?}"),
        }
        let be = batchgp::select(BackendChoice::Cpu).unwrap();
        let hyp = Hyperparameters::broadcast(2, &[0.3], 1.0, 0.1, 0.0);
        let x = Inputs::Shared(d.x().member(0).to_owned());
        match batchgp::sample_prior(be.as_ref(), &x, &hyp, samples, 1, true, Precision::F64) {
            Ok((s, _)) => prop_assert!(small(samples) && s.dim() == (samples, 2, 12)),
            Err(e) => prop_assert!(!small(samples) && matches!(e, Error::TooLarge { .. }), "{e:?}"),
        }
        // num_inducing 0 is an invalid option; steps 0 a fit that stops at its start.
        let s = SvgpFitRequest::new(&d).num_inducing(inducing).steps(steps).run();
        match s {
            Ok(f) => prop_assert!(small(inducing) && inducing > 0 && small(steps) && f.model.elbo.len() == 2),
            Err(Error::InvalidOption { name, .. }) => prop_assert!(inducing == 0 && name == "inducing"),
            Err(e) => prop_assert!(
                (!small(inducing) || !small(steps)) && matches!(e, Error::TooLarge { .. }),
                "{e:?}"
            ),
        }
    }
}

#[test]
fn planning_is_silent_for_ordinary_requests() {
    let d = data(4, 30);
    let f = FitRequest::new(&d).restarts(3).max_iter(20).run().unwrap();
    assert!(f.model.mll.iter().all(|v| v.is_finite()));
    let s = SvgpFitRequest::new(&d).num_inducing(8).steps(20).run().unwrap();
    assert_eq!(s.model.loss.dim().1, 4);
    let _: Array1<f64> = s.model.elbo;
}
