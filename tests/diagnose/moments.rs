//! The PSIS-reweighted moments against q's own recover a known error within their reported Monte
//! Carlo error, and that error is the spread of the estimates over independent sets of draws; the
//! KL estimate log p̂(x) − ELBO recovers the closed form.
//!
//! For q = N(0, 1) and p = N(0.2, 1) the weights are exp(0.2 z − 0.02): q's mean is 0.2 posterior
//! sd too low (mean_shift = (m_q − m_p) / sd_p = −0.2), its sd exact, KL(q ‖ p) = 0.2² / 2 = 0.02.
//! For q = N(0, 0.8²) and p = N(0, 1): the sd ratio is 0.8, KL = ½ (0.64 − 1 − ln 0.64) = 0.0431,
//! and k = 1 − 0.64 = 0.36, so the weights still have a finite variance.

use crate::targets::{Target, DRAWS};

fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    (m, (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt())
}

/// 40 assessments of `q_sd` × the unit normal shifted to `p_mean`; (mean_shift, sd_ratio, kl)
/// each as (estimates, reported se).
#[allow(clippy::type_complexity)]
fn estimates(p_mean: f64, q_sd: f64) -> [(Vec<f64>, Vec<f64>); 3] {
    let target = Target::ar1("N(p_mean, 1)", vec![p_mean], &[1.0], 0.0);
    let q = target.q(&[-p_mean], &[q_sd]);
    let model = target.model();
    let mut out: [(Vec<f64>, Vec<f64>); 3] = Default::default();
    for seed in 0..40 {
        let d = elbo::report::assess(&q, &model, DRAWS, seed).unwrap();
        let m = d.moments.unwrap();
        for (k, (v, se)) in [(m.mean_shift[0], m.mean_shift_se[0]), (m.sd_ratio[0], m.sd_ratio_se[0]), (d.kl, d.kl_se)]
            .into_iter()
            .enumerate()
        {
            out[k].0.push(v);
            out[k].1.push(se);
        }
    }
    out
}

/// Every estimate within 3.5 reported se of the truth (40 of them: a normal error beyond 3.5 sd
/// has probability 2e-2 over 40), their mean within 3 se of the mean, and the reported se within
/// ±40 % of the estimates' sd (the sd of an sd from 40 draws is 11 %).
fn check(name: &str, (values, ses): &(Vec<f64>, Vec<f64>), truth: f64) {
    let (mean, sd) = mean_sd(values);
    let (se, _) = mean_sd(ses);
    for (v, s) in values.iter().zip(ses) {
        assert!((v - truth).abs() < 3.5 * s, "{name}: {v} ± {s}, truth {truth}");
    }
    assert!((mean - truth).abs() < 3.0 * sd / (values.len() as f64).sqrt(), "{name}: mean {mean}, truth {truth}");
    assert!((se / sd - 1.0).abs() < 0.4, "{name}: reported se {se}, measured sd {sd}");
}

#[test]
fn reweighting_recovers_a_known_shift_within_its_error() {
    let [shift, ratio, kl] = estimates(0.2, 1.0);
    check("mean shift", &shift, -0.2);
    check("sd ratio", &ratio, 1.0);
    check("KL", &kl, 0.02);
}

#[test]
fn reweighting_recovers_a_narrow_sd_within_its_error() {
    let [shift, ratio, kl] = estimates(0.0, 0.8);
    check("mean shift", &shift, 0.0);
    check("sd ratio", &ratio, 0.8);
    check("KL", &kl, 0.5 * (0.64 - 1.0 - 0.64f64.ln()));
}

#[test]
fn an_exact_q_has_no_error_at_all() {
    // constant log ratios: uniform weights, so the reweighted moments are q's own to rounding
    let target = Target::ar1("N(3, 0.5²)", vec![3.0], &[0.5], 0.0);
    let d = elbo::report::assess(&target.exact(), &target.model(), DRAWS, 0).unwrap();
    let m = d.moments.as_ref().unwrap();
    assert!(m.mean_shift[0].abs() < 1e-9 && (m.sd_ratio[0] - 1.0).abs() < 1e-9, "{}: {m:?}", target.name);
    assert!((m.mean[0] - 3.0).abs() < 0.05 && (m.sd[0] - 0.5).abs() < 0.05, "{m:?}");
    assert!(d.kl.abs() < 1e-9 && d.log_evidence.abs() < 1e-9 && (d.ess - DRAWS as f64).abs() < 1e-6, "{d:?}");
}
