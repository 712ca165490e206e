//! The importance-weighted bound (IWAE, Burda, Grosse & Salakhutdinov 2015), the standard estimate
//! of a VAE's test log-likelihood.
//!
//! ```text
//! log w_k = log p_θ(x | z_k) + log N(z_k; 0, I) − log q_φ(z_k | x),   z_k = μ + σ ⊙ ε_k,  k = 1..K
//! L_K(x)  = log (1/K) Σ_k exp(log w_k)  = logsumexp_k(log w_k) − log K
//! E[L_1] = ELBO(x) ≤ E[L_K] ≤ E[L_{K+1}] ≤ log p_θ(x),    E[L_K] → log p_θ(x) as K → ∞
//! ```

use candle_core::Tensor;

use super::{standard_normal_log_prob, Decoder, DiagGaussian};
use crate::{Error, Result};

/// L_K(x_b) for each datum of the batch `x` (`[B, ...]`), from the noise `eps` `[K, B, D]`, `[B]`.
///
/// The decoder runs once per k on the whole batch, so memory stays that of one batch. Wrap the call
/// in no gradient tracking (detached inputs) when it only evaluates.
pub fn iw_log_likelihood<Dec: Decoder + ?Sized>(
    q: &DiagGaussian,
    decoder: &Dec,
    x: &Tensor,
    eps: &Tensor,
) -> Result<Tensor> {
    let (k, b, d) = eps.dims3().map_err(|_| Error::DimensionMismatch {
        what: format!("IWAE noise of shape {:?} (want [K, B, D])", eps.dims()),
        expected: q.dim(),
        got: eps.dims().last().copied().unwrap_or(0),
    })?;
    if (b, d) != (q.batch(), q.dim()) || k == 0 {
        return Err(Error::DimensionMismatch {
            what: format!("IWAE noise of shape [{k}, {b}, {d}] for q of shape [{}, {}] (K ≥ 1)", q.batch(), q.dim()),
            expected: q.dim(),
            got: d,
        });
    }
    let mut log_w = Vec::with_capacity(k);
    for i in 0..k {
        let z = q.rsample(&eps.get(i)?)?;
        let ll = decoder.log_likelihood(x, &z)?;
        if ll.dims() != [b] {
            return Err(Error::ModelOutput {
                problem: format!(
                    "decoder gave a log-likelihood of shape {:?} for a batch of {b}; it must be [{b}]",
                    ll.dims()
                ),
            });
        }
        log_w.push(((ll + standard_normal_log_prob(&z)?)? - q.log_prob(&z)?)?);
    }
    let log_w = Tensor::stack(&log_w, 0)?; // [K, B]
    Ok((log_w.log_sum_exp(0)? - (k as f64).ln())?)
}
