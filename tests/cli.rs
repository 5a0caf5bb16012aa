//! The `batchgp` command line round-trips its files (docs/design.md section 7), exits 2 with one
//! line on a rejected request, and reports failed members in `status` with exit 0.

mod common;
use batchgp::io::{read_params, Npz, NpzOut};
use batchgp::{BackendChoice, Dataset, Kernel, MllRequest, Priors};
use common::*;
use ndarray::{Array1, Array2, Array3, ArrayD};
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
        ("restart", vec![3]),
        ("reached_best", vec![3]),
    ] {
        assert_eq!(get(&fp, name).shape(), shape.as_slice(), "{name}");
    }
    // The starts' bookkeeping equals the library's fit with the same options.
    let cpu = batchgp::backend::cpu::CpuBackend::new();
    let lib = batchgp::FitRequest::new(&data).fix(batchgp::Target::Mean).restarts(1).on(&cpu).run().unwrap();
    assert_eq!(get(&fp, "starts").iter().copied().collect::<Vec<f64>>(), vec![2.0]);
    assert_eq!(get(&fp, "restart").iter().copied().collect::<Vec<f64>>(), lib.restart.mapv(|v| v as f64).to_vec());
    assert_eq!(
        get(&fp, "reached_best").iter().copied().collect::<Vec<f64>>(),
        lib.reached_best.mapv(|v| v as f64).to_vec()
    );
    assert!(lib.reached_best.iter().all(|&k| (1..=2).contains(&k)));
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
fn info_fails_without_a_usable_gpu_when_one_is_required() {
    let usable = batchgp::backend::cuda::CudaBackend::new().is_ok();
    let o = Command::new(env!("CARGO_BIN_EXE_batchgp"))
        .arg("info")
        .env("BATCHGP_REQUIRE_CUDA", "1")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.success(), usable, "usable GPU: {usable}; stderr: {err}");
    if !usable {
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("cuda"), "{err}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_batchgp"))
        .arg("info")
        .env("BATCHGP_REQUIRE_CUDA", "0")
        .output()
        .expect("runs");
    assert!(o.status.success(), "BATCHGP_REQUIRE_CUDA=0 requires nothing");
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

// ---------------------------------------------------------------------------------------------
// Kernels, yvar, show, output checks and value messages (docs/design.md sections 7, 10, 14).

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 2 with one line on stderr that contains every needle.
fn assert_rejected(o: &std::process::Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line, got {err}");
    for n in needles {
        assert!(err.contains(n), "`{err}` should contain `{n}`");
    }
}

