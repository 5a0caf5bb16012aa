//! Per-hyperparameter bounds (`FitRequest::hyperparameter_bounds`, `--bounds NAME=LOW,HIGH`):
//! a bound that binds holds the fit on it, and the rest of the fit is then the fit with that
//! hyperparameter fixed there; bounds per member and per dimension bind only where given; loose
//! bounds change nothing; a bound and a uniform prior compose as their intersection; the CLI
//! equals the library.

mod common;
use batchgp::fit::Bounds;
use batchgp::io::{Npz, NpzOut};
use batchgp::prior::{Prior, Priors, Target};
use batchgp::{BackendChoice, Dataset, FitRequest, Hyperparameters};
use common::*;
use std::process::Command;

fn fit(data: &Dataset) -> FitRequest<'_> {
    FitRequest::new(data).backend(BackendChoice::Cpu)
}

#[test]
fn loose_bounds_change_nothing() {
    let (data, _) = random_batch(3, 30, 2, 21);
    let free = fit(&data).run().unwrap();
    let loose = Bounds::none().with(Target::Lengthscale, 1e-6, 1e6).with(Target::Noise, 0.0, f64::INFINITY).with(
        Target::Mean,
        f64::NEG_INFINITY,
        f64::INFINITY,
    );
    let r = fit(&data).hyperparameter_bounds(loose).run().unwrap();
    for b in 0..3 {
        assert_close(r.objective[b], free.objective[b], 1e-8, &format!("member {b}"));
    }
}

#[test]
fn a_binding_bound_per_member_and_dimension_holds_there_only() {
    let (data, _) = random_batch(3, 30, 2, 21);
    let free = fit(&data).run().unwrap();
    // Member 1's first lengthscale floored at twice its free optimum; every other entry free.
    let floor = 2.0 * free.model.hyperparameters.lengthscale[[1, 0]];
    let low = vec![vec![0.0, 0.0], vec![floor, 0.0], vec![0.0, 0.0]];
    let high = vec![vec![f64::INFINITY; 2]; 3];
    let bounds = Bounds::none().with(Target::Lengthscale, low, high);
    let r = fit(&data).hyperparameter_bounds(bounds).run().unwrap();
    assert_close(r.model.hyperparameters.lengthscale[[1, 0]], floor, 1e-9, "member 1 on its bound");
    assert!(r.objective[1] < free.objective[1] - 1e-6, "the bound binds");
    for b in [0, 2] {
        assert_close(r.objective[b], free.objective[b], 1e-9, &format!("member {b} unbounded"));
    }
    // The bound member equals a fit with that lengthscale fixed on the bound, every other
    // hyperparameter free (the constrained optimum).
    let one = data.select(&[1]);
    let mut init = FitRequest::default_init(&one);
    init.lengthscale[[0, 0]] = floor;
    let rest = Bounds::none().with(Target::Lengthscale, vec![floor, 0.0], vec![floor * (1.0 + 1e-12), f64::INFINITY]);
    let pinned = fit(&one).init(&init).hyperparameter_bounds(rest).run().unwrap();
    assert_close(r.objective[1], pinned.objective[0], 1e-7, "member 1 against the pinned fit");
}

#[test]
fn a_bound_and_a_uniform_prior_compose_as_their_intersection() {
    let (data, _) = random_batch(2, 30, 2, 22);
    let free = fit(&data).run().unwrap();
    let top = free.model.hyperparameters.noise.iter().cloned().fold(0.0, f64::max);
    // The prior allows (1e-8, 10 top); the bound asks for >= 3 top: the fit lies in [3 top, 10 top]
    // and sits at its floor (the likelihood wants less noise), with the prior's density.
    let priors = Priors::none().with(Target::Noise, Prior::uniform(1e-8, 10.0 * top));
    let bounds = Bounds::none().with(Target::Noise, 3.0 * top, f64::INFINITY);
    let r = fit(&data).priors(&priors).hyperparameter_bounds(bounds).run().unwrap();
    for b in 0..2 {
        let noise = r.model.hyperparameters.noise[b];
        assert!(noise >= 3.0 * top && noise < 3.0 * top * 1.01, "member {b}: noise {noise}");
        assert_close(r.log_prior[b], -(10.0 * top - 1e-8).ln(), 1e-12, "the prior's density is unchanged");
    }
    // Disjoint: rejected, naming the hyperparameter and member.
    let disjoint = Bounds::none().with(Target::Noise, 20.0 * top, f64::INFINITY);
    let err = fit(&data).priors(&priors).hyperparameter_bounds(disjoint).run().unwrap_err().to_string();
    assert!(err.contains("bounds") && err.contains("noise (member 0, index 0)"), "{err}");
}

