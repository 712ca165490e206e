//! Gradients of the ELBO estimators.
//!
//! - With ε fixed, the autodiff gradient of the ELBO estimate w.r.t. every family parameter
//!   matches central finite differences (f64, relative error < 1e-5), for both families, both
//!   scale links and both estimators, on a non-Gaussian model (logistic regression). For STL the
//!   differentiated function is λ ↦ mean[log p(z_λ) − log q_λ₀(z_λ)] with λ₀ frozen at the
//!   current point: the path derivative, by design not the derivative of STL's own value.
//! - The closed-form family gradient (`family::closed_form`: autodiff through the model only)
//!   equals autodiff through the whole estimate to 1e-10 (relative), for the same cases; its
//!   draws, entropy and log q of the noise equal the tensor versions; and whole ADVI runs with
//!   either gradient follow the same path (f64, 300 steps, both families, clipping, STL,
//!   scale-relative location steps, minibatches).
//! - Sticking the landing: when q equals a Gaussian target, log p(z) − log q(z) is the same for
//!   every z, so the STL gradient vanishes for every draw (< 1e-6), while the entropy-form
//!   estimator's gradient does not.

use crate::common::{gaussian_target, host};
use candle_core::Var;
use elbo::noise::{Noise, Stream};
use elbo::prelude::*;
use elbo::{FamilyGradient, FullRankGaussian, MeanFieldGaussian};
use elbo::{LocStep, Optimizer};
use elbo_models::{GaussianMixture, LogisticRegression};
use rand::{Rng, SeedableRng};

const D: usize = 4; // latent dimension: 3 weights + intercept

fn logistic_model() -> LogisticRegression {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let n = 40;
    let x: Vec<f64> = (0..n * (D - 1)).map(|_| rng.random_range(-2.0..2.0)).collect();
    let y: Vec<f64> = (0..n).map(|_| f64::from(rng.random_bool(0.4))).collect();
    let x = Tensor::from_vec(x, (n, D - 1), &Device::Cpu).unwrap();
    let y = Tensor::from_vec(y, n, &Device::Cpu).unwrap();
    LogisticRegression::new(&x, &y).unwrap()
}

fn noise(s: usize) -> Tensor {
    Noise::new(5, Stream::Optimise).standard_normal(s, D, DType::F64, &Device::Cpu).unwrap()
}

fn loc() -> Vec<f64> {
    vec![0.3, -0.7, 0.2, 0.5]
}

fn mean_field(link: ScaleLink) -> MeanFieldGaussian {
    MeanFieldGaussian::new(&loc(), &[0.4, 0.9, 0.25, 1.3], link, DType::F64, &Device::Cpu).unwrap()
}

fn full_rank(link: ScaleLink) -> FullRankGaussian {
    #[rustfmt::skip]
    let l = [
        0.5, 0.0, 0.0, 0.0,
        0.3, 0.8, 0.0, 0.0,
        -0.2, 0.1, 0.3, 0.0,
        0.4, -0.6, 0.2, 1.1,
    ];
    FullRankGaussian::new(&loc(), &l, link, DType::F64, &Device::Cpu).unwrap()
}

/// The function whose gradient the estimator computes, at q's current parameters; `frozen` is a
/// copy of q at the point of differentiation.
fn value<Q: VariationalFamily, M: LogJoint>(q: &Q, frozen: &Q, model: &M, eps: &Tensor, est: Estimator) -> f64 {
    let elbo = match est {
        Estimator::StickingTheLanding => {
            let z = q.rsample(eps).unwrap();
            (model.log_joint(&z).unwrap() - frozen.log_prob(&z).unwrap()).unwrap().mean_all().unwrap()
        }
        _ => est.estimate(q, model, eps, None).unwrap().elbo,
    };
    elbo.to_scalar::<f64>().unwrap()
}

fn set_entry(var: &Var, values: &[f64], i: usize, x: f64) {
    let mut v = values.to_vec();
    v[i] = x;
    var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()).unwrap();
}

