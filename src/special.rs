//! Special functions on tensors that candle 0.11 lacks, built from candle ops so that they have
//! gradients and run on every device.
//!
//! ```text
//! softplus(x)     = log(1 + eˣ)  = max(x, 0) + log(1 + e^(−|x|))   (finite for every finite x)
//! log_sigmoid(x)  = −softplus(−x)
//! softplus⁻¹(y)   = log(e^y − 1) = y + log(1 − e^(−y))              (host, y > 0)
//! ```
//!
//! Accuracy: without a log1p op, log(1 + e^(−|x|)) is exact to within one ulp of 1 (absolute error
//! ≤ 2.2e-16 in f64), which is what a summed log density needs; its *relative* accuracy degrades once
//! softplus(x) < 1e-13 (x < −30). A fused op with an exact log1p would remove that.

use candle_core::{Result, Tensor};

/// ½ log 2π, the normalising constant of a standard normal density per dimension.
pub const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// softplus(x) = log(1 + eˣ), computed stably: max(x, 0) + log(1 + e^(−|x|)).
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    let tail = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    x.relu()? + tail
}

/// log σ(x) = −softplus(−x), the log of the logistic sigmoid.
pub fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    softplus(&x.neg()?)?.neg()
}

/// softplus⁻¹(y) = log(eʸ − 1) for y > 0, on the host (used to initialise softplus-linked scales).
pub fn softplus_inverse(y: f64) -> f64 {
    y + (-(-y).exp_m1()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn softplus_matches_the_naive_formula_and_stays_finite() {
        let xs: [f64; 7] = [-800.0, -30.0, -1.0, 0.0, 0.5, 30.0, 800.0];
        let t = Tensor::new(&xs, &Device::Cpu).unwrap();
        let got = softplus(&t).unwrap().to_vec1::<f64>().unwrap();
        for (x, g) in xs.iter().zip(got) {
            let want = if *x > 30.0 { *x } else { x.exp().ln_1p() };
            // absolute error within an ulp of max(1, |softplus|), see the module doc
            assert!((g - want).abs() <= 2.5e-16 * want.abs().max(1.0), "softplus({x}) = {g}, want {want}");
        }
    }

    #[test]
    fn softplus_inverse_inverts() {
        for y in [1e-6, 0.1, 1.0, 20.0] {
            let x = softplus_inverse(y);
            assert!((x.exp().ln_1p() - y).abs() < 1e-12 * y.max(1.0));
        }
    }
}
