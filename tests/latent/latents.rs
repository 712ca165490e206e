//! Named, constrained latents end to end: the layout, the Jacobian that `elbo` adds, initial values
//! in the constrained space, summaries and draws by name with CSV/JSON export, and a clear
//! `elbo::Error` for every kind of bad input (unknown name, wrong count, value outside the support,
//! non-finite log density at the start, bad declarations).

use crate::common::host;
use elbo::latent::Bijector;
use elbo::prelude::*;
use elbo::Error;

fn message<T: std::fmt::Debug>(r: elbo::Result<T>) -> (Error, String) {
    let e = r.expect_err("expected an error");
    let m = e.to_string();
    (e, m)
}

/// A short fit from the point start (`init_loc` / `init_value`, scale 0.1): these tests are
/// about where q starts and what is reported of it.
fn advi() -> Advi<MeanField> {
    Advi::new(MeanField).dtype(DType::F64).init_pathfinder(None).steps(20).elbo_draws(10)
}

/// mu ~ N(0, 1), tau ~ Exponential(1), theta ~ N(0, 1)⁸ (no data): every density written by hand, so
/// this file does not depend on `elbo::dist`.
fn prior_model() -> impl Model {
    Latents::new().real("mu", [1]).positive("tau", ()).real("theta", [8]).model(|v| {
        let mu = (v.get("mu")?.sqr()?.sum(1)? * -0.5)?;
        let tau = v.get("tau")?.neg()?;
        let theta = (v.get("theta")?.sqr()?.sum(1)? * -0.5)?;
        (mu + tau)? + theta
    })
}

#[test]
fn the_layout_packs_blocks_in_declaration_order() {
    let latents = Latents::new().real("mu", [1]).positive("tau", ()).real("theta", [2, 3]);
    assert_eq!(latents.dim(), 8);
    let offsets: Vec<usize> = latents.blocks().iter().map(|b| b.offset()).collect();
    assert_eq!(offsets, [0, 1, 2]);
    assert_eq!(
        latents.element_names(),
        ["mu", "tau", "theta[0,0]", "theta[0,1]", "theta[0,2]", "theta[1,0]", "theta[1,1]", "theta[1,2]"]
    );
    let z = Tensor::arange(0.0f64, 16.0, &Device::Cpu).unwrap().reshape((2, 8)).unwrap();
    let (values, log_det) = latents.constrain(&z).unwrap();
    assert_eq!(values.get("mu").unwrap().dims(), [2, 1]);
    assert_eq!(values.get("tau").unwrap().dims(), [2]);
    assert_eq!(values.get("theta").unwrap().dims(), [2, 2, 3]);
    assert_eq!(host(values.get("tau").unwrap()), [1f64.exp(), 9f64.exp()]);
    // log|d exp(u)/du| = u for tau; the real blocks add nothing
    assert_eq!(host(&log_det), [1.0, 9.0]);
}

#[test]
fn a_model_adds_the_jacobian_to_its_log_density() {
    let model = prior_model();
    let z = Tensor::new(&[[0.5f64, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25]], &Device::Cpu).unwrap();
    let got = host(&model.log_joint(&z).unwrap())[0];
    // −½ 0.25 − e⁻¹ + (−1) − ½ 0.0625
    let want = -0.125 - (-1f64).exp() - 1.0 - 0.03125;
    assert!((got - want).abs() < 1e-15, "{got} vs {want}");
    assert_eq!(model.dim(), 10);
    assert!(model.named_latents().is_some());
}

#[test]
fn initial_values_are_given_in_the_constrained_space() {
    let fit = advi().steps(0).init_value("tau", [2.0]).init_value("mu", [-3.0]).fit(&prior_model()).unwrap();
    let mean = host(&fit.mean().unwrap());
    assert_eq!(mean[0], -3.0);
    assert!((mean[1] - 2f64.ln()).abs() < 1e-15);
    assert!(mean[2..].iter().all(|&m| m == 0.0));
    // median of tau = exp(median of u) = 2 exactly in the limit; 1,000 draws of sd 0.1 in u
    let tau = fit.summary().get("tau").unwrap();
    assert!((tau.q50 - 2.0).abs() < 0.03, "{tau:?}");
}

#[test]
fn bad_initial_values_are_refused_by_name() {
    let model = prior_model();
    let (e, m) = message(advi().init_value("sigma", [1.0]).fit(&model));
    assert!(matches!(e, Error::UnknownLatent { .. }), "{e:?}");
    assert!(m.contains("`sigma`") && m.contains("mu, tau, theta"), "{m}");

    let (e, m) = message(advi().init_value("theta", [0.0; 7]).fit(&model));
    assert!(matches!(e, Error::InitValue { .. }), "{e:?}");
    assert!(m.contains("`theta`") && m.contains("7 values") && m.contains("[8]"), "{m}");

    let (e, m) = message(advi().init_value("tau", [-0.5]).fit(&model));
    assert!(matches!(e, Error::InitValue { .. }), "{e:?}");
    assert!(m.contains("`tau`") && m.contains("-0.5") && m.contains("positive"), "{m}");

    let (e, m) = message(advi().init_value("tau", [f64::NAN]).fit(&model));
    assert!(matches!(e, Error::InitValue { .. }), "{e:?}");
    assert!(m.contains("`tau`"), "{m}");
}

#[test]
fn an_undeclared_name_inside_the_model_is_an_unknown_latent() {
    let model = Latents::new().real("mu", [1]).model(|v| v.get("nu")?.sum(1));
    let (e, m) = message(advi().fit(&model));
    assert!(matches!(e, Error::UnknownLatent { .. }), "{e:?}");
    assert!(m.contains("`nu`") && m.contains("mu"), "{m}");
}

