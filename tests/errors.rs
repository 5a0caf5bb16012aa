//! Every class of rejected input (docs/design.md section 4) returns its typed error, naming the
//! array, the shape or the (member, index); nothing panics.

use batchgp::io::{read_data, NpzOut};
use batchgp::prior::{Prior, Priors, Target};
use batchgp::{BackendChoice, Dataset, Error, FitRequest, Hyperparameters, Inputs, MllRequest, PredictOptions};
use ndarray::{Array1, Array2, Array3};

fn ok_data() -> Dataset {
    let x = Array3::from_shape_fn((2, 5, 2), |(b, i, k)| (b + i + k) as f64 / 7.0);
    let y = Array2::from_shape_fn((2, 5), |(b, i)| (b * i) as f64 / 5.0);
    Dataset::new(x, y).unwrap()
}

#[test]
fn shapes_that_do_not_agree() {
    let x = Array3::<f64>::zeros((2, 5, 2));
    match Dataset::new(x, Array2::zeros((3, 5))) {
        Err(Error::Shape { array, actual, .. }) => {
            assert_eq!(array, "x");
            assert_eq!(actual, vec![2, 5, 2]);
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let shared = Array2::<f64>::zeros((4, 2));
    assert!(matches!(Dataset::new(shared, Array2::zeros((3, 5))), Err(Error::Shape { array, .. }) if array == "x"));
    let mask = Array2::from_elem((2, 4), true);
    let r = Dataset::with_mask(Array3::<f64>::zeros((2, 5, 2)), Array2::zeros((2, 5)), Some(mask));
    assert!(matches!(r, Err(Error::Shape { array, .. }) if array == "mask"));
    // Hyperparameters of the wrong shape.
    let data = ok_data();
    let hyp = Hyperparameters::broadcast(2, &[1.0, 1.0, 1.0], 1.0, 0.1, 0.0);
    assert!(matches!(MllRequest::new(&data, &hyp).run(), Err(Error::Shape { array, .. }) if array == "lengthscale"));
    let mut hyp = Hyperparameters::broadcast(2, &[1.0, 1.0], 1.0, 0.1, 0.0);
    hyp.noise = Array1::from_elem(3, 0.1);
    assert!(matches!(MllRequest::new(&data, &hyp).run(), Err(Error::Shape { array, .. }) if array == "noise"));
    // Test points with the wrong D.
    let hyp = Hyperparameters::broadcast(2, &[1.0, 1.0], 1.0, 0.1, 0.0);
    let be = batchgp::select(BackendChoice::Cpu).unwrap();
    let test = Inputs::Shared(Array2::zeros((3, 5)));
    let r = batchgp::predict(be.as_ref(), &data, &hyp, &test, &PredictOptions::default());
    assert!(matches!(r, Err(Error::Shape { array, .. }) if array == "test x"));
}

#[test]
fn non_finite_x_or_y_outside_the_mask() {
    let mut x = Array3::<f64>::zeros((2, 5, 2));
    x[[1, 3, 1]] = f64::NAN;
    match Dataset::new(x.clone(), Array2::zeros((2, 5))) {
        Err(Error::NonFinite { array, member, index, value }) => {
            assert_eq!((array.as_str(), member, index), ("x", 1, 3));
            assert!(value.is_nan());
        }
        other => panic!("{other:?}"),
    }
    let mut y = Array2::<f64>::zeros((2, 5));
    y[[0, 4]] = f64::INFINITY;
    match Dataset::new(Array3::<f64>::zeros((2, 5, 2)), y.clone()) {
        Err(Error::NonFinite { array, member, index, .. }) => assert_eq!((array.as_str(), member, index), ("y", 0, 4)),
        other => panic!("{other:?}"),
    }
    // Inside the mask the same values are fine.
    let mut mask = Array2::from_elem((2, 5), true);
    mask[[1, 3]] = false;
    mask[[0, 4]] = false;
    assert!(Dataset::with_mask(x, y, Some(mask)).is_ok());
}

#[test]
fn invalid_hyperparameters_name_member_and_index() {
    let data = ok_data();
    let mut hyp = Hyperparameters::broadcast(2, &[1.0, 1.0], 1.0, 0.1, 0.0);
    hyp.lengthscale[[1, 0]] = 0.0;
    match MllRequest::new(&data, &hyp).run() {
        Err(Error::InvalidHyperparameter { name, member, index, .. }) => {
            assert_eq!((name.as_str(), member, index), ("lengthscale", 1, 0))
        }
        other => panic!("{other:?}"),
    }
    let mut hyp = Hyperparameters::broadcast(2, &[1.0, 1.0], 1.0, 0.1, 0.0);
    hyp.noise[0] = -1.0;
    assert!(
        matches!(MllRequest::new(&data, &hyp).run(), Err(Error::InvalidHyperparameter { name, member: 0, .. }) if name == "noise")
    );
    let mut hyp = Hyperparameters::broadcast(2, &[1.0, 1.0], 1.0, 0.1, 0.0);
    hyp.mean[1] = f64::NAN;
    assert!(
        matches!(MllRequest::new(&data, &hyp).run(), Err(Error::InvalidHyperparameter { name, member: 1, .. }) if name == "mean")
    );
}

#[test]
fn invalid_priors() {
    let data = ok_data();
    let hyp = Hyperparameters::broadcast(2, &[1.0, 1.0], 1.0, 0.1, 0.0);
    let cases = [
        Priors::none().with(Target::Lengthscale, Prior::gamma(2.0, vec![0.1, -1.0])),
        Priors::none().with(Target::Outputscale, Prior::uniform(5.0, 1.0)),
        Priors::none().with(Target::Noise, Prior::uniform(-1.0, 1.0)),
        Priors::none().with(Target::Mean, Prior::normal(0.0, 0.0)),
        Priors::none().with(Target::Noise, Prior::halfcauchy(f64::NAN)),
        // Shapes that do not broadcast: 3 numbers for D = 2, 3 for B = 2, nested for a scalar kind.
        Priors::none().with(Target::Lengthscale, Prior::lognormal(vec![0.0, 0.0, 0.0], 1.0)),
        Priors::none().with(Target::Outputscale, Prior::lognormal(vec![0.0, 0.0, 0.0], 1.0)),
        Priors::none().with(Target::Outputscale, Prior::lognormal(vec![vec![0.0], vec![0.0]], 1.0)),
        Priors::none().with(Target::Lengthscale, Prior::lognormal(vec![vec![0.0, 1.0], vec![0.0]], 1.0)),
    ];
    for (i, p) in cases.iter().enumerate() {
        let r = MllRequest::new(&data, &hyp).priors(p).run();
        assert!(matches!(r, Err(Error::InvalidPrior { .. })), "case {i}: {r:?}");
        let f = FitRequest::new(&data).priors(p).backend(BackendChoice::Cpu).run();
        assert!(matches!(f, Err(Error::InvalidPrior { .. })), "fit case {i}");
    }
    for text in [
        "[lengthscale]\ngamma = { concentration = 2.0 }",
        "[lengthscal]\ngamma = { concentration = 2.0, rate = 1.0 }",
        "[noise]\nbeta = { a = 1.0 }",
        "[noise]\ngamma = { concentration = 2.0, rate = 1.0, extra = 3 }",
        "[noise]\ngamma = { concentration = \"two\", rate = 1.0 }",
        "not toml at all [",
    ] {
        assert!(matches!(Priors::from_toml(text), Err(Error::InvalidPrior { .. })), "{text}");
    }
}

#[test]
fn missing_arrays_and_unavailable_backends() {
    let dir = std::env::temp_dir().join(format!("batchgp-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("d.npz");
    let path = path.to_str().unwrap();
    NpzOut::new().add2("x", Array2::zeros((3, 1))).write(path).unwrap();
    assert!(matches!(read_data(path), Err(Error::Missing { array, .. }) if array == "y"));
    assert!(matches!(read_data("/nonexistent/file.npz"), Err(Error::Io { .. })));
    if batchgp::backend::cuda::CudaBackend::new().is_err() {
        assert!(matches!(batchgp::select(BackendChoice::Cuda), Err(Error::BackendUnavailable { .. })));
        // auto falls back to the CPU.
        assert_eq!(batchgp::select(BackendChoice::Auto).unwrap().name(), "cpu");
    }
    let data = ok_data();
    let r = FitRequest::new(&data).fix_member(Target::Noise, 9).backend(BackendChoice::Cpu).run();
    assert!(matches!(r, Err(Error::InvalidOption { .. })));
}
