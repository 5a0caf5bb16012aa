//! The `batchgp` command line round-trips its files (DESIGN.md section 7), exits 2 with one
//! line on a rejected request, and reports failed members in `status` with exit 0.

mod common;
use batchgp::io::{read_params, Npz, NpzOut};
use batchgp::{BackendChoice, Dataset, MllRequest, Priors};
use common::*;
use ndarray::{Array1, Array2, ArrayD};
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("batchgp-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_batchgp")).args(args).output().expect("runs")
}

fn get(path: &Path, name: &str) -> ArrayD<f64> {
    Npz::open(path.to_str().unwrap()).unwrap().get(name).unwrap()
}

fn write_case(d: &Path, fail_member: Option<usize>) -> (Dataset, batchgp::Hyperparameters) {
    let (data, mut hyp) = random_batch(3, 12, 2, 41);
    if let Some(m) = fail_member {
        hyp.outputscale[m] = 800f64.exp();
    }
    let x = match data.x() {
        batchgp::Inputs::Batched(x) => x.clone(),
        _ => unreachable!(),
    };
    NpzOut::new().add3("x", x).add2("y", data.y().clone()).write(d.join("D.npz").to_str().unwrap()).unwrap();
    NpzOut::new().add_params(&hyp).write(d.join("P.npz").to_str().unwrap()).unwrap();
    (data, hyp)
}

