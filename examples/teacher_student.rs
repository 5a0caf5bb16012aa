//! Teacher-student: can a GP recover the lengthscale of the GP that generated its data?
//!
//! Four teachers with lengthscales 0.01, 0.03, 0.1 and 0.3 (outputscale 1, noise variance 0.01,
//! i.e. noise sd 0.1; batchgp's noise is always a variance) each draw 1000 noisy outputs at the
//! same inputs on [0, 1]. Four students, one per teacher, fitted as one batch, start from
//! lengthscale 1 with the outputscale fixed at the teacher's value (1) and fit lengthscale, noise
//! and mean by maximum likelihood. A recording observer keeps the loss and the lengthscale of
//! every student at every evaluation round for the plot.
//!
//!     cargo run --release --example teacher_student [-- --restarts R] [--standardize] [--n N] [--out DIR]
//!
//! (--restarts R replaces the default number of restarts.)
//!
//! Prints the recovered lengthscales against the teachers' and writes
//! out/teacher_student/teacher_student.png: loss and lengthscale against the round (teacher's
//! value dashed) and each student's posterior.
//!
//! Starting at lengthscale 1 on data with lengthscale 0.01 is a hard start. The MLL has a genuine
//! local maximum near lengthscale 0.27 with noise 1.14 (the data explained as noise: its
//! gradient vanishes there), and L-BFGS from 1 alone ends in it. Standardising y changes nothing
//! (the MAP point does not depend on it). Restarts do: the fit's default adds
//! `batchgp::fit::DEFAULT_RESTARTS` starts spread log-uniformly over lengthscales from 0.01 to 10
//! times the spread of x and noises from 1e-4 to 1 times var(y), and keeps the best. The example
//! fits the students with the defaults, then again from the single start (restarts 0), and
//! prints both and what the restarts cost.

use batchgp::plot::{self, colors, Key, Line, LinePanel, Panel, PosteriorPanel, RGBColor};
use batchgp::{
    backend, predict, sample_prior, BackendChoice, Dataset, FitObserver, FitProgress, FitRequest, FitResult,
    Hyperparameters, Inputs, Precision, PredictOptions, ProgressBarObserver, Status, Target,
};
use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::time::Instant;

const TEACHER_LENGTHSCALES: [f64; 4] = [0.01, 0.03, 0.1, 0.3];
const OUTPUTSCALE: f64 = 1.0;
/// Noise variance of the teachers (sd 0.1).
const NOISE_VARIANCE: f64 = 0.01;
const STUDENT_START: f64 = 1.0;
/// Iteration limit per student. Near their optimum some students creep on for hundreds of
/// iterations without gaining anything visible (see the report); 200 keeps the example quick.
const MAX_ITER: usize = 200;
/// One colour per teacher in the trace panels; blue is left to the posterior mean.
const TEACHER_COLORS: [RGBColor; 4] = [colors::ORANGE, colors::GREEN, colors::RED, colors::PURPLE];

/// Records the loss (-objective / n) and lengthscale of every fitted member at every round, and
/// forwards everything to a progress bar.
struct Recorder {
    n: f64,
    /// Per round: (round, loss per member, lengthscale per member); members include restarts.
    rounds: Vec<(usize, Vec<f64>, Vec<f64>)>,
    bar: ProgressBarObserver,
}

impl FitObserver for Recorder {
    fn init(&mut self, members: usize) {
        self.bar.init(members);
    }
    fn iter(&mut self, p: &FitProgress<'_>) {
        let h = p.hyperparameters();
        let loss = p.objective.iter().map(|o| -o / self.n).collect();
        self.rounds.push((p.iteration, loss, h.lengthscale.column(0).to_vec()));
        self.bar.iter(p);
    }
    fn finish(&mut self, status: &[Status]) {
        self.bar.finish(status);
    }
}

struct Args {
    /// Restarts of the default fit.
    restarts: usize,
    standardize: bool,
    n: usize,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        restarts: batchgp::fit::DEFAULT_RESTARTS,
        standardize: false,
        n: 1000,
        out: plot::out_dir("teacher_student"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--restarts" => a.restarts = value("--restarts")?.parse().map_err(|e| format!("--restarts: {e}"))?,
            "--n" => a.n = value("--n")?.parse().map_err(|e| format!("--n: {e}"))?,
            "--out" => a.out = PathBuf::from(value("--out")?),
            "--standardize" => a.standardize = true,
            _ => {
                return Err(format!(
                    "unknown argument `{flag}` (expected --restarts R, --standardize, --n N, --out DIR)"
                ))
            }
        }
    }
    Ok(a)
}

struct Run {
    fit: FitResult,
    rec: Recorder,
    seconds: f64,
}