/// max |autodiff − finite difference| / max |finite difference| for every parameter.
fn check_against_finite_differences<Q: VariationalFamily, M: LogJoint>(q: &Q, frozen: &Q, model: &M, est: Estimator) {
    let eps = noise(6);
    let grads = est.estimate(q, model, &eps, None).unwrap().elbo.backward().unwrap();
    let h = 1e-6;
    for (name, var) in q.params() {
        let autodiff = host(grads.get(var.as_tensor()).expect("every parameter gets a gradient"));
        let values = host(var.as_tensor());
        let mut fd = Vec::with_capacity(values.len());
        for i in 0..values.len() {
            set_entry(&var, &values, i, values[i] + h);
            let up = value(q, frozen, model, &eps, est);
            set_entry(&var, &values, i, values[i] - h);
            let down = value(q, frozen, model, &eps, est);
            set_entry(&var, &values, i, values[i]);
            fd.push((up - down) / (2.0 * h));
        }
        let scale = fd.iter().fold(0f64, |m, x| m.max(x.abs()));
        let err = autodiff.iter().zip(&fd).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 1e-3, "{name}: the gradient is trivially small ({scale}), the check would be empty");
        assert!(
            err / scale < 1e-5,
            "{} {name} ({est:?}): relative error {:.2e}\n  autodiff {autodiff:?}\n  finite diff {fd:?}",
            q.name(),
            err / scale
        );
    }
}

#[test]
fn mean_field_gradients_match_finite_differences() {
    let model = logistic_model();
    for link in [ScaleLink::Log, ScaleLink::Softplus] {
        for est in [Estimator::Entropy, Estimator::StickingTheLanding] {
            check_against_finite_differences(&mean_field(link), &mean_field(link), &model, est);
        }
    }
}

#[test]
fn full_rank_gradients_match_finite_differences() {
    let model = logistic_model();
    for link in [ScaleLink::Log, ScaleLink::Softplus] {
        for est in [Estimator::Entropy, Estimator::StickingTheLanding] {
            check_against_finite_differences(&full_rank(link), &full_rank(link), &model, est);
        }
    }
}

fn max_abs_grad<Q: VariationalFamily, M: LogJoint>(q: &Q, model: &M, est: Estimator) -> f64 {
    let grads = est.estimate(q, model, &noise(3), None).unwrap().elbo.backward().unwrap();
    q.params().iter().flat_map(|(_, v)| host(grads.get(v.as_tensor()).unwrap())).fold(0f64, |m, g| m.max(g.abs()))
}

/// With the target equal to q, STL's gradient vanishes for every draw; the entropy form's does not.
fn check_stl_at_optimum<Q: Gaussian>(q: &Q) {
    let target = gaussian_target(loc(), &host(&q.scale_tril().unwrap()));
    let stl = max_abs_grad(q, &target, Estimator::StickingTheLanding);
    let plain = max_abs_grad(q, &target, Estimator::Entropy);
    assert!(stl < 1e-6, "{} STL gradient at the optimum: {stl:e}", q.name());
    assert!(plain > 1e-2, "{} entropy-form gradient at the optimum: {plain:e} (expected noise)", q.name());
}

#[test]
fn sticking_the_landing_has_zero_gradient_at_the_exact_optimum() {
    check_stl_at_optimum(&full_rank(ScaleLink::Log));
    check_stl_at_optimum(&mean_field(ScaleLink::Softplus));
}

