//! Importance-sampling diagnostics of a fitted q: Pareto-smoothed importance sampling (PSIS),
//! its shape estimate k̂ with its spread (Yao et al. 2018; Vehtari et al. 2024), the PSIS estimate
//! of the log evidence and of KL(q ‖ p), and the [`Diagnostics`] that gather them with the
//! reweighted moments ([`Moments`]) behind the [`Verdict`].
//!
//! ```text
//! log rᵢ = log p(x, zᵢ) − log q(zᵢ),  zᵢ ~ q  (i = 1..S)
//! tail: the M = ⌈min(0.2 S, 3 √S)⌉ largest rᵢ, minus the cutoff u (the largest rᵢ below them),
//!       fitted by a generalised Pareto GP(k, σ) (Zhang & Stephens 2009, shrunk towards k = 0.5
//!       with weight 10); the tail is replaced by the GP quantiles u + F⁻¹((j − ½) / M), and every
//!       weight is truncated at the largest raw one.
//! se(k̂) ≈ (1 + k̂) / √M · M / (M + 10)                  (k̂ spreads like S^(−1/4): M ∝ √S)
//! log p̂(x) = log (1/S Σ w̃ᵢ),   s.e. ≈ sd(w̃) / (√S · mean(w̃))   (delta method; honest only for
//!                                                                  small k̂)
//! KL(q ‖ p) = log p(x) − ELBO ≈ log p̂(x) − 1/S Σ log rᵢ
//! ```

pub use super::moments::{Moments, Worst};
pub use super::verdict::{Advice, Verdict};

/// The result of Pareto smoothing a set of log importance ratios.
#[derive(Clone, Debug)]
pub struct Psis {
    /// The generalised-Pareto shape k̂ of the upper tail: ∞ when it cannot be estimated (NaN or
    /// +∞ ratios, too few draws), −∞ when the largest ratios are all equal (bounded weights).
    pub k_hat: f64,
    /// Its standard error, (1 + k̂) / √M · M / (M + 10) for M = `tail_len` (0 when the tail is
    /// flat, ∞ with k̂).
    pub k_hat_se: f64,
    /// The smoothed log weights, in the order of the input.
    pub log_weights: Vec<f64>,
    /// How many of the largest ratios formed the tail.
    pub tail_len: usize,
}

/// The standard error of k̂ from a tail of `m` ratios: the maximum-likelihood asymptotics of the
/// generalised Pareto shape, sd ≈ (1 + k) / √m (regular for k > −½; taken at k = 0 below it),
/// shrunk like k̂ by the prior's weight of 10 (`gpd_fit`); checked against k̂'s spread over
/// independent sets of draws in `tests/diagnose/psis.rs` (figures in benches/README.md, "The
/// verdict").
fn k_hat_se(k: f64, m: usize) -> f64 {
    let m = m as f64;
    (1.0 + k.max(0.0)) / m.sqrt() * m / (m + 10.0)
}

/// The spread of the largest log ratios below which they count as equal: the tail's weights
/// then differ by less than 0.01 %. An exact q computed in f32 gives log ratios of a few hundred
/// nats that agree to about 1e-5 (f32 rounding), which a Pareto fit would read as a heavy tail.
const FLAT_TAIL: f64 = 1e-4;

/// Pareto-smooths the log importance ratios `log_ratios` (at least 2 draws; values must not be NaN
/// or +∞, −∞ is a zero weight).
pub fn psis(log_ratios: &[f64]) -> Psis {
    let s = log_ratios.len();
    let bad = log_ratios.iter().any(|x| x.is_nan() || *x == f64::INFINITY);
    let tail_len = ((0.2 * s as f64).min(3.0 * (s as f64).sqrt())).ceil() as usize;
    if bad || tail_len < 5 || tail_len >= s {
        return Psis { k_hat: f64::INFINITY, k_hat_se: f64::INFINITY, log_weights: log_ratios.to_vec(), tail_len: 0 };
    }
    let max = log_ratios.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut lw: Vec<f64> = log_ratios.iter().map(|x| x - max).collect();
    let mut order: Vec<usize> = (0..s).collect();
    order.sort_by(|&a, &b| lw[a].total_cmp(&lw[b]));
    let tail_ids = &order[s - tail_len..];
    let cutoff = lw[order[s - tail_len - 1]];
    let (lo, hi) = (lw[tail_ids[0]], lw[tail_ids[tail_len - 1]]);
    // The largest ratios all equal (up to f32 rounding): the weights are bounded, the best case
    // (k̂ = −∞). A Pareto fit to rounding noise would say anything.
    let flat = hi - lo <= FLAT_TAIL;
    let mut k_hat = if flat { f64::NEG_INFINITY } else { f64::INFINITY };
    if !flat && cutoff.is_finite() {
        let exp_cutoff = cutoff.exp();
        let exceedances: Vec<f64> = tail_ids.iter().map(|&i| lw[i].exp() - exp_cutoff).collect();
        let (k, sigma) = gpd_fit(&exceedances);
        if k.is_finite() && sigma > 0.0 {
            k_hat = k;
            for (j, &i) in tail_ids.iter().enumerate() {
                let p = (j as f64 + 0.5) / tail_len as f64;
                lw[i] = (gpd_quantile(p, k, sigma) + exp_cutoff).ln();
            }
        }
    }
    let log_weights = lw.iter().map(|x| x.min(0.0) + max).collect();
    let k_hat_se = if flat { 0.0 } else { k_hat_se(k_hat, tail_len) };
    Psis { k_hat, k_hat_se, log_weights, tail_len }
}