/// Fits the students of `data` from lengthscale 1 with the outputscale fixed.
fn fit_students(
    be: &dyn batchgp::Backend,
    data: &Dataset,
    restarts: usize,
    standardize: bool,
) -> Result<Run, batchgp::Error> {
    // Lengthscale 1, outputscale at the teacher's value (and fixed); noise and mean from the
    // library's data-driven start (noise = var(y) / 10, mean = mean(y)).
    let mut init = FitRequest::default_init(data);
    init.lengthscale.fill(STUDENT_START);
    init.outputscale.fill(OUTPUTSCALE);
    let mut rec = Recorder { n: data.n_points() as f64, rounds: Vec::new(), bar: ProgressBarObserver::new() };
    let start = Instant::now();
    let fit = FitRequest::new(data)
        .init(&init)
        .fix(Target::Outputscale)
        .restarts(restarts)
        .standardize_removed(standardize)?
        .max_iter(MAX_ITER)
        .on(be)
        .observer(&mut rec)
        .run()?;
    Ok(Run { fit, rec, seconds: start.elapsed().as_secs_f64() })
}

fn print_table(teachers: &[usize], fit: &FitResult) {
    println!(
        "  {:>9} {:>10} {:>7} {:>9} {:>9} {:>6} {:>6}  status",
        "teacher l", "student l", "ratio", "noise", "mll", "iters", "start"
    );
    for (i, &k) in teachers.iter().enumerate() {
        let l = fit.model.hyperparameters.lengthscale[[i, 0]];
        println!(
            "  {:>9} {:>10.4} {:>7.3} {:>9.5} {:>9.1} {:>6} {:>6}  {}",
            TEACHER_LENGTHSCALES[k],
            l,
            l / TEACHER_LENGTHSCALES[k],
            fit.model.hyperparameters.noise[i],
            fit.model.mll[i],
            fit.iterations[i],
            fit.restart[i],
            batchgp::demo::status_word(fit.status[i])
        );
    }
}

fn close(l: f64, k: usize) -> bool {
    (l / TEACHER_LENGTHSCALES[k] - 1.0).abs() < 0.2
}