#[test]
fn kernel_round_trip_fit_mll_predict() {
    let d = dir("kernel");
    let (data, _) = write_case(&d, None);
    let (dp, t) = (d.join("D.npz"), d.join("T.npz"));
    NpzOut::new().add2("x", Array2::from_shape_fn((5, 2), |(i, k)| (i + 2 * k) as f64 / 7.0)).write(s(&t)).unwrap();
    for kernel in [Kernel::Matern52, Kernel::Rq] {
        let (fp, op, pp) = (d.join("F.npz"), d.join("O.npz"), d.join("P.npz"));
        let o = run(&["fit", "--data", s(&dp), "--kernel", kernel.name(), "--out", s(&fp), "--backend", "cpu"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(&format!("kernel {kernel}")) && err.contains("converged"), "{err}");
        // The kernel is a 0-d string in the file; log_alpha is there for rq only.
        assert_eq!(Npz::open(s(&fp)).unwrap().get_string("kernel").unwrap().as_deref(), Some(kernel.name()));
        assert_eq!(Npz::open(s(&fp)).unwrap().has("log_alpha"), kernel == Kernel::Rq);
        let hyp = read_params(s(&fp), 3, 2).unwrap();
        assert_eq!(hyp.kernel, kernel);
        // mll takes the file's kernel without --kernel, and agrees with the file's objective.
        let o = run(&["mll", "--data", s(&dp), "--params", s(&fp), "--out", s(&op), "--backend", "cpu"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("3 members, 3 ok, 0 failed") && err.contains(&format!("kernel {kernel}")), "{err}");
        let r = MllRequest::new(&data, &hyp).backend(BackendChoice::Cpu).run().unwrap();
        let (obj, fobj) = (get(&op, "objective"), get(&fp, "objective"));
        for b in 0..3 {
            assert_close(obj[b], r.objective[b], 1e-12, "mll objective");
            assert_close(obj[b], fobj[b], 1e-9, "objective at the fitted point");
        }
        let g = r.gradient.unwrap();
        match g.log_alpha {
            Some(a) => assert_eq!(get(&op, "grad_log_alpha"), a.into_dyn()),
            None => assert!(!Npz::open(s(&op)).unwrap().has("grad_log_alpha")),
        }
        // The same --kernel is fine; predict uses the file's kernel.
        let o = run(&[
            "predict",
            "--data",
            s(&dp),
            "--params",
            s(&fp),
            "--test",
            s(&t),
            "--kernel",
            kernel.name(),
            "--out",
            s(&pp),
            "--backend",
            "cpu",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("batchgp predict: 3 members, 3 ok"), "{}", stderr(&o));
        let be = batchgp::select(BackendChoice::Cpu).unwrap();
        let test = batchgp::io::read_test(s(&t)).unwrap();
        let p = batchgp::predict(be.as_ref(), &data, &hyp, &test, &Default::default()).unwrap();
        assert_eq!(get(&pp, "mean"), p.mean.into_dyn());
        // The rbf prediction differs: the kernel really was used.
        let rbf =
            batchgp::predict(be.as_ref(), &data, &hyp.clone().with_kernel(Kernel::Rbf), &test, &Default::default())
                .unwrap();
        assert_ne!(get(&pp, "mean"), rbf.mean.into_dyn());
    }
}

#[test]
fn a_kernel_that_contradicts_the_file_exits_2() {
    let d = dir("contradict");
    write_case(&d, None);
    let (dp, fp) = (d.join("D.npz"), d.join("F.npz"));
    let o =
        run(&["fit", "--data", s(&dp), "--kernel", "matern32", "--max-iter", "3", "--out", s(&fp), "--backend", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for cmd in ["mll", "predict"] {
        let mut args = vec![cmd, "--data", s(&dp), "--params", s(&fp), "--kernel", "rbf", "--backend", "cpu"];
        let out = d.join("O.npz");
        args.extend(["--out", s(&out)]);
        if cmd == "predict" {
            args.extend(["--test", s(&dp)]);
        }
        assert_rejected(&run(&args), &["--kernel rbf contradicts", "matern32"]);
    }
    let o = run(&["fit", "--data", s(&dp), "--init", s(&fp), "--kernel", "rq", "--out", s(&d.join("G.npz"))]);
    assert_rejected(&o, &["--kernel rq contradicts"]);
    // A parameters file without a kernel takes --kernel; rq without log_alpha is a missing array.
    let h = read_params(s(&d.join("P.npz")), 3, 2).unwrap();
    let bare = d.join("bare.npz");
    NpzOut::new()
        .add2("log_lengthscale", h.lengthscale.mapv(f64::ln))
        .add1("log_outputscale", h.outputscale.mapv(f64::ln))
        .add1("log_noise", h.noise.mapv(f64::ln))
        .add1("mean", h.mean.clone())
        .write(s(&bare))
        .unwrap();
    let out = d.join("O.npz");
    let o = run(&[
        "mll",
        "--data",
        s(&dp),
        "--params",
        s(&bare),
        "--kernel",
        "matern12",
        "--out",
        s(&out),
        "--backend",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("kernel matern12"), "{}", stderr(&o));
    let o = run(&["mll", "--data", s(&dp), "--params", s(&bare), "--kernel", "rq", "--out", s(&out)]);
    assert_rejected(&o, &["log_alpha", "rq kernel needs it"]);
    let o = run(&["mll", "--data", s(&dp), "--params", s(&d.join("P.npz")), "--kernel", "bessel", "--out", "o.npz"]);
    assert_rejected(&o, &["bessel", "rbf, matern12, matern32, matern52, rq"]);
}

#[test]
fn yvar_in_the_data_file_is_read() {
    let d = dir("yvar");
    let (data, _) = write_case(&d, None);
    let yvar = Array2::from_shape_fn((3, 12), |(b, i)| 0.01 * (1 + (b + i) % 4) as f64);
    let x = match data.x() {
        batchgp::Inputs::Batched(x) => x.clone(),
        _ => unreachable!(),
    };
    let dv = d.join("Dv.npz");
    NpzOut::new().add3("x", x).add2("y", data.y().clone()).add2("yvar", yvar.clone()).write(s(&dv)).unwrap();
    let data = batchgp::io::read_data(s(&dv)).unwrap();
    assert_eq!(data.yvar(), Some(&yvar));
    let out = d.join("O.npz");
    let o = run(&["mll", "--data", s(&dv), "--params", s(&d.join("P.npz")), "--out", s(&out), "--backend", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let hyp = read_params(s(&d.join("P.npz")), 3, 2).unwrap();
    let mll = get(&out, "mll");
    for b in 0..3 {
        assert_close(mll[b], dense_mll(&data, &hyp, b), 1e-9, "mll with yvar");
    }
    // A negative yvar is rejected naming it.
    let bad = d.join("bad.npz");
    let mut neg = yvar.clone();
    neg[[1, 2]] = -1.0;
    NpzOut::new()
        .add3("x", Array3::zeros((3, 12, 2)))
        .add2("y", Array2::zeros((3, 12)))
        .add2("yvar", neg)
        .write(s(&bad))
        .unwrap();
    let o = run(&["mll", "--data", s(&bad), "--params", s(&d.join("P.npz")), "--out", s(&out)]);
    assert_rejected(&o, &["yvar", "member 1, index 2"]);
}

#[test]
fn show_prints_natural_units_csv_and_one_member() {
    let d = dir("show");
    write_case(&d, None);
    let (dp, fp) = (d.join("D.npz"), d.join("F.npz"));
    let o = run(&["fit", "--data", s(&dp), "--kernel", "rq", "--out", s(&fp), "--backend", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // CSV: full precision, natural units, status in words.
    let o = run(&["show", s(&fp), "--csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "{text}");
    let col = |name: &str| rows[0].iter().position(|c| *c == name).unwrap_or_else(|| panic!("{name} in {text}"));
    for name in
        ["member", "kernel", "lengthscale_1", "lengthscale_2", "outputscale", "noise", "mean", "alpha", "status"]
    {
        col(name);
    }
    assert!(!rows[0].iter().any(|c| c.starts_with("log_") && *c != "log_prior"), "{text}");
    let (ll, la, st) = (get(&fp, "log_lengthscale"), get(&fp, "log_alpha"), get(&fp, "status"));
    for b in 0..3 {
        let row = &rows[b + 1];
        assert_eq!(row[col("member")], b.to_string());
        assert_eq!(row[col("kernel")], "rq");
        assert_eq!(row[col("lengthscale_2")].parse::<f64>().unwrap(), ll[[b, 1]].exp());
        assert_eq!(row[col("alpha")].parse::<f64>().unwrap(), la[b].exp());
        let want = batchgp::Status::from_code(st[b] as u8).unwrap().text();
        assert_eq!(row[col("status")], want);
    }
    // --member: that member's row only; the table names the columns and aligns them.
    let o = run(&["show", s(&fp), "--member", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("3 members"), "{table}");
    assert!(lines[1].split_whitespace().take(3).eq(["member", "kernel", "lengthscale_1"]), "{table}");
    assert!(lines[2].trim_start().starts_with("1  rq"), "{table}");
    assert_eq!(lines.iter().filter(|l| l.trim_start().starts_with(char::is_numeric)).count(), 1, "{table}");
    assert_rejected(&run(&["show", s(&fp), "--member", "3"]), &["3 members", "no member 3"]);
    // A data file: one row per member and point.
    let o = run(&["show", s(&dp), "--csv", "--member", "2"]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text.lines().next(), Some("member,point,x_1,x_2,y"), "{text}");
    assert_eq!(text.lines().count(), 13, "{text}");
}

#[test]
fn output_paths_are_checked_before_work_and_inputs_never_overwritten() {
    let d = dir("outcheck");
    write_case(&d, None);
    let dp = d.join("D.npz");
    let before = std::fs::read(&dp).unwrap();
    // The same file under another spelling.
    let again = d.join(".").join("D.npz");
    let o = run(&["fit", "--data", s(&dp), "--out", s(&again), "--backend", "cpu"]);
    assert_rejected(&o, &["--data file", "never writes over an input"]);
    let o = run(&["mll", "--data", s(&dp), "--params", s(&d.join("P.npz")), "--out", s(&d.join("P.npz"))]);
    assert_rejected(&o, &["--params file"]);
    assert_eq!(std::fs::read(&dp).unwrap(), before);
    // A missing folder is reported before the (missing) inputs are even read.
    let o = run(&["fit", "--data", s(&d.join("absent.npz")), "--out", s(&d.join("no/such/F.npz"))]);
    assert_rejected(&o, &["folder", "does not exist"]);
    assert!(!d.join("no").exists());
    let o = run(&["mll", "--data", s(&dp), "--params", s(&d.join("P.npz")), "--out", s(&d)]);
    assert_rejected(&o, &["is a folder"]);
}

#[test]
fn values_are_checked_with_messages_that_name_them() {
    let d = dir("values");
    let (data, _) = write_case(&d, None);
    let dp = d.join("D.npz");
    let out = d.join("F.npz");
    // A negative number is read as a value, and the message is about the value.
    let o = run(&["fit", "--data", s(&dp), "--seed", "-1", "--out", s(&out)]);
    assert_rejected(&o, &["'-1'", "--seed", "whole number"]);
    assert!(!stderr(&o).contains("unexpected argument"), "{}", stderr(&o));
    let o = run(&[
        "predict",
        "--data",
        s(&dp),
        "--params",
        "P.npz",
        "--test",
        "T.npz",
        "--samples",
        "-2",
        "--out",
        "o.npz",
    ]);
    assert_rejected(&o, &["'-2'", "--samples"]);
    // Negative bounds reach the library's check.
    let o = run(&["fit", "--data", s(&dp), "--bounds", "-1,2", "--out", s(&out), "--backend", "cpu"]);
    assert_rejected(&o, &["bounds", "0 < low < high"]);
    // --max-memory: BYTES with a suffix; anything else is refused naming the flag.
    let o = run(&["fit", "--data", s(&dp), "--max-memory", "12Q", "--out", s(&out)]);
    assert_rejected(&o, &["--max-memory", "12Q", "K, M, G"]);
    let o = run(&[
        "fit",
        "--data",
        s(&dp),
        "--max-memory",
        "512M",
        "--max-iter",
        "2",
        "--out",
        s(&out),
        "--backend",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The budget reaches the library on every computing command: 1K is too small for a member.
    let (pp, t) = (d.join("P.npz"), d.join("T.npz"));
    NpzOut::new().add2("x", Array2::zeros((4, 2))).write(s(&t)).unwrap();
    let o2 = d.join("O.npz");
    for args in [
        vec!["fit", "--data", s(&dp), "--out", s(&o2)],
        vec!["mll", "--data", s(&dp), "--params", s(&pp), "--out", s(&o2)],
        vec!["predict", "--data", s(&dp), "--params", s(&pp), "--test", s(&t), "--out", s(&o2)],
    ] {
        let mut args = args.clone();
        args.extend(["--max-memory", "1K", "--backend", "cpu"]);
        assert_rejected(&run(&args), &["N = 12", "--max-memory"]);
    }
    // A mask value other than 0/1 says so.
    let x = match data.x() {
        batchgp::Inputs::Batched(x) => x.clone(),
        _ => unreachable!(),
    };
    let mut mask = Array2::<f64>::ones((3, 12));
    mask[[2, 5]] = 2.0;
    let dm = d.join("Dm.npz");
    NpzOut::new().add3("x", x).add2("y", data.y().clone()).add2("mask", mask).write(s(&dm)).unwrap();
    let o = run(&["fit", "--data", s(&dm), "--out", s(&out)]);
    assert_rejected(&o, &["mask must be 0 (padding) or 1 (observed), got 2", "member 2, index 5"]);
    assert!(!stderr(&o).contains("non-finite"), "{}", stderr(&o));
    // x and y of different N: the message names y's shape too.
    let bad = d.join("bad.npz");
    NpzOut::new().add3("x", Array3::zeros((3, 10, 2))).add2("y", Array2::zeros((3, 12))).write(s(&bad)).unwrap();
    let o = run(&["fit", "--data", s(&bad), "--out", s(&out)]);
    assert_rejected(&o, &["`x`", "y of shape (3, 12)"]);
}

#[test]
fn string_entries_match_numpy() {
    use batchgp::io::{npy_string, parse_npy_string};
    // np.save(f, np.array('matern52')), byte for byte.
    let header = "{'descr': '<U8', 'fortran_order': False, 'shape': (), }";
    let mut want = b"\x93NUMPY\x01\x00v\x00".to_vec();
    want.extend_from_slice(header.as_bytes());
    want.resize(127, b' ');
    want.push(b'\n');
    for c in "matern52".chars() {
        want.extend_from_slice(&(c as u32).to_le_bytes());
    }
    assert_eq!(npy_string("matern52"), want);
    assert_eq!(parse_npy_string(&want).unwrap().as_deref(), Some("matern52"));
    // np.array(b'rbf') and np.array(['rbf']) read too; numbers are not strings.
    let mut bytes_s = b"\x93NUMPY\x01\x00v\x00{'descr': '|S3', 'fortran_order': False, 'shape': (), }".to_vec();
    bytes_s.resize(127, b' ');
    bytes_s.push(b'\n');
    bytes_s.extend_from_slice(b"rbf");
    assert_eq!(parse_npy_string(&bytes_s).unwrap().as_deref(), Some("rbf"));
    let mut one = b"\x93NUMPY\x01\x00v\x00{'descr': '<U2', 'fortran_order': False, 'shape': (1,), }".to_vec();
    one.resize(127, b' ');
    one.push(b'\n');
    one.extend_from_slice(b"r\0\0\0q\0\0\0");
    assert_eq!(parse_npy_string(&one).unwrap().as_deref(), Some("rq"));
    let mut num = Vec::new();
    ndarray_npy::WriteNpyExt::write_npy(&Array1::<f64>::zeros(2), &mut num).unwrap();
    assert_eq!(parse_npy_string(&num).unwrap(), None);
    // A compressed archive (np.savez_compressed) with a kernel entry is read.
    let d = dir("npystr");
    let path = d.join("K.npz");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("kernel.npy", deflated).unwrap();
    std::io::Write::write_all(&mut zip, &npy_string("matern12")).unwrap();
    zip.finish().unwrap();
    assert_eq!(Npz::open(s(&path)).unwrap().get_string("kernel").unwrap().as_deref(), Some("matern12"));
}

#[test]
fn svgp_fit_elbo_predict_round_trip() {
    let d = dir("svgp");
    let (data, _) = write_case(&d, None);
    let (dp, sp, op, pp) = (d.join("D.npz"), d.join("S.npz"), d.join("O.npz"), d.join("P.npz"));
    let mut t = NpzOut::new();
    t.add2("x", Array2::from_shape_fn((5, 2), |(i, k)| 0.2 * i as f64 + 0.1 * k as f64));
    t.write(d.join("T.npz").to_str().unwrap()).unwrap();
    let o = run(&[
        "fit",
        "--model",
        "svgp",
        "--data",
        s(&dp),
        "--inducing",
        "4",
        "--steps",
        "25",
        "--lr",
        "0.02",
        "--seed",
        "3",
        "--fix",
        "z",
        "--kernel",
        "matern32",
        "--backend",
        "cpu",
        "--out",
        s(&sp),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let params = batchgp::io::read_svgp_params(s(&sp), Some((3, 2)), None).unwrap();
    assert_eq!(params.kernel(), Kernel::Matern32);
    assert_eq!(get(&sp, "loss").shape(), &[26, 3]);
    // z fixed: the k-means++ start of the library with the same seed.
    let z0 = batchgp::svgp::init_inducing(&data, 4, 3, 0);
    assert_eq!(params.z, z0);
    // elbo on the fitted file equals the library and the fit's own report.
    let o = run(&["elbo", "--data", s(&dp), "--params", s(&sp), "--backend", "cpu", "--out", s(&op)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lib = batchgp::svgp::ElboRequest::new(&data, &params).backend(BackendChoice::Cpu).run().unwrap();
    let elbo = get(&op, "elbo");
    for b in 0..3 {
        assert_eq!(elbo[b], lib.elbo[b]);
        assert_close(elbo[b], get(&sp, "elbo")[b], 1e-12, "fit report");
    }
    let gq = get(&op, "grad_q_sqrt");
    assert_eq!(gq.shape(), &[3, 4, 4]);
    assert_eq!(gq[[0, 0, 3]], 0.0);
    // predict needs no data for SVGP parameters.
    let o = run(&[
        "predict",
        "--params",
        s(&sp),
        "--test",
        d.join("T.npz").to_str().unwrap(),
        "--out",
        s(&pp),
        "--backend",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let test = batchgp::Inputs::Shared(get(&d.join("T.npz"), "x").into_dimensionality().unwrap());
    let be = batchgp::backend::cpu::CpuBackend::new();
    let p = batchgp::svgp::predict(&be, &params, &test, &Default::default()).unwrap();
    assert_eq!(get(&pp, "mean").into_dimensionality::<ndarray::Ix2>().unwrap(), p.mean);
    // Options that need --model svgp, and an exact predict without data, exit 2.
    assert_rejected(
        &run(&["fit", "--data", s(&dp), "--inducing", "4", "--out", s(&op)]),
        &["--inducing needs --model svgp"],
    );
    assert_rejected(
        &run(&[
            "fit",
            "--model",
            "svgp",
            "--data",
            s(&dp),
            "--batch-size",
            "4",
            "--optimizer",
            "lbfgs",
            "--out",
            s(&op),
        ]),
        &["batch_size", "adam"],
    );
    NpzOut::new().add_params(&params.hyp).write(s(&d.join("H.npz"))).unwrap();
    assert_rejected(
        &run(&["predict", "--params", s(&d.join("H.npz")), "--test", s(&d.join("T.npz")), "--out", s(&pp)]),
        &["--data"],
    );
}