/// Fits a generalised Pareto distribution to positive exceedances `x` sorted ascending
/// (Zhang & Stephens 2009, profile likelihood over a grid of θ = −k/σ, with the weakly
/// informative adjustment of k towards 0.5); returns (k, σ).
fn gpd_fit(x: &[f64]) -> (f64, f64) {
    let n = x.len();
    let nf = n as f64;
    let prior = 3.0;
    let m = 30 + (nf.sqrt() as usize);
    let x_star = x[((nf / 4.0 + 0.5).floor() as usize).max(1) - 1];
    let theta: Vec<f64> =
        (1..=m).map(|j| 1.0 / x[n - 1] + (1.0 - (m as f64 / (j as f64 - 0.5)).sqrt()) / prior / x_star).collect();
    let profile: Vec<f64> = theta
        .iter()
        .map(|&t| {
            let k = x.iter().map(|xi| (-t * xi).ln_1p()).sum::<f64>() / nf;
            nf * ((-t / k).ln() - k - 1.0)
        })
        .collect();
    let top = profile.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = profile.iter().map(|l| (l - top).exp()).collect();
    let total: f64 = weights.iter().sum();
    let theta_hat: f64 = theta.iter().zip(&weights).map(|(t, w)| t * w).sum::<f64>() / total;
    let k = x.iter().map(|xi| (-theta_hat * xi).ln_1p()).sum::<f64>() / nf;
    let sigma = -k / theta_hat;
    let a = 10.0;
    let k = k * nf / (nf + a) + a * 0.5 / (nf + a);
    (if k.is_nan() { f64::INFINITY } else { k }, sigma)
}

/// F⁻¹(p) of GP(k, σ): σ · ((1 − p)^(−k) − 1) / k.
fn gpd_quantile(p: f64, k: f64, sigma: f64) -> f64 {
    if k.abs() < 1e-12 {
        -sigma * (-p).ln_1p()
    } else {
        sigma * (-k * (-p).ln_1p()).exp_m1() / k
    }
}

/// PSIS diagnostics of q from log importance ratios on fresh draws: k̂ with its spread, the
/// log evidence, KL(q ‖ p), and (from the draws themselves) the reweighted moments against q's.
#[derive(Clone, Debug)]
pub struct Diagnostics {
    /// The Pareto shape k̂.
    pub k_hat: f64,
    /// Its standard error, (1 + k̂) / √M · M / (M + 10) for a tail of M ratios (the maximum
    /// likelihood asymptotics with the prior's weight of 10; for k̂ < 0 as if k̂ = 0).
    pub k_hat_se: f64,
    /// The PSIS estimate of log p(x).
    pub log_evidence: f64,
    /// Its standard error (delta method; meaningful only when k̂ is small).
    pub log_evidence_se: f64,
    /// KL(q ‖ p) ≈ log p̂(x) − ELBO, both on these draws (a lower estimate: log p̂ is biased low).
    pub kl: f64,
    /// Its standard error (delta method on each draw's influence; meaningful when k̂ < 0.7).
    pub kl_se: f64,
    /// The effective sample size of the smoothed weights, 1 / Σ w̃ᵢ² (normalised w̃).
    pub ess: f64,
    /// How many draws were used.
    pub draws: usize,
    /// How many of them gave a non-finite log ratio (log p of −∞, NaN or +∞).
    pub nonfinite: usize,
    /// The PSIS-reweighted moments against q's own, of each coordinate of the unconstrained z
    /// (None from log ratios alone).
    pub moments: Option<Moments>,
    /// The same of each constrained element, in the order of [`crate::Latents::element_names`]
    /// (None for a model whose latents are all real, or from log ratios or draws alone).
    pub constrained: Option<Moments>,
    /// Whether q is a mean-field Gaussian (as far as known: false from log ratios or draws).
    pub mean_field: bool,
}

