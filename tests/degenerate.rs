//! Degenerate members and memory planning (docs/design.md section 14): an empty member, one or
//! two points, constant y and a fixed hyperparameter under a uniform prior each get their own
//! status and defined numbers while the other members are unaffected; a request whose single
//! member cannot fit in memory is refused before any work, and a tight budget changes no number.

mod common;
use batchgp::prior::{Prior, Priors, Target};
use batchgp::{BackendChoice, Dataset, Error, FitRequest, Hyperparameters, MllRequest, Status, Termination};
use common::*;
use ndarray::{Array1, Array2};

fn fit(data: &Dataset) -> batchgp::FitResult {
    FitRequest::new(data).backend(BackendChoice::Cpu).run().unwrap()
}

/// A batch of 5 healthy members, then member `bad` replaced by what `spoil` makes of it.
fn with_spoiled(bad: usize, spoil: impl Fn(&mut Array2<f64>, &mut Array2<bool>)) -> (Dataset, Dataset) {
    let (data, _) = random_batch(5, 25, 2, 4);
    let x = data.x().clone();
    let mut y = data.y().clone();
    let mut mask = Array2::from_elem((5, 25), true);
    let clean = Dataset::with_mask(x.clone(), y.clone(), Some(mask.clone())).unwrap();
    let mut row_y = y.row(bad).to_owned().insert_axis(ndarray::Axis(0));
    let mut row_m = mask.row(bad).to_owned().insert_axis(ndarray::Axis(0));
    spoil(&mut row_y, &mut row_m);
    y.row_mut(bad).assign(&row_y.row(0));
    mask.row_mut(bad).assign(&row_m.row(0));
    (clean, Dataset::with_mask(x, y, Some(mask)).unwrap())
}

fn others_unchanged(clean: &batchgp::FitResult, spoiled: &batchgp::FitResult, bad: usize) {
    for m in (0..5).filter(|&m| m != bad) {
        assert_eq!(spoiled.status[m], clean.status[m], "member {m}");
        assert_eq!(spoiled.model.mll[m], clean.model.mll[m], "member {m}: mll");
        assert_eq!(spoiled.model.hyperparameters.lengthscale.row(m), clean.model.hyperparameters.lengthscale.row(m));
    }
}

#[test]
fn empty_member_is_flagged_and_not_fitted() {
    let (clean, spoiled) = with_spoiled(2, |_, m| m.fill(false));
    let (a, b) = (fit(&clean), fit(&spoiled));
    assert_eq!(b.status[2], Status::Empty);
    assert_eq!(b.reason[2], Termination::NoData);
    assert!(b.model.mll[2].is_nan() && b.model.hyperparameters.outputscale[2].is_nan(), "no made-up numbers");
    assert_eq!(b.iterations[2], 0);
    others_unchanged(&a, &b, 2);
    // The fit's result feeds predict and mll: the member it could not fit (all NaN) is
    // reported, not rejected, and the others are predicted as usual.
    let test = batchgp::Inputs::Shared(Array2::from_shape_fn((4, 2), |(i, k)| 0.2 * (i + k) as f64));
    let be = batchgp::select(BackendChoice::Cpu).unwrap();
    let p = batchgp::predict(be.as_ref(), &spoiled, &b.model.hyperparameters, &test, &Default::default()).unwrap();
    assert!(!p.status[2].is_ok() && p.mean.row(2).iter().all(|v| v.is_nan()));
    assert!(p.status.iter().enumerate().all(|(m, s)| m == 2 || s.is_ok()));
    assert!(p.mean.row(0).iter().all(|v| v.is_finite()));
    let r = MllRequest::new(&spoiled, &b.model.hyperparameters).run().unwrap();
    assert!(r.mll[2].is_nan() && r.mll[0].is_finite());
    // The MLL of an empty member is flagged too.
    let hyp = Hyperparameters::broadcast(5, &[0.3, 0.3], 1.0, 0.1, 0.0);
    let r = MllRequest::new(&spoiled, &hyp).run().unwrap();
    assert_eq!(r.status[2], Status::Empty);
    assert!(r.mll[2].is_nan());
}

