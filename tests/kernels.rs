//! Every kernel (rbf, matern12/32/52, rq) and known noise (yvar), on every usable backend: the
//! MLL against the dense textbook formula, the full gradient (alpha included) against central
//! finite differences of that formula, coincident points (Matérn 1/2 at r = 0), ragged ==
//! unpadded, batch == loop, one failing member isolated, f32 against f64, prediction against
//! the dense posterior, and the fit's answer independent of the data's units.

mod common;
use batchgp::backend::PredictOptions;
use batchgp::{Dataset, FitRequest, Hyperparameters, Inputs, Kernel, Layout, MllRequest, Precision, Status, Target};
use common::*;
use ndarray::{Array1, Array2, Array3, Axis};

/// A random batch for `kernel`, with yvar on odd members (zeros elsewhere) when asked.
fn batch(kernel: Kernel, b: usize, n: usize, d: usize, seed: u64, yvar: bool) -> (Dataset, Hyperparameters) {
    let (data, hyp) = random_batch(b, n, d, seed);
    let mut hyp = hyp.with_kernel(kernel);
    if kernel.has_alpha() {
        hyp.alpha = Some(Array1::from_shape_fn(b, |m| 0.4 + 0.7 * m as f64));
    }
    let data = if yvar {
        let v = Array2::from_shape_fn((b, n), |(m, i)| if m % 2 == 1 { 0.01 + 0.002 * (i % 7) as f64 } else { 0.0 });
        data.with_yvar(v).unwrap()
    } else {
        data
    };
    (data, hyp)
}

/// Central differences of the dense MLL in the layout's reported coordinates (log for positive
/// hyperparameters, natural for the mean).
fn fd_gradient(data: &Dataset, hyp: &Hyperparameters, b: usize) -> Vec<f64> {
    let layout = Layout::of(hyp);
    let h = 1e-5;
    (0..layout.len())
        .map(|c| {
            let (t, k) = layout.coordinate(c);
            let at = |e: f64| {
                let mut h2 = hyp.clone();
                let v = h2.get(t, b, k);
                h2.set(t, b, k, if t.positive() { v * e.exp() } else { v + e });
                dense_mll(data, &h2, b)
            };
            (at(h) - at(-h)) / (2.0 * h)
        })
        .collect()
}

fn gradient_row(r: &batchgp::MllReport, layout: Layout, b: usize) -> Vec<f64> {
    let g = r.gradient.as_ref().unwrap();
    (0..layout.len())
        .map(|c| {
            let (t, k) = layout.coordinate(c);
            g.get(t, b, k)
        })
        .collect()
}

#[test]
fn mll_and_gradient_match_dense_formula_and_finite_differences() {
    on_every_backend(|be| {
        for kernel in Kernel::ALL {
            let (data, hyp) = batch(kernel, 4, 19, 3, 11, true);
            let r = MllRequest::new(&data, &hyp).on(be).run().unwrap();
            let layout = Layout::of(&hyp);
            for b in 0..4 {
                assert_eq!(r.status[b], Status::Ok, "{kernel} member {b}");
                assert_close(r.mll[b], dense_mll(&data, &hyp, b), 1e-10, &format!("{kernel} mll member {b}"));
                let fd = fd_gradient(&data, &hyp, b);
                let g = gradient_row(&r, layout, b);
                assert_all_close(&g, &fd, 1e-6, &format!("{kernel} gradient member {b} ({})", be.name()));
            }
        }
    });
}