/// The smoothed log weights as normalised weights w̃ᵢ (Σ w̃ᵢ = 1).
pub(crate) fn normalised(log_weights: &[f64]) -> Vec<f64> {
    let max = log_weights.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_weights.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = w.iter().sum();
    w.iter().map(|x| x / total).collect()
}

impl Diagnostics {
    /// k̂, the log-evidence and KL estimates from log rᵢ = log p(x, zᵢ) − log q(zᵢ), zᵢ ~ q; without
    /// the draws, no moments.
    pub fn from_log_ratios(log_ratios: &[f64]) -> Self {
        Self::new(log_ratios, &psis(log_ratios), None, false)
    }

    /// Everything, the reweighted moments included, from the log ratios and the draws `z` they
    /// came from (row-major `[S, D]`, unconstrained).
    pub fn from_draws(log_ratios: &[f64], z: &[f64], d: usize) -> Self {
        let p = psis(log_ratios);
        let moments = Moments::from_draws(log_ratios, z, d);
        Self::new(log_ratios, &p, Some(moments), false)
    }

    pub(crate) fn new(log_ratios: &[f64], p: &Psis, moments: Option<Moments>, mean_field: bool) -> Self {
        let s = p.log_weights.len() as f64;
        let max = p.log_weights.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = p.log_weights.iter().map(|l| (l - max).exp()).collect();
        let mean = w.iter().sum::<f64>() / s;
        let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (s - 1.0);
        let elbo = log_ratios.iter().sum::<f64>() / s;
        // KL = log mean(w̃) − mean(log r): each draw's influence (w̃ᵢ / mean − 1) − (log rᵢ − ELBO)
        let infl: Vec<f64> = w.iter().zip(log_ratios).map(|(wi, r)| (wi / mean - 1.0) - (r - elbo)).collect();
        let kl_var = infl.iter().map(|x| x * x).sum::<f64>() / (s - 1.0);
        let ess = 1.0 / w.iter().map(|x| (x / (mean * s)).powi(2)).sum::<f64>();
        let log_evidence = max + mean.ln();
        Diagnostics {
            k_hat: p.k_hat,
            k_hat_se: p.k_hat_se,
            log_evidence,
            log_evidence_se: (var / s).sqrt() / mean,
            kl: log_evidence - elbo,
            kl_se: (kl_var / s).sqrt(),
            ess,
            draws: log_ratios.len(),
            nonfinite: log_ratios.iter().filter(|x| !x.is_finite()).count(),
            moments,
            constrained: None,
            mean_field,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Draws from GP(k, σ) by inversion; the fit must recover k.
    #[test]
    fn the_pareto_fit_recovers_a_known_shape() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for k in [0.2, 0.5, 0.9] {
            let mut x: Vec<f64> = (0..2_000).map(|_| gpd_quantile(rng.random::<f64>(), k, 1.0)).collect();
            x.sort_by(f64::total_cmp);
            let (k_hat, sigma) = gpd_fit(&x);
            // sd of the maximum-likelihood k̂ is about (1 + k) / √n ≈ 0.04 here
            assert!((k_hat - k).abs() < 0.12, "k = {k}: k̂ = {k_hat}");
            assert!((sigma - 1.0).abs() < 0.25, "k = {k}: σ̂ = {sigma}");
        }
    }

    #[test]
    fn constant_ratios_are_good_and_give_the_exact_evidence() {
        let d = Diagnostics::from_log_ratios(&vec![-3.5; 1_000]);
        assert_eq!(d.k_hat, f64::NEG_INFINITY);
        assert_eq!(d.verdict(), Verdict::Good);
        assert!((d.log_evidence + 3.5).abs() < 1e-12);
        assert!(d.log_evidence_se.abs() < 1e-12);
    }

    #[test]
    fn ratios_equal_up_to_f32_rounding_are_good() {
        // log p − log q ≈ −322.43 for an exact q, each computed in f32: spread of a few 1e-5
        let r: Vec<f64> = (0..1_000).map(|i| (-322.43f32 + ((i * 7919) % 13) as f32 * 4e-6).into()).collect();
        assert!(r.iter().any(|&x| x != r[0]), "the test needs rounding noise");
        assert_eq!(psis(&r).k_hat, f64::NEG_INFINITY);
        // a real tail is still seen: the same ratios plus a spread of 0.5 nats
        let spread: Vec<f64> = r.iter().enumerate().map(|(i, x)| x + 0.5 * (i as f64 / 1_000.0)).collect();
        assert!(psis(&spread).k_hat.is_finite());
    }

    #[test]
    fn nan_ratios_make_k_hat_infinite() {
        let mut r = vec![0.0; 100];
        r[3] = f64::NAN;
        assert_eq!(psis(&r).k_hat, f64::INFINITY);
        assert_eq!(Verdict::from_k_hat(f64::INFINITY), Verdict::Unreliable);
    }
}