#[test]
fn a_log_density_that_is_not_finite_at_the_start_is_named() {
    // log(−tau) is NaN for every tau > 0: the declared constraint contradicts the model.
    let model = Latents::new().real("mu", [2]).positive("tau", ()).model(|v| {
        let mu = (v.get("mu")?.sqr()?.sum(1)? * -0.5)?;
        mu + v.get("tau")?.neg()?.log()?
    });
    let (e, m) = message(advi().fit(&model));
    assert!(matches!(e, Error::NonFiniteInit { .. }), "{e:?}");
    assert!(m.contains("initial mean") && m.contains("tau = 1.0000") && m.contains("mu[1] = 0.0000"), "{m}");

    // finite at the mean, but not at any draw around it: the coordinate is named with its block
    let narrow = Latents::new().real("mu", [2]).positive("tau", ()).model(|v| {
        let mu = (v.get("mu")?.sqr()?.sum(1)? * -0.5)?;
        let tau = v.get("tau")?;
        mu + (tau.ones_like()? * 1e-9 - (tau - 1.0)?.abs()?)?.log()? // NaN unless |tau − 1| < 1e-9
    });
    let (e, m) = message(advi().fit(&narrow));
    assert!(matches!(e, Error::NonFiniteInit { .. }), "{e:?}");
    assert!(m.contains("unconstrained `tau`") && !m.contains("unconstrained `mu`"), "{m}");

    // a plain LogJoint whose log density is −∞ at the initial mean
    let plain = elbo::from_fn(2, |z: &Tensor| z.sum(1)?.log());
    let (e, m) = message(advi().init_loc(vec![-1.0, -1.0]).fit(&plain));
    assert!(matches!(e, Error::NonFiniteInit { .. }), "{e:?}");
    assert!(m.contains("at the start"), "{m}");
}

#[test]
fn bad_declarations_are_refused_at_fit_time() {
    let twice = Latents::new().real("a", [1]).positive("a", [2]).model(|v| v.get("a")?.sum(1));
    let (e, m) = message(advi().fit(&twice));
    assert!(matches!(e, Error::InvalidLatent { .. }), "{e:?}");
    assert!(m.contains("`a`") && m.contains("twice"), "{m}");

    let empty = Latents::new().real("a", [1]).real("b", [0, 3]).model(|v| v.get("a")?.sum(1));
    let (e, m) = message(advi().fit(&empty));
    assert!(matches!(e, Error::InvalidLatent { .. }), "{e:?}");
    assert!(m.contains("`b`") && m.contains("[0, 3]"), "{m}");

    let bounds = Latents::new().add("p", [1], Bijector::Interval(1.0, 0.0)).model(|v| v.get("p")?.sum(1));
    let (e, m) = message(advi().fit(&bounds));
    assert!(matches!(e, Error::InvalidLatent { .. }), "{e:?}");
    assert!(m.contains("`p`"), "{m}");

    let nothing = Latents::new().model(|v| v.get("a")?.sum(1));
    let (e, _) = message(advi().fit(&nothing));
    assert!(matches!(e, Error::InvalidLatent { .. }), "{e:?}");
}

#[test]
fn summaries_and_draws_come_by_name_in_the_constrained_space() {
    let fit = advi().steps(0).init_value("tau", [1.5]).fit(&prior_model()).unwrap();
    let names: Vec<&str> = fit.summary().rows().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names[..3], ["mu", "tau", "theta[0]"]);
    assert_eq!(names.len(), 10);
    let printed = fit.to_string();
    assert!(printed.contains("parameter") && printed.contains("theta[7]") && printed.contains("95%"), "{printed}");

    let draws = fit.draws(500).unwrap();
    assert_eq!((draws.len(), draws.names().len()), (500, 10));
    let tau = draws.column("tau").unwrap();
    assert!(tau.iter().all(|&t| t > 0.0));
    // the same draws, transformed by hand from the unconstrained ones
    let z = host(&fit.sample(500).unwrap());
    for (i, t) in tau.iter().enumerate() {
        assert!((t - z[i * 10 + 1].exp()).abs() <= 1e-12 * t);
    }

    let dir = std::env::temp_dir().join(format!("elbo-latents-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    draws.save(dir.join("draws.csv")).unwrap();
    draws.save(dir.join("draws.json")).unwrap();
    let csv = std::fs::read_to_string(dir.join("draws.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 501);
    assert!(lines[0].starts_with("mu,tau,theta[0],"), "{}", lines[0]);
    let first: Vec<f64> = lines[1].split(',').map(|x| x.parse().unwrap()).collect();
    assert_eq!(first, draws.row(0)); // shortest round-trip formatting: exact
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("draws.json")).unwrap()).unwrap();
    let tau_json: Vec<f64> = json["tau"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(tau_json, tau);
    let (e, _) = message(draws.save(dir.join("draws.txt")));
    assert!(matches!(e, Error::InvalidConfig { name: "save", .. }), "{e:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_plain_log_joint_is_summarised_as_z() {
    let model = elbo::from_fn(3, |z: &Tensor| z.sqr()?.sum(1)? * -0.5);
    let fit = advi().steps(0).init_value("z", [1.0, 2.0, 3.0]).fit(&model).unwrap();
    assert_eq!(host(&fit.mean().unwrap()), [1.0, 2.0, 3.0]);
    let names: Vec<&str> = fit.summary().rows().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["z[0]", "z[1]", "z[2]"]);
}