#[test]
fn coincident_points_give_finite_gradients() {
    on_every_backend(|be| {
        for kernel in Kernel::ALL {
            // Points 0 and 1 coincide, and so do 4 and 7: r = 0 off the diagonal.
            let x = Array2::from_shape_fn((9, 2), |(i, k)| {
                let j = match i {
                    1 => 0,
                    7 => 4,
                    _ => i,
                };
                (j as f64 * 0.37 + k as f64 * 0.11).sin()
            });
            let y = Array2::from_shape_fn((1, 9), |(_, i)| (i as f64).cos());
            let data = Dataset::new(x, y).unwrap();
            let hyp = Hyperparameters::broadcast(1, &[0.6, 0.9], 1.3, 0.2, 0.1).with_kernel(kernel);
            let r = MllRequest::new(&data, &hyp).on(be).run().unwrap();
            let layout = Layout::of(&hyp);
            let g = gradient_row(&r, layout, 0);
            assert!(g.iter().all(|v| v.is_finite()), "{kernel}: {g:?}");
            assert_all_close(&g, &fd_gradient(&data, &hyp, 0), 1e-6, &format!("{kernel} at coincident points"));
        }
    });
}

#[test]
fn yvar_adds_to_the_diagonal() {
    on_every_backend(|be| {
        // yvar = v everywhere with noise n equals yvar = 0 with noise n + v.
        let (data, hyp) = batch(Kernel::Matern32, 3, 15, 2, 5, false);
        let v = 0.07;
        let with = data.clone().with_yvar(Array2::from_elem((3, 15), v)).unwrap();
        let mut shifted = hyp.clone();
        shifted.noise.mapv_inplace(|n| n + v);
        let a = MllRequest::new(&with, &hyp).on(be).run().unwrap();
        let b = MllRequest::new(&data, &shifted).on(be).run().unwrap();
        assert_all_close(a.mll.as_slice().unwrap(), b.mll.as_slice().unwrap(), 1e-12, "mll");
        // The noise gradient differs by the factor noise / (noise + v): d/dlog n = n d/dn.
        let ga = a.gradient.unwrap();
        let gb = b.gradient.unwrap();
        for m in 0..3 {
            let want = gb.log_noise[m] * hyp.noise[m] / shifted.noise[m];
            assert_close(ga.log_noise[m], want, 1e-10, "grad log noise");
        }
    });
}

#[test]
fn ragged_batch_loop_and_isolation_per_kernel() {
    on_every_backend(|be| {
        for kernel in Kernel::ALL {
            let (b, n, d) = (5, 17, 2);
            let (data, mut hyp) = batch(kernel, b, n, d, 3, true);
            // Ragged: mask the last few points of every member (NaN behind the mask).
            let mask = Array2::from_shape_fn((b, n), |(m, i)| i < n - m);
            let Inputs::Batched(mut x) = data.x().clone() else { unreachable!() };
            let mut y = data.y().clone();
            for ((m, i), keep) in mask.indexed_iter() {
                if !keep {
                    y[[m, i]] = f64::NAN;
                    x.index_axis_mut(Axis(0), m).row_mut(i).fill(f64::NAN);
                }
            }
            let ragged = Dataset::with_mask(x.clone(), y.clone(), Some(mask.clone()))
                .unwrap()
                .with_yvar(data.yvar().unwrap().clone())
                .unwrap();
            hyp.outputscale[2] = f64::INFINITY; // member 2 fails, the others must not notice
            let all = MllRequest::new(&ragged, &hyp).on(be).run().unwrap();
            assert_eq!(all.status[2], Status::Failed, "{kernel}");
            for m in [0, 1, 3, 4] {
                let keep = n - m;
                let xm = x.index_axis(Axis(0), m).slice(ndarray::s![..keep, ..]).to_owned();
                let ym = y.row(m).slice(ndarray::s![..keep]).to_owned().insert_axis(Axis(0));
                let vm = data.yvar().unwrap().row(m).slice(ndarray::s![..keep]).to_owned().insert_axis(Axis(0));
                let one = Dataset::new(xm, ym).unwrap().with_yvar(vm).unwrap();
                let h1 = hyp.select(&[m]);
                let r1 = MllRequest::new(&one, &h1).on(be).run().unwrap();
                assert_eq!(all.status[m], Status::Ok);
                assert_close(all.mll[m], r1.mll[0], 1e-12, &format!("{kernel} member {m}: ragged == unpadded"));
                let layout = Layout::of(&hyp);
                assert_all_close(
                    &gradient_row(&all, layout, m),
                    &gradient_row(&r1, layout, 0),
                    1e-11,
                    &format!("{kernel} gradient member {m}"),
                );
            }
        }
    });
}

