//! Markov-chain statistics of a series of iterates: split-R̂ over chunks of a window, and the
//! effective sample size by Geyer's initial positive sequence.
//!
//! ```text
//! split-R̂:  the window cut into m chunks of n values taken as m chains, with chunk means x̄_c,
//!           within-chunk variance W = mean_c s_c², between-chunk B = n/(m−1) Σ_c (x̄_c − x̄)²:
//!           R̂ = √( ((n−1)/n · W + B/n) / W )                 (Gelman et al., BDA3 §11.4)
//! ESS:      ρ_k the lag-k autocorrelation, Γ_k = ρ_{2k} + ρ_{2k+1} summed while positive
//!           and made non-increasing:  τ = −1 + 2 Σ_k Γ_k,   ESS = n / τ   (Geyer 1992)
//! MCSE of the mean:  sd / √ESS
//! ```

/// Split-R̂ of `x` cut into `chains` equal chunks (a remainder at the start is dropped). A constant
/// series gives 1; fewer than 2 values per chunk gives infinity (nothing can be said).
pub(crate) fn split_rhat(x: &[f64], chains: usize) -> f64 {
    let n = x.len() / chains;
    if n < 2 || chains < 2 {
        return f64::INFINITY;
    }
    let x = &x[x.len() - n * chains..];
    let chunk = |c: usize| &x[c * n..(c + 1) * n];
    let means: Vec<f64> = (0..chains).map(|c| mean(chunk(c))).collect();
    let within =
        (0..chains).map(|c| chunk(c).iter().map(|v| (v - means[c]).powi(2)).sum::<f64>() / (n - 1) as f64).sum::<f64>()
            / chains as f64;
    let grand = mean(&means);
    let between = n as f64 * means.iter().map(|m| (m - grand).powi(2)).sum::<f64>() / (chains - 1) as f64;
    if within == 0.0 {
        return if between == 0.0 { 1.0 } else { f64::INFINITY };
    }
    (((n - 1) as f64 / n as f64 * within + between / n as f64) / within).sqrt()
}

/// The effective sample size of `x` (between 1 and its length; its length for a constant series).
pub(crate) fn ess(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 4 {
        return n as f64;
    }
    let m = mean(x);
    let c0 = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n as f64;
    if c0 == 0.0 {
        return n as f64;
    }
    let rho = |k: usize| (0..n - k).map(|i| (x[i] - m) * (x[i + k] - m)).sum::<f64>() / n as f64 / c0;
    let mut tau = -1.0;
    let mut previous = f64::INFINITY;
    let mut k = 0;
    while k + 1 < n {
        let pair = (rho(k) + rho(k + 1)).min(previous);
        if pair <= 0.0 {
            break;
        }
        tau += 2.0 * pair;
        previous = pair;
        k += 2;
    }
    (n as f64 / tau.max(1e-12)).clamp(1.0, n as f64)
}

/// The standard deviation of `x` (divisor n − 1).
pub(crate) fn sd(x: &[f64]) -> f64 {
    let m = mean(x);
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len().max(2) - 1) as f64).sqrt()
}

pub(crate) fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    /// An AR(1) series x_t = φ x_{t−1} + e_t, whose integrated autocorrelation time is (1+φ)/(1−φ).
    fn ar1(phi: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut x = 0.0;
        (0..n)
            .map(|_| {
                x = phi * x + rng.sample::<f64, _>(StandardNormal);
                x
            })
            .collect()
    }

    #[test]
    fn ess_of_an_ar1_series_matches_its_autocorrelation_time() {
        // φ = 0.8: τ = 9, so 20,000 values carry about 2,222 independent ones
        let x = ar1(0.8, 20_000, 1);
        let ess = ess(&x);
        assert!((ess / (20_000.0 / 9.0) - 1.0).abs() < 0.15, "ESS {ess}");
        let white = ar1(0.0, 20_000, 2);
        assert!((super::ess(&white) / 20_000.0 - 1.0).abs() < 0.1);
    }

    #[test]
    fn split_rhat_is_near_one_for_a_stationary_series_and_large_for_a_trend() {
        let x = ar1(0.5, 4_000, 3);
        assert!((split_rhat(&x, 4) - 1.0).abs() < 0.02, "{}", split_rhat(&x, 4));
        let trend: Vec<f64> = x.iter().enumerate().map(|(t, v)| v + t as f64 * 1e-3).collect();
        assert!(split_rhat(&trend, 4) > 1.3, "{}", split_rhat(&trend, 4));
        assert_eq!(split_rhat(&[2.0; 40], 4), 1.0);
    }
}