#[test]
fn composes_with_the_single_box_and_rejects_bad_bounds() {
    let (data, _) = random_batch(2, 25, 1, 23);
    let free = fit(&data).run().unwrap();
    let floor = 2.0 * free.model.hyperparameters.noise.iter().cloned().fold(0.0, f64::max);
    // The single box is loose; the noise bound binds.
    let bounds = Bounds::none().with(Target::Noise, floor, 1e3);
    let r = fit(&data).bounds(1e-9, 1e9).hyperparameter_bounds(bounds).run().unwrap();
    for b in 0..2 {
        assert_close(r.model.hyperparameters.noise[b], floor, 1e-9, "noise on the bound");
    }
    for (bad, what) in [
        (Bounds::none().with(Target::Noise, 1.0, 1.0), "noise (member 0, index 0)"),
        (Bounds::none().with(Target::Outputscale, vec![0.1, -1.0], 2.0), "outputscale (member 1, index 0)"),
        (Bounds::none().with(Target::Alpha, 0.1, 2.0), "no alpha"),
    ] {
        let err = fit(&data).hyperparameter_bounds(bad).run().unwrap_err();
        assert!(matches!(err, batchgp::Error::InvalidOption { .. }) && err.to_string().contains(what), "{err}");
    }
}

#[test]
fn the_cli_bounds_equal_the_library() {
    let d = std::env::temp_dir().join(format!("batchgp-bounds-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let (data, _) = random_batch(3, 20, 2, 24);
    let x = match data.x() {
        batchgp::Inputs::Batched(x) => x.clone(),
        _ => unreachable!(),
    };
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (dp, out) = (d.join("D.npz"), d.join("F.npz"));
    NpzOut::new().add3("x", x).add2("y", data.y().clone()).write(&s(&dp)).unwrap();
    let cmd =
        ["fit", "--data", &s(&dp), "--bounds", "lengthscale=0.8,inf", "--bounds", "noise=0.05,2", "--out", &s(&out)];
    let cmd = [&cmd[..], &["--backend", "cpu"]].concat();
    let o = Command::new(env!("CARGO_BIN_EXE_batchgp")).args(&cmd).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lib = fit(&data)
        .hyperparameter_bounds(Bounds::none().with(Target::Lengthscale, 0.8, f64::INFINITY).with(
            Target::Noise,
            0.05,
            2.0,
        ))
        .run()
        .unwrap();
    let mut npz = Npz::open(&s(&out)).unwrap();
    let noise = npz.get("log_noise").unwrap();
    let ls = npz.get("log_lengthscale").unwrap();
    let want: &Hyperparameters = &lib.model.hyperparameters;
    for b in 0..3 {
        assert_close(noise[[b]].exp(), want.noise[b], 1e-12, &format!("member {b} noise"));
        assert!(ls.iter().all(|v| v.exp() >= 0.8 * (1.0 - 1e-12)));
        assert!(
            want.noise[b] >= 0.05 * (1.0 - 1e-12) && want.noise[b] <= 2.0,
            "member {b}: noise {} status {:?}",
            want.noise[b],
            lib.status[b]
        );
    }
    // The old single box still parses; a malformed entry is rejected with its text.
    let o = Command::new(env!("CARGO_BIN_EXE_batchgp"))
        .args(["fit", "--data", &s(&dp), "--out", &s(&out), "--backend", "cpu", "--bounds", "width=1,2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("width=1,2"));
}