#[test]
fn f32_agrees_with_f64_and_survives_offsets() {
    on_every_backend(|be| {
        for kernel in Kernel::ALL {
            let (data, hyp) = batch(kernel, 3, 30, 2, 8, false);
            // x offset by 1e8: f32 must still agree (every backend centres x per member).
            let Inputs::Batched(x) = data.x().clone() else { unreachable!() };
            let far = Dataset::new(x.mapv(|v| v + 1e8), data.y().clone()).unwrap();
            let r64 = MllRequest::new(&data, &hyp).on(be).run().unwrap();
            let r32 = MllRequest::new(&far, &hyp).on(be).precision(Precision::F32).run().unwrap();
            for m in 0..3 {
                assert_close(r32.mll[m], r64.mll[m], 2e-4, &format!("{kernel} f32 at offset 1e8, member {m}"));
            }
        }
    });
}

#[test]
fn prediction_matches_dense_posterior() {
    on_every_backend(|be| {
        for kernel in Kernel::ALL {
            let (data, hyp) = batch(kernel, 3, 14, 2, 9, true);
            let test = Array2::from_shape_fn((6, 2), |(i, k)| 0.15 * i as f64 + 0.1 * k as f64);
            let opts = PredictOptions { full_covariance: true, ..Default::default() };
            let p = batchgp::predict(be, &data, &hyp, &Inputs::Shared(test.clone()), &opts).unwrap();
            for b in 0..3 {
                let (x, r) = member_points(&data, &hyp, b);
                let ls: Vec<f64> = hyp.lengthscale.row(b).to_vec();
                let (s, a) = (hyp.outputscale[b], hyp.alpha_of(b));
                let mut k = dense_kernel(kernel, &x, &x, &ls, s, a);
                for i in 0..x.nrows() {
                    k[[i, i]] += hyp.noise[b] + data.yvar_at(b, i);
                }
                let l = dense_cholesky(&k).unwrap();
                let ks = dense_kernel(kernel, &x, &test, &ls, s, a);
                let alpha = dense_solve(&l, &r);
                let kss = dense_kernel(kernel, &test, &test, &ls, s, a);
                for j in 0..6 {
                    let kj = ks.column(j).to_owned();
                    let mean = hyp.mean[b] + kj.dot(&alpha);
                    let var = s - kj.dot(&dense_solve(&l, &kj));
                    assert_close(p.mean[[b, j]], mean, 1e-10, &format!("{kernel} mean"));
                    assert_close(p.var[[b, j]], var, 1e-9, &format!("{kernel} var"));
                    let cov = p.covariance.as_ref().unwrap();
                    for i in 0..6 {
                        let want = kss[[i, j]] - ks.column(i).dot(&dense_solve(&l, &kj));
                        assert_close(cov[[b, i, j]], want, 1e-9, &format!("{kernel} cov"));
                    }
                }
            }
        }
    });
}

