//! `elbo_models::posteriordb`: every posterior's log density against a plain f64 computation
//! written here from model.md (straight loops, statrs densities), in f64 and f32; the constraint
//! layout and the Jacobians elbo adds against Stan's; the autodiff gradients of the two models with
//! a reassociated recursion (ARMA's scan, the HMM's pairwise product) against central differences;
//! and `Reference::compare` on summaries whose answer is known.
//!
//! The data are the repository's own copy, `models/data/posteriordb/`.

use std::path::PathBuf;

use candle_core::Var;
use elbo::prelude::*;
use elbo::Draws;
use elbo_models::posteriordb::{stan_name, Posterior, Quality, Reference, ReferenceRow};
use serde_json::Value;
use statrs::distribution::{Beta, Cauchy, Continuous, Exp, Normal};
use statrs::function::gamma::ln_gamma;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/posteriordb")
}

/// The posterior's data.json, read independently of the models' reader.
fn data(p: Posterior) -> Value {
    let text = std::fs::read_to_string(dir().join(p.name()).join("data.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn vector(d: &Value, key: &str) -> Vec<f64> {
    d[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

fn normal(x: f64, mean: f64, sd: f64) -> f64 {
    Normal::new(mean, sd).unwrap().ln_pdf(x)
}

fn half_cauchy(x: f64, scale: f64) -> f64 {
    std::f64::consts::LN_2 + Cauchy::new(0.0, scale).unwrap().ln_pdf(x)
}

fn half_normal(x: f64, scale: f64) -> f64 {
    std::f64::consts::LN_2 + normal(x, 0.0, scale)
}

fn log_sum_exp(x: &[f64]) -> f64 {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// A constrained point by Stan's element names.
type Point = Vec<(String, f64)>;

fn at(point: &Point, name: &str) -> f64 {
    point.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no `{name}` in the point")).1
}

/// Σ_i ln N(y_i | Σ_j β_j x_ij, σ) with X given by its columns.
fn regression(y: &[f64], columns: &[Vec<f64>], beta: &[f64], sigma: f64) -> f64 {
    (0..y.len())
        .map(|i| {
            let eta: f64 = columns.iter().zip(beta).map(|(c, b)| c[i] * b).sum();
            normal(y[i], eta, sigma)
        })
        .sum()
}

fn betas(point: &Point, k: usize) -> Vec<f64> {
    (1..=k).map(|j| at(point, &format!("beta[{j}]"))).collect()
}

/// The Stan model's log density (no Jacobian) at a constrained point, in plain f64 from
/// model.md.
fn plain_log_density(p: Posterior, point: &Point) -> f64 {
    let d = data(p);
    let n = |key: &str| d[key].as_u64().unwrap() as usize;
    match p {
        Posterior::Earnings => {
            let ones = vec![1.0; n("N")];
            regression(&vector(&d, "earn"), &[ones, vector(&d, "height")], &betas(point, 2), at(point, "sigma"))
        }
        Posterior::Kidiq => {
            let (hs, iq) = (vector(&d, "mom_hs"), vector(&d, "mom_iq"));
            let inter: Vec<f64> = hs.iter().zip(&iq).map(|(h, q)| h * q).collect();
            let sigma = at(point, "sigma");
            let columns = [vec![1.0; n("N")], hs, iq, inter];
            half_cauchy(sigma, 2.5) + regression(&vector(&d, "kid_score"), &columns, &betas(point, 4), sigma)
        }
        Posterior::Ark => {
            let (k, y) = (n("K"), vector(&d, "y"));
            let (alpha, beta, sigma) = (at(point, "alpha"), betas(point, k), at(point, "sigma"));
            let mut lp = normal(alpha, 0.0, 10.0) + half_cauchy(sigma, 2.5);
            lp += beta.iter().map(|&b| normal(b, 0.0, 10.0)).sum::<f64>();
            for t in k..y.len() {
                let mean = alpha + (0..k).map(|j| beta[j] * y[t - j - 1]).sum::<f64>();
                lp += normal(y[t], mean, sigma);
            }
            lp
        }
        Posterior::Arma => {
            let y = vector(&d, "y");
            let (mu, phi, theta, sigma) = (at(point, "mu"), at(point, "phi"), at(point, "theta"), at(point, "sigma"));
            let mut lp = normal(mu, 0.0, 10.0) + normal(phi, 0.0, 2.0) + normal(theta, 0.0, 2.0);
            lp += half_cauchy(sigma, 2.5);
            let mut err = y[0] - (mu + phi * mu);
            lp += normal(err, 0.0, sigma);
            for t in 1..y.len() {
                err = y[t] - (mu + phi * y[t - 1] + theta * err);
                lp += normal(err, 0.0, sigma);
            }
            lp
        }
        Posterior::Hmm => {
            let (u, v) = (vector(&d, "u"), vector(&d, "v"));
            let alpha: Vec<Vec<f64>> = d["alpha"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
                .collect();
            let theta =
                [[at(point, "theta1[1]"), at(point, "theta1[2]")], [at(point, "theta2[1]"), at(point, "theta2[2]")]];
            let phi = [at(point, "phi[1]"), at(point, "phi[2]")];
            let lambda = [at(point, "lambda[1]"), at(point, "lambda[2]")];
            let mut lp = 0.0;
            for j in 0..2 {
                let a = &alpha[j];
                lp += ln_gamma(a[0] + a[1]) - ln_gamma(a[0]) - ln_gamma(a[1]);
                lp += (a[0] - 1.0) * theta[j][0].ln() + (a[1] - 1.0) * theta[j][1].ln();
            }
            lp += normal(phi[0], 0.0, 1.0) + normal(phi[1], 3.0, 1.0);
            lp += normal(lambda[0], 0.0, 1.0) + normal(lambda[1], 3.0, 1.0);
            let emission =
                |t: usize, k: usize| Exp::new(phi[k]).unwrap().ln_pdf(u[t]) + Exp::new(lambda[k]).unwrap().ln_pdf(v[t]);
            let mut gamma = [emission(0, 0), emission(0, 1)];
            for t in 1..u.len() {
                let next = |k: usize| {
                    log_sum_exp(&[
                        gamma[0] + theta[0][k].ln() + emission(t, k),
                        gamma[1] + theta[1][k].ln() + emission(t, k),
                    ])
                };
                gamma = [next(0), next(1)];
            }
            lp + log_sum_exp(&gamma)
        }
        Posterior::GaussMix => {
            let y = vector(&d, "y");
            let mu = [at(point, "mu[1]"), at(point, "mu[2]")];
            let sigma = [at(point, "sigma[1]"), at(point, "sigma[2]")];
            let theta = at(point, "theta");
            let mut lp = Beta::new(5.0, 5.0).unwrap().ln_pdf(theta);
            lp += (0..2).map(|k| normal(mu[k], 0.0, 2.0) + half_normal(sigma[k], 2.0)).sum::<f64>();
            for &yn in &y {
                let first = theta.ln() + normal(yn, mu[0], sigma[0]);
                let second = (1.0 - theta).ln() + normal(yn, mu[1], sigma[1]);
                lp += log_sum_exp(&[first, second]);
            }
            lp
        }
        Posterior::Mesquite => {
            let (d1, d2, ch) = (vector(&d, "diam1"), vector(&d, "diam2"), vector(&d, "canopy_height"));
            let (th, group, w) = (vector(&d, "total_height"), vector(&d, "group"), vector(&d, "weight"));
            let rows = n("N");
            let volume: Vec<f64> = (0..rows).map(|i| (d1[i] * d2[i] * ch[i]).ln()).collect();
            let area: Vec<f64> = (0..rows).map(|i| (d1[i] * d2[i]).ln()).collect();
            let shape: Vec<f64> = (0..rows).map(|i| (d1[i] / d2[i]).ln()).collect();
            let height: Vec<f64> = th.iter().map(|h| h.ln()).collect();
            let log_weight: Vec<f64> = w.iter().map(|x| x.ln()).collect();
            let columns = [vec![1.0; rows], volume, area, shape, height, group];
            regression(&log_weight, &columns, &betas(point, 6), at(point, "sigma"))
        }
        Posterior::Nes => {
            let age = vector(&d, "age_discrete");
            let dummy = |g: f64| age.iter().map(|&a| if a == g { 1.0 } else { 0.0 }).collect::<Vec<f64>>();
            let columns = [
                vec![1.0; n("N")],
                vector(&d, "real_ideo"),
                vector(&d, "race_adj"),
                dummy(2.0),
                dummy(3.0),
                dummy(4.0),
                vector(&d, "educ1"),
                vector(&d, "gender"),
                vector(&d, "income"),
            ];
            regression(&vector(&d, "partyid7"), &columns, &betas(point, 9), at(point, "sigma"))
        }
    }
}

/// Stan's log-Jacobian of the constraining transforms at a constrained point (model.md's
/// "Unconstrained space").
fn stan_log_jacobian(p: Posterior, point: &Point) -> f64 {
    let ln = |name: &str| at(point, name).ln();
    match p {
        Posterior::Hmm => {
            ln("theta1[1]")
                + ln("theta1[2]")
                + ln("theta2[1]")
                + ln("theta2[2]")
                + ln("phi[1]")
                + (at(point, "phi[2]") - at(point, "phi[1]")).ln()
                + ln("lambda[1]")
                + (at(point, "lambda[2]") - at(point, "lambda[1]")).ln()
        }
        Posterior::GaussMix => {
            (at(point, "mu[2]") - at(point, "mu[1]")).ln()
                + ln("sigma[1]")
                + ln("sigma[2]")
                + ln("theta")
                + (1.0 - at(point, "theta")).ln()
        }
        _ => ln("sigma"),
    }
}

/// Three constrained points: the reference means, and the means moved by +0.7 and −1.2 sd
/// (alternating in sign and halved on every other element), with each simplex's last entry one
/// minus the first.
fn points(p: Posterior) -> Vec<Point> {
    let reference = p.reference(&dir()).unwrap();
    [0.0, 0.7, -1.2]
        .into_iter()
        .map(|c| {
            let mut point: Point = reference
                .rows()
                .iter()
                .enumerate()
                .map(|(j, r)| (r.name.clone(), r.mean + c * if j % 2 == 0 { 1.0 } else { -0.5 } * r.sd))
                .collect();
            for simplex in ["theta1", "theta2"] {
                let first = point.iter().find(|(n, _)| *n == format!("{simplex}[1]")).map(|e| e.1);
                if let Some(first) = first {
                    point.iter_mut().find(|(n, _)| *n == format!("{simplex}[2]")).unwrap().1 = 1.0 - first;
                }
            }
            point
        })
        .collect()
}

/// The unconstrained z `[1, D]` of a constrained point (each block through `Latents::unconstrain`).
fn unconstrained(latents: &elbo::Latents, point: &Point, dtype: DType) -> Tensor {
    let mut z = Vec::new();
    for block in latents.blocks() {
        let values: Vec<f64> = block.element_names().iter().map(|n| at(point, &stan_name(n))).collect();
        z.extend(latents.unconstrain(block.name(), &values).unwrap());
    }
    let d = z.len();
    Tensor::from_vec(z, (1, d), &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

/// The constrained point the model actually saw (after the bijectors, in the model's dtype), by
/// Stan's names.
fn seen(latents: &elbo::Latents, values: &Values<'_>) -> Point {
    latents
        .blocks()
        .iter()
        .flat_map(|block| {
            let v: Vec<f64> = values
                .get(block.name())
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            block.element_names().into_iter().map(|n| stan_name(&n)).zip(v).collect::<Vec<_>>()
        })
        .collect()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()[0]
}

/// Every model's log density against the plain f64 one at three points: to 1e-9 relative in f64
/// (both sum ~10³ terms in another order; the HMM and ARMA also reassociate their recursions:
/// measured ≲ 5e-15), and in f32 to 1e-5 relative at the f32 values the model saw (f32's rounding,
/// 6e-8 per operation, over up to 1,192 terms and a 416-step product: measured ≲ 6e-7).
#[test]
fn log_densities_match_plain_f64_computations() {
    for p in Posterior::ALL {
        let model = p.model(&dir()).unwrap();
        let latents = model.latents();
        for point in points(p) {
            for (dtype, tol) in [(DType::F64, 1e-9), (DType::F32, 1e-5)] {
                let z = unconstrained(latents, &point, dtype);
                let (values, _) = latents.constrain(&z).unwrap();
                let got = scalar(&model.log_density(&values).unwrap());
                let want = plain_log_density(p, &seen(latents, &values));
                assert!(want.is_finite(), "{p}: the plain log density is {want}");
                let err = (got - want).abs() / want.abs().max(1.0);
                assert!(err < tol, "{p} {dtype:?}: model {got}, plain {want} (relative error {err:.2e})");
            }
        }
    }
}

/// The unconstrained dimension of each posterior (model.md's "Dimension"), the element names
/// mapped onto the reference's, and the log-Jacobian elbo adds equal to Stan's.
#[test]
fn layouts_and_jacobians_are_stan_s() {
    let dims = [
        (Posterior::Earnings, 3, 3),
        (Posterior::Kidiq, 5, 5),
        (Posterior::Ark, 7, 7),
        (Posterior::Arma, 4, 4),
        (Posterior::Hmm, 6, 8),
        (Posterior::GaussMix, 5, 5),
        (Posterior::Mesquite, 7, 7),
        (Posterior::Nes, 10, 10),
    ];
    for (p, dim, elements) in dims {
        let model = p.model(&dir()).unwrap();
        let latents = model.latents();
        assert_eq!(model.dim(), dim, "{p}: unconstrained dimension");
        let mut names: Vec<String> = latents.element_names().iter().map(|n| stan_name(n)).collect();
        assert_eq!(names.len(), elements, "{p}: elements");
        let mut reference: Vec<String> = p.reference(&dir()).unwrap().rows().iter().map(|r| r.name.clone()).collect();
        names.sort();
        reference.sort();
        assert_eq!(names, reference, "{p}: element names");
        for point in points(p) {
            let z = unconstrained(latents, &point, DType::F64);
            let (values, log_det) = latents.constrain(&z).unwrap();
            let joint = scalar(&model.log_joint(&z).unwrap());
            let density = scalar(&model.log_density(&values).unwrap());
            let stan = stan_log_jacobian(p, &seen(latents, &values));
            assert!((scalar(&log_det) - stan).abs() < 1e-9 * stan.abs().max(1.0), "{p}: log|J| {log_det} vs {stan}");
            assert!((joint - density - stan).abs() < 1e-9 * joint.abs().max(1.0), "{p}: log joint − log density");
        }
    }
}

/// ARMA's scan and the HMM's pairwise product are differentiated by autodiff: the gradient of the
/// log joint against central differences in f64, at the three points (h = 1e-5 · max(1, |z|):
/// truncation ~h² |f'''|, rounding ~1e-16 |f| / h, both below 1e-5 of the gradient's scale here).
#[test]
fn reassociated_recursions_have_the_finite_difference_gradient() {
    for p in [Posterior::Arma, Posterior::Hmm] {
        let model = p.model(&dir()).unwrap();
        for point in points(p) {
            let z = unconstrained(model.latents(), &point, DType::F64);
            let var = Var::from_tensor(&z).unwrap();
            let grads = model.log_joint(var.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
            let grad: Vec<f64> = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let z0: Vec<f64> = z.flatten_all().unwrap().to_vec1().unwrap();
            let f = |z: &[f64]| {
                scalar(&model.log_joint(&Tensor::from_slice(z, (1, z.len()), &Device::Cpu).unwrap()).unwrap())
            };
            let scale = grad.iter().fold(1.0f64, |m, g| m.max(g.abs()));
            for i in 0..z0.len() {
                let h = 1e-5 * z0[i].abs().max(1.0);
                let (mut up, mut down) = (z0.clone(), z0.clone());
                up[i] += h;
                down[i] -= h;
                let fd = (f(&up) - f(&down)) / (2.0 * h);
                assert!((fd - grad[i]).abs() < 1e-5 * scale, "{p}: ∂/∂z[{i}] autodiff {} vs differences {fd}", grad[i]);
            }
        }
    }
}

fn row(name: &str, mean: f64, sd: f64) -> ReferenceRow {
    ReferenceRow { name: name.into(), mean, sd, q5: f64::NAN, q50: mean, q95: f64::NAN }
}

/// Two draws of beta [2] and sigma: beta[0] ∈ {1, 3}, beta[1] ∈ {−1, 1}, sigma ∈ {1, 3}, so every
/// element has sd √2, and means 2, 0, 2.
fn two_draws() -> elbo::Summary {
    let latents = elbo::Latents::new().real("beta", [2]).positive("sigma", ());
    let z = Tensor::new(&[[1.0f64, -1.0, 0.0], [3.0, 1.0, 3f64.ln()]], &Device::Cpu).unwrap();
    Draws::from_unconstrained(&latents, &z).unwrap().summary()
}

#[test]
fn compare_maps_names_one_based_and_measures_means_and_sds() {
    let r2 = 2f64.sqrt();
    // beta[1]: z = (2 − 2.5)/√2, ratio 1; beta[2]: z = 0, ratio 1/2; sigma: z = 0, ratio 1.5
    let reference = Reference::new(
        vec![row("beta[1]", 2.5, r2), row("beta[2]", 0.0, 2.0 * r2), row("sigma", 2.0, r2 / 1.5)],
        "test",
    )
    .unwrap();
    let c = reference.compare(&two_draws()).unwrap();
    let names: Vec<&str> = c.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["beta[1]", "beta[2]", "sigma"]);
    assert!((c.rows[0].z + 0.5 / r2).abs() < 1e-12);
    assert!((c.max_abs_z - 0.5 / r2).abs() < 1e-12);
    assert!((c.rows[2].sd_ratio - 1.5).abs() < 1e-12);
    // |ln 0.5| > |ln 1.5|: the worst ratio is the halved sd
    assert!((c.worst_sd_ratio - 0.5).abs() < 1e-12, "{}", c.worst_sd_ratio);
    assert_eq!(c.quality(), Quality::Gross);

    // within 1.5× and |z| < 0.5: moderate; everything exact: accurate
    let moderate =
        Reference::new(vec![row("beta[1]", 2.5, r2), row("beta[2]", 0.0, r2 * 1.2), row("sigma", 2.0, r2)], "test")
            .unwrap();
    assert_eq!(moderate.compare(&two_draws()).unwrap().quality(), Quality::Moderate);
    let exact =
        Reference::new(vec![row("beta[1]", 2.0, r2), row("beta[2]", 0.0, r2), row("sigma", 2.0, r2)], "test").unwrap();
    let c = exact.compare(&two_draws()).unwrap();
    assert!(c.max_abs_z < 1e-12 && (c.worst_sd_ratio - 1.0).abs() < 1e-12);
    assert_eq!(c.quality(), Quality::Accurate);
}

#[test]
fn compare_names_the_elements_that_do_not_match() {
    // 0-based names in the reference do not match: elbo's beta[0] is Stan's beta[1]
    let wrong =
        Reference::new(vec![row("beta[0]", 2.0, 1.0), row("beta[1]", 0.0, 1.0), row("sigma", 2.0, 1.0)], "ref.json")
            .unwrap();
    let e = wrong.compare(&two_draws()).unwrap_err().to_string();
    assert!(e.contains("ref.json") && e.contains("beta[2]"), "{e}");
    let extra = Reference::new(
        vec![row("beta[1]", 2.0, 1.0), row("beta[2]", 0.0, 1.0), row("sigma", 2.0, 1.0), row("tau", 1.0, 1.0)],
        "ref.json",
    )
    .unwrap();
    let e = extra.compare(&two_draws()).unwrap_err().to_string();
    assert!(e.contains("`tau`"), "{e}");
    assert!(Reference::new(vec![row("sigma", 2.0, 0.0)], "ref.json").is_err(), "an sd of 0 is refused");
}

#[test]
fn names_and_missing_folders_are_reported() {
    for p in Posterior::ALL {
        assert_eq!(Posterior::from_name(p.name()).unwrap(), p);
        assert_eq!(Posterior::from_name(p.short_name()).unwrap(), p);
    }
    assert_eq!(Posterior::from_name("bball_drive_event_0").unwrap(), Posterior::Hmm);
    let e = Posterior::from_name("radon").unwrap_err().to_string();
    assert!(e.contains("radon") && e.contains("earnings-earn_height"), "{e}");
    let missing = std::env::temp_dir().join("no-such-posteriordb-folder");
    let e = Posterior::Ark.model(&missing).err().expect("a missing folder is an error").to_string();
    assert!(e.contains("no-such-posteriordb-folder") && e.contains("models/data/posteriordb"), "{e}");
}