#[test]
fn mll_round_trip_equals_the_library() {
    let d = dir("mll");
    let (data, _) = write_case(&d, None);
    let priors_text =
        "[lengthscale]\ngamma = { concentration = [2.0, 3.0], rate = 4.0 }\n[noise]\nhalfcauchy = { scale = 0.1 }\n";
    std::fs::write(d.join("priors.toml"), priors_text).unwrap();
    let out = d.join("O.npz");
    let o = run(&[
        "mll",
        "--data",
        d.join("D.npz").to_str().unwrap(),
        "--params",
        d.join("P.npz").to_str().unwrap(),
        "--priors",
        d.join("priors.toml").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--backend",
        "cpu",
        "--repeat",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The parameters as the CLI read them (log form, exp'd back).
    let hyp = read_params(d.join("P.npz").to_str().unwrap(), 3, 2).unwrap();
    let priors = Priors::from_toml(priors_text).unwrap();
    let r = MllRequest::new(&data, &hyp).priors(&priors).backend(BackendChoice::Cpu).run().unwrap();
    let g = r.gradient.unwrap();
    for (name, want) in [
        ("mll", r.mll.clone().into_dyn()),
        ("log_prior", r.log_prior.clone().into_dyn()),
        ("objective", r.objective.clone().into_dyn()),
        ("jitter", r.jitter.clone().into_dyn()),
        ("grad_log_lengthscale", g.log_lengthscale.into_dyn()),
        ("grad_log_outputscale", g.log_outputscale.into_dyn()),
        ("grad_log_noise", g.log_noise.into_dyn()),
        ("grad_mean", g.mean.into_dyn()),
    ] {
        assert_eq!(get(&out, name), want, "{name}");
    }
    assert_eq!(get(&out, "status"), Array1::<f64>::zeros(3).into_dyn());
    assert_eq!(get(&out, "seconds").len(), 2);
}

#[test]
fn fit_then_predict_round_trip() {
    let d = dir("fit");
    let (data, _) = write_case(&d, None);
    let (dp, fp) = (d.join("D.npz"), d.join("F.npz"));
    let o = run(&[
        "fit",
        "--data",
        dp.to_str().unwrap(),
        "--out",
        fp.to_str().unwrap(),
        "--backend",
        "cpu",
        "--fix",
        "mean",
        "--restarts",
        "1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (name, shape) in [
        ("log_lengthscale", vec![3, 2]),
        ("log_outputscale", vec![3]),
        ("log_noise", vec![3]),
        ("mean", vec![3]),
        ("mll", vec![3]),
        ("log_prior", vec![3]),
        ("objective", vec![3]),
        ("status", vec![3]),
        ("jitter", vec![3]),
        ("iterations", vec![3]),
    ] {
        assert_eq!(get(&fp, name).shape(), shape.as_slice(), "{name}");
    }
    // The fitted file is a valid params file: its objective there equals the reported one.
    let hyp = read_params(fp.to_str().unwrap(), 3, 2).unwrap();
    let r = MllRequest::new(&data, &hyp).backend(BackendChoice::Cpu).run().unwrap();
    let obj = get(&fp, "objective");
    for b in 0..3 {
        assert_close(r.objective[b], obj[b], 1e-10, "fitted objective");
        // --fix mean keeps the data-driven start, mean(y).
        assert_close(hyp.mean[b], data.y_moments(b).0, 1e-12, "fixed mean");
    }
    // Predict at shared test points, with samples, from f32-stored test inputs.
    let t = d.join("T.npz");
    let z32 = Array2::<f32>::from_shape_fn((4, 2), |(i, k)| (i + k) as f32 / 4.0);
    let mut w = ndarray_npy::NpzWriter::new(std::fs::File::create(&t).unwrap());
    w.add_array("x", &z32).unwrap();
    w.finish().unwrap();
    let po = d.join("O.npz");
    let o = run(&[
        "predict",
        "--data",
        dp.to_str().unwrap(),
        "--params",
        fp.to_str().unwrap(),
        "--test",
        t.to_str().unwrap(),
        "--samples",
        "3",
        "--seed",
        "5",
        "--out",
        po.to_str().unwrap(),
        "--backend",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let z = z32.mapv(|v| v as f64);
    let be = batchgp::select(BackendChoice::Cpu).unwrap();
    let opts = batchgp::PredictOptions { samples: Some((3, 5)), ..Default::default() };
    let p = batchgp::predict(be.as_ref(), &data, &hyp, &batchgp::Inputs::Shared(z), &opts).unwrap();
    assert_eq!(get(&po, "mean"), p.mean.into_dyn());
    assert_eq!(get(&po, "var_y"), p.var_y.into_dyn());
    assert_eq!(get(&po, "lower"), p.lower.into_dyn());
    assert_eq!(get(&po, "samples"), p.samples.unwrap().into_dyn());
}

#[test]
fn a_failed_member_is_in_status_and_the_run_succeeds() {
    let d = dir("fail");
    write_case(&d, Some(1));
    let out = d.join("O.npz");
    let o = run(&[
        "mll",
        "--data",
        d.join("D.npz").to_str().unwrap(),
        "--params",
        d.join("P.npz").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--backend",
        "cpu",
    ]);
    assert!(o.status.success());
    let st = get(&out, "status");
    assert_eq!(st.as_slice().unwrap(), &[0.0, 3.0, 0.0]);
    assert!(get(&out, "mll")[1].is_nan());
}

#[test]
fn rejected_requests_exit_2_with_one_line() {
    let d = dir("reject");
    write_case(&d, None);
    // y of the wrong shape.
    let bad = d.join("bad.npz");
    NpzOut::new()
        .add2("x", Array2::zeros((5, 2)))
        .add2("y", Array2::zeros((3, 4)))
        .write(bad.to_str().unwrap())
        .unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "mll".into(),
                "--data".into(),
                bad.to_str().unwrap().into(),
                "--params".into(),
                d.join("P.npz").to_str().unwrap().into(),
                "--out".into(),
                "/tmp/x.npz".into(),
            ],
            "`x`",
        ),
        (
            vec![
                "fit".into(),
                "--data".into(),
                d.join("missing.npz").to_str().unwrap().into(),
                "--out".into(),
                "/tmp/x.npz".into(),
            ],
            "missing.npz",
        ),
        (
            vec![
                "fit".into(),
                "--data".into(),
                d.join("D.npz").to_str().unwrap().into(),
                "--fix".into(),
                "lenghtscale".into(),
                "--out".into(),
                "/tmp/x.npz".into(),
            ],
            "lenghtscale",
        ),
        (
            vec![
                "mll".into(),
                "--data".into(),
                d.join("D.npz").to_str().unwrap().into(),
                "--params".into(),
                d.join("D.npz").to_str().unwrap().into(),
                "--out".into(),
                "/tmp/x.npz".into(),
            ],
            "log_lengthscale",
        ),
        (vec!["info".into(), "--precision".into(), "f16".into()], "precision"),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line, got {err}");
        assert!(err.contains(needle), "{args:?}: {err} should name {needle}");
    }
    let o = run(&["mll", "--data", "x.npz", "--params", "p.npz", "--out", "o.npz", "--backend", "tpu"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn info_reports_backends() {
    let o = run(&["info"]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("cpu") && s.contains("cuda"), "{s}");
}

#[test]
fn demo_runs_on_its_embedded_default_and_writes_its_plot() {
    let d = dir("demo");
    let o = run(&["demo", "--backend", "cpu", "--out-dir", d.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("GP 3") && s.contains("Uniform(10, 150)"), "{s}");
    let png = std::fs::read(d.join("batch_priors.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}