/// Fitting c y + a and x scaled and shifted reaches the optimum of the original data, mapped
/// back, on every kernel (docs/design.md section 14): the MLL to 1e-6 relative, the
/// hyperparameters to 1e-4 (the optimum is flat: an MLL within 1e-12 leaves them that free).
#[test]
fn fits_do_not_depend_on_units() {
    for kernel in Kernel::ALL {
        let (data, _) = batch(kernel, 3, 40, 2, 21, false);
        let Inputs::Batched(x) = data.x().clone() else { unreachable!() };
        let base = FitRequest::new(&data).kernel(kernel).backend(batchgp::BackendChoice::Cpu).run().unwrap();
        for (c, a, xs, xo) in
            [(1e6, 3e8, 1e-3, 5e4), (1e-6, -2.0, 1e4, -1e6), (1e10, 0.0, 1.0, 0.0), (1e-10, 1e-3, 1.0, 0.0)]
        {
            let y2 = data.y().mapv(|v| c * v + a);
            let x2: Array3<f64> = x.mapv(|v| xs * v + xo);
            let d2 = Dataset::new(x2, y2).unwrap();
            let f = FitRequest::new(&d2).kernel(kernel).backend(batchgp::BackendChoice::Cpu).run().unwrap();
            for m in 0..3 {
                let what = format!("{kernel} member {m}, y * {c:e} + {a:e}, x * {xs:e} + {xo:e}");
                assert_eq!(f.status[m], base.status[m], "{what}: status ({} vs {})", f.describe(m), base.describe(m));
                let n = data.n_observed(m) as f64;
                assert_close(f.model.mll[m], base.model.mll[m] - n * c.ln(), 1e-6, &format!("{what}: mll"));
                let (h, h0) = (&f.model.hyperparameters, &base.model.hyperparameters);
                for k in 0..2 {
                    assert_close(h.lengthscale[[m, k]] / xs, h0.lengthscale[[m, k]], 1e-4, &format!("{what}: l{k}"));
                }
                assert_close(h.outputscale[m] / (c * c), h0.outputscale[m], 1e-4, &format!("{what}: s"));
                assert_close(h.noise[m] / (c * c), h0.noise[m], 1e-4, &format!("{what}: noise"));
                assert_close((h.mean[m] - a) / c, h0.mean[m], 1e-4, &format!("{what}: mean"));
                // Past alpha ~ 1e4 rq equals rbf to working precision: alpha is not identified.
                let (a1, a0) = (h.get(Target::Alpha, m, 0), h0.get(Target::Alpha, m, 0));
                if kernel.has_alpha() && a0.min(a1) < 1e4 {
                    assert_close(
                        h.get(Target::Alpha, m, 0),
                        h0.get(Target::Alpha, m, 0),
                        1e-4,
                        &format!("{what}: alpha"),
                    );
                }
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]
    /// The same invariance over random scales and offsets: log10 c in [-10, 10], an offset of up
    /// to 1e6 sd(y), x scaled by 10^[-4, 4] and shifted by up to 1e4 of its spread.
    #[test]
    fn fits_do_not_depend_on_units_property(
        log_c in -10.0f64..10.0,
        a_sd in -1e6f64..1e6,
        log_xs in -4.0f64..4.0,
        xo_sd in -1e4f64..1e4,
        k in 0usize..5,
    ) {
        let kernel = Kernel::ALL[k];
        let (data, _) = batch(kernel, 2, 30, 2, 77, false);
        let Inputs::Batched(x) = data.x().clone() else { unreachable!() };
        let (c, xs) = (10f64.powf(log_c), 10f64.powf(log_xs));
        let sd_y = data.y_moments(0).1.sqrt();
        let y2 = data.y().mapv(|v| c * v + a_sd * c * sd_y);
        let x2: Array3<f64> = x.mapv(|v| xs * v + xo_sd * xs * 0.3);
        let d2 = Dataset::new(x2, y2).unwrap();
        let cpu = batchgp::BackendChoice::Cpu;
        let base = FitRequest::new(&data).kernel(kernel).backend(cpu).run().unwrap();
        let f = FitRequest::new(&d2).kernel(kernel).backend(cpu).run().unwrap();
        for m in 0..2 {
            let n = data.n_observed(m) as f64;
            let what = format!("{kernel} member {m}: c {c:e}, a {a_sd:e} sd, x * {xs:e} + {xo_sd:e} spreads");
            proptest::prop_assert_eq!(f.status[m], base.status[m], "{}", what);
            assert_close(f.model.mll[m], base.model.mll[m] - n * c.ln(), 1e-6, &what);
        }
    }
}