/// The trace of the kept run of each student: (round, value) for loss (`which` = 0) or
/// lengthscale (1).
fn traces(run: &Run, teachers: &[usize], which: usize) -> Vec<Line> {
    let b = teachers.len();
    teachers
        .iter()
        .enumerate()
        .map(|(i, &k)| {
            let e = i + run.fit.restart[i] * b;
            Line {
                label: format!("teacher l = {}", TEACHER_LENGTHSCALES[k]),
                points: run
                    .rec
                    .rounds
                    .iter()
                    .map(|(r, loss, l)| (*r as f64, if which == 0 { loss[e] } else { l[e] }))
                    .collect(),
                color: TEACHER_COLORS[k],
            }
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let be = backend::select(BackendChoice::Auto)?;
    println!("backend: {}", be.describe());
    let b = TEACHER_LENGTHSCALES.len();

    // The teachers: one draw each (with noise) at shared, sorted inputs.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut xs: Vec<f64> = (0..args.n).map(|_| rng.random::<f64>()).collect();
    xs.sort_by(f64::total_cmp);
    let x = Array2::from_shape_vec((args.n, 1), xs.clone())?;
    let mut teacher = Hyperparameters::broadcast(b, &[1.0], OUTPUTSCALE, NOISE_VARIANCE, 0.0);
    for (k, l) in TEACHER_LENGTHSCALES.iter().enumerate() {
        teacher.lengthscale[[k, 0]] = *l;
    }
    let (y, _) = sample_prior(be.as_ref(), &Inputs::Shared(x.clone()), &teacher, 1, 11, true, Precision::F64)?;
    let data = Dataset::new(x, y.index_axis(Axis(0), 0).to_owned())?;
    println!(
        "teachers: lengthscale {:?}, outputscale {OUTPUTSCALE}, noise variance {NOISE_VARIANCE} (\"noise 0.01\" read as a variance, \
         as everywhere in batchgp: sd {}), {} points on [0, 1]",
        TEACHER_LENGTHSCALES,
        NOISE_VARIANCE.sqrt(),
        args.n
    );
    println!(
        "students: start at lengthscale {STUDENT_START}, outputscale fixed at {OUTPUTSCALE}, fit lengthscale, noise and mean \
         (L-BFGS, at most {MAX_ITER} iterations{})",
        if args.standardize { ", y standardized" } else { "" }
    );

    // 1. Every student with the fit's defaults (restarts included), as one batch.
    let all: Vec<usize> = (0..b).collect();
    let dflt = fit_students(be.as_ref(), &data, args.restarts, args.standardize)?;
    println!();
    println!(
        "1. The defaults ({} restarts, best of {} starts kept): {:.1} s, {} rounds",
        args.restarts,
        args.restarts + 1,
        dflt.seconds,
        dflt.fit.rounds
    );
    print_table(&all, &dflt.fit);
    // 2. The same students from the single start, for comparison.
    let plain = fit_students(be.as_ref(), &data, 0, args.standardize)?;
    println!();
    println!(
        "2. From lengthscale {STUDENT_START} alone (restarts 0): {:.1} s, {} rounds",
        plain.seconds, plain.fit.rounds
    );
    print_table(&all, &plain.fit);
    println!();
    for k in all.iter().copied().filter(|&k| !close(plain.fit.model.hyperparameters.lengthscale[[k, 0]], k)) {
        println!(
            "Without restarts, student {k} (teacher l = {}) stops at l = {:.4}, noise = {:.3}: a local maximum of the MLL \
             where the data is explained as noise (mll {:.1}; with the defaults {:.1}).",
            TEACHER_LENGTHSCALES[k],
            plain.fit.model.hyperparameters.lengthscale[[k, 0]],
            plain.fit.model.hyperparameters.noise[k],
            plain.fit.model.mll[k],
            dflt.fit.model.mll[k]
        );
    }
    let final_h = dflt.fit.model.hyperparameters.clone();
    let recovered = (0..b).filter(|&k| close(final_h.lengthscale[[k, 0]], k)).count();
    println!(
        "With the defaults: {recovered} of {b} students within 20% of their teacher's lengthscale; the restarts cost \
         {:.1}x the time of the single start.",
        dflt.seconds / plain.seconds.max(1e-9)
    );
    let retry = Some(dflt);
    let missed = all.clone();

    // The figure: traces of both fits, then each student's final posterior. Each panel has its
    // own legend; the trace panels share one colour per teacher, none of them the posterior's blue.
    let lengthscale_keys = vec![
        (Key::Line(colors::GRAY), "student".to_string()),
        (Key::Dashed(colors::GRAY), "its teacher's value".to_string()),
    ];
    let plain_loss = traces(&plain, &all, 0);
    let mut panels = vec![
        Panel::Lines(LinePanel {
            title: format!("Loss (-mll / n) from l = {STUDENT_START} alone (restarts 0)"),
            x_label: "evaluation round".into(),
            y_label: "loss".into(),
            log_x: true,
            keys: plot::line_keys(&plain_loss),
            lines: plain_loss,
            ..Default::default()
        }),
        Panel::Lines(LinePanel {
            title: "Lengthscale from l = 1 alone (colours as at left)".into(),
            x_label: "evaluation round".into(),
            y_label: "lengthscale".into(),
            log_x: true,
            log_y: true,
            lines: traces(&plain, &all, 1),
            hlines: all.iter().map(|&k| (String::new(), TEACHER_LENGTHSCALES[k], TEACHER_COLORS[k])).collect(),
            keys: lengthscale_keys.clone(),
            ..Default::default()
        }),
    ];
    if let Some(run) = &retry {
        let loss = traces(run, &missed, 0);
        panels.push(Panel::Lines(LinePanel {
            title: format!("Loss with the defaults: {} restarts (best start kept)", args.restarts),
            x_label: "evaluation round".into(),
            y_label: "loss".into(),
            log_x: true,
            keys: plot::line_keys(&loss),
            lines: loss,
            ..Default::default()
        }));
        panels.push(Panel::Lines(LinePanel {
            title: "Lengthscale with the defaults (best start kept)".into(),
            x_label: "evaluation round".into(),
            y_label: "lengthscale".into(),
            log_x: true,
            log_y: true,
            lines: traces(run, &missed, 1),
            hlines: missed.iter().map(|&k| (String::new(), TEACHER_LENGTHSCALES[k], TEACHER_COLORS[k])).collect(),
            keys: lengthscale_keys,
            ..Default::default()
        }));
    }
    // Posteriors on a window of about 25 teacher lengthscales, so the wiggles are visible; the
    // x label says when a panel is zoomed in.
    let opts = PredictOptions::default();
    for (k, teacher) in TEACHER_LENGTHSCALES.iter().enumerate().take(b) {
        let width = 25.0 * teacher;
        let (a, z) = if width >= 1.0 { (0.0, 1.0) } else { (0.5 - width / 2.0, 0.5 + width / 2.0) };
        let grid = plot::linspace(a, z, 400);
        let test = Inputs::Shared(Array2::from_shape_vec((grid.len(), 1), grid.clone())?);
        let post = predict(be.as_ref(), &data.select(&[k]), &final_h.select(&[k]), &test, &opts)?;
        let x_label = if width >= 1.0 {
            "x (all of [0, 1])".to_string()
        } else {
            format!("x, zoomed in to [{a}, {z}] of [0, 1]")
        };
        panels.push(Panel::Posterior(PosteriorPanel {
            title: format!(
                "Teacher l = {}: student l = {:.4}, noise = {:.4}",
                TEACHER_LENGTHSCALES[k],
                final_h.lengthscale[[k, 0]],
                final_h.noise[k]
            ),
            x_label,
            y_label: "y".into(),
            x: grid,
            mean: post.mean.row(0).to_vec(),
            lower: post.lower.row(0).to_vec(),
            upper: post.upper.row(0).to_vec(),
            points: xs.iter().zip(data.y().row(k)).map(|(x, y)| (*x, *y)).collect(),
            keys: plot::posterior_keys("teacher's data", None),
            ..Default::default()
        }));
    }
    let path = plot::figure(
        &args.out.join("teacher_student.png"),
        "Teacher-student: students start at lengthscale 1 with the outputscale fixed",
        &[],
        &panels,
        plot::Grid::new(2, (700, 420)),
    )?;
    println!("Plot: {}", path.display());
    Ok(())
}