#[test]
fn one_or_two_points_are_degenerate_with_defined_limits() {
    for keep in [1usize, 2] {
        let (clean, spoiled) = with_spoiled(1, |_, m| m.iter_mut().skip(keep).for_each(|v| *v = false));
        let (a, b) = (fit(&clean), fit(&spoiled));
        assert_eq!(b.status[1], Status::Degenerate, "{keep} point(s)");
        assert_eq!(b.degeneracy[1], Some(batchgp::Degeneracy::TooFewPoints));
        let h = &b.model.hyperparameters;
        assert!(h.noise[1].is_finite() && h.noise[1] > 0.0 && h.outputscale[1] > 0.0, "{keep}: {h:?}");
        assert!(b.model.mll[1].is_finite());
        assert!(b.describe(1).contains("too few points"), "{}", b.describe(1));
        others_unchanged(&a, &b, 1);
    }
}

#[test]
fn constant_y_is_degenerate_and_held_at_its_floor() {
    let (clean, spoiled) = with_spoiled(3, |y, _| y.fill(4.25));
    let (a, b) = (fit(&clean), fit(&spoiled));
    assert_eq!(b.status[3], Status::Degenerate);
    assert_eq!(b.degeneracy[3], Some(batchgp::Degeneracy::ConstantY));
    let h = &b.model.hyperparameters;
    // var(y) is taken as mean(y)^2 for constant y; the noise stops at 1e-6 of it, not at 1e-33.
    let floor = 1e-6 * 4.25f64 * 4.25;
    assert_close(h.noise[3], floor, 1e-6, "noise at its floor");
    assert_close(h.mean[3], 4.25, 1e-9, "mean");
    others_unchanged(&a, &b, 3);
}

#[test]
fn fixed_hyperparameter_keeps_its_value_under_a_uniform_prior() {
    let (data, _) = random_batch(3, 30, 1, 8);
    let mut init = FitRequest::default_init(&data);
    init.outputscale.fill(0.27);
    let priors = Priors::none().with(Target::Outputscale, Prior::uniform(10.0, 150.0));
    let r = FitRequest::new(&data).init(&init).priors(&priors).fix(Target::Outputscale).run().unwrap();
    for m in 0..3 {
        assert_eq!(r.model.hyperparameters.outputscale[m], 0.27, "member {m}");
    }
}

#[test]
fn a_member_that_cannot_fit_in_memory_is_refused_before_work() {
    // N = 200000 shared points: the Gram alone would be 320 GB. The refusal names N and the
    // bytes needed, and comes before any workspace is allocated (this test would abort if it
    // tried).
    let n = 200_000;
    let x = Array2::from_shape_fn((n, 1), |(i, _)| i as f64);
    let y = Array2::from_shape_fn((2, n), |(b, i)| ((i + b) as f64).sin());
    let data = Dataset::new(x, y).unwrap();
    let hyp = Hyperparameters::broadcast(2, &[3.0], 1.0, 0.1, 0.0);
    match MllRequest::new(&data, &hyp).run() {
        Err(e @ Error::OutOfMemory { n: 200_000, .. }) => {
            let text = e.to_string();
            assert!(text.contains("N = 200000") && text.contains("GiB"), "{text}");
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    let e = FitRequest::new(&data).max_memory(1 << 30).run().unwrap_err();
    assert!(matches!(e, Error::OutOfMemory { .. }), "{e}");
}

#[test]
fn a_tight_budget_changes_no_number() {
    let (data, hyp) = random_batch(6, 150, 2, 2);
    let free = MllRequest::new(&data, &hyp).run().unwrap();
    // Enough for one member's workspace at a time, not for six.
    let per = 8 * (150 * 2 + 4 * 150 + 4 * 150 * 150) as u64;
    let tight = MllRequest::new(&data, &hyp).max_memory(per + 4096).run().unwrap();
    assert_eq!(free.mll, tight.mll);
    assert_eq!(free.gradient, tight.gradient);
    let e = MllRequest::new(&data, &hyp).max_memory(per / 2).run().unwrap_err();
    assert!(matches!(e, Error::OutOfMemory { n: 150, .. }), "{e}");
    let _ = Array1::<f64>::zeros(1);
}