#[test]
fn log_prob_is_the_gaussian_density_and_matches_the_noise_shortcut() {
    let q = full_rank(ScaleLink::Softplus);
    let l = host(&q.scale_tril().unwrap());
    let target = gaussian_target(loc(), &l);
    let eps = noise(5);
    let z = q.rsample(&eps).unwrap();
    let by_solve = host(&q.log_prob(&z).unwrap());
    let by_noise = host(&q.log_prob_of_noise(&eps).unwrap());
    let exact = host(&target.log_joint(&z).unwrap());
    for s in 0..5 {
        assert!((by_solve[s] - exact[s]).abs() < 1e-10, "draw {s}: {} vs {}", by_solve[s], exact[s]);
        assert!((by_noise[s] - exact[s]).abs() < 1e-10, "draw {s}: {} vs {}", by_noise[s], exact[s]);
    }
    // entropy = −E[log q]: closed form against a Monte Carlo average over 20,000 draws
    let eps = Noise::new(9, Stream::Evaluate).standard_normal(20_000, D, DType::F64, &Device::Cpu).unwrap();
    let lq = host(&q.log_prob_of_noise(&eps).unwrap());
    let n = lq.len() as f64;
    let mc = -lq.iter().sum::<f64>() / n;
    let sd = (lq.iter().map(|x| (x + mc).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let h = q.entropy().unwrap().to_scalar::<f64>().unwrap();
    assert!((mc - h).abs() < 4.0 * sd / n.sqrt(), "entropy {h} vs Monte Carlo {mc} ± {}", sd / n.sqrt());
}

/// The closed-form gradient (the model differentiated once, with the draws as the leaf) against
/// autodiff through the whole estimate, with the same noise.
fn check_closed_form<Q: Gaussian, M: LogJoint>(q: &Q, model: &M, est: Estimator) {
    let eps = noise(3);
    let autodiff = est.estimate(q, model, &eps, None).unwrap().elbo.backward().unwrap();
    let hq = q.host_gaussian().unwrap().expect("the built-in families have a closed form");
    let eps_host = host(&eps);
    let (z_host, units) = hq.sample(&eps_host);
    let z_tensor = host(&q.rsample(&eps).unwrap());
    for (a, b) in z_host.iter().zip(&z_tensor) {
        assert!((a - b).abs() < 1e-14, "host draw {a} vs tensor draw {b}");
    }
    let entropy = q.entropy().unwrap().to_scalar::<f64>().unwrap();
    assert!((hq.entropy() - entropy).abs() < 1e-13, "entropy {} vs {entropy}", hq.entropy());
    let lq = host(&q.log_prob_of_noise(&eps).unwrap());
    for (s, e) in eps_host.chunks(D).enumerate() {
        assert!((hq.log_prob_of_noise(e) - lq[s]).abs() < 1e-13, "log q of draw {s}");
    }
    let z = Var::from_tensor(&Tensor::from_vec(z_host, (3, D), &Device::Cpu).unwrap()).unwrap();
    let dlogp = host(
        model.log_joint(z.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap().get(z.as_tensor()).unwrap(),
    );
    let closed = hq.elbo_gradient(&eps_host, &units, &dlogp, est);
    for ((name, var), closed) in q.params().iter().zip(&closed) {
        let auto = host(autodiff.get(var.as_tensor()).unwrap());
        let scale = auto.iter().fold(0f64, |m, x| m.max(x.abs()));
        let err = auto.iter().zip(closed).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 1e-3, "{name}: the gradient is trivially small ({scale})");
        assert!(
            err / scale < 1e-10,
            "{} {name} ({est:?}): relative error {:.2e}\n  autodiff {auto:?}\n  closed form {closed:?}",
            q.name(),
            err / scale
        );
    }
}

#[test]
fn closed_form_family_gradients_equal_autodiff() {
    let model = logistic_model();
    for link in [ScaleLink::Log, ScaleLink::Softplus] {
        for est in [Estimator::Entropy, Estimator::StickingTheLanding] {
            check_closed_form(&mean_field(link), &model, est);
            check_closed_form(&full_rank(link), &model, est);
        }
    }
}

/// q's parameters after 300 steps with each family gradient.
fn path<F: Family, M: LogJoint>(advi: Advi<F>, model: &M) -> [Vec<f64>; 2] {
    let run = |how| {
        let fit = advi.clone().family_gradient(how).fit(model).unwrap();
        fit.q().params().iter().flat_map(|(_, v)| host(v.as_tensor())).collect::<Vec<f64>>()
    };
    [run(FamilyGradient::ClosedForm), run(FamilyGradient::Autodiff)]
}

#[test]
fn closed_form_and_autodiff_fits_follow_the_same_path() {
    let model = logistic_model();
    let mixture = GaussianMixture::simulate(2, 2, 60, 1).unwrap().0; // a model with minibatches
    fn base<F: Family>(advi: Advi<F>) -> Advi<F> {
        advi.dtype(DType::F64).stop(StopRule::MaxSteps).steps(300).lr(0.05).samples(2).seed(4).elbo_draws(10)
    }
    let runs = [
        path(base(Advi::new(MeanField)), &model),
        path(base(Advi::new(FullRank)), &model),
        path(
            base(Advi::new(FullRank)).estimator(Estimator::StickingTheLanding).scale_link(ScaleLink::Softplus),
            &model,
        ),
        path(base(Advi::new(MeanField)).clip_grad_norm(0.5).loc_step(LocStep::ScaleRelative), &model),
        path(base(Advi::new(FullRank)).batch(10).optimizer(Optimizer::sgd(0.002)), &mixture),
    ];
    for (k, [closed, auto]) in runs.iter().enumerate() {
        let moved = closed.iter().zip(&auto[..]).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(moved < 1e-9, "run {k}: the paths differ by {moved:e}\n  {closed:?}\n  {auto:?}");
    }
}
