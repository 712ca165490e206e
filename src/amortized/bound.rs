//! The ELBO of an amortised Gaussian q(z | x) and a decoder p_θ(x | z), per datum, in two forms.
//!
//! ```text
//! z_s = μ + σ ⊙ ε_s,  s = 1..S
//! analytic KL:   ELBO(x) ≈ 1/S Σ_s log p_θ(x | z_s) − KL(q ‖ N(0, I))          (KL in closed form)
//! entropy form:  ELBO(x) ≈ 1/S Σ_s [log p_θ(x | z_s) + log N(z_s; 0, I)] + H(q)
//!                so the KL term is estimated as  KL̂ = −1/S Σ_s log N(z_s; 0, I) − H(q)
//! loss_β = −1/B Σ_b [log p̂(x_b | z) − β · KL̂_b]        (β < 1 during KL warm-up)
//! ```
//!
//! Both are unbiased for the ELBO; the analytic form has less variance and is the default for the
//! standard-normal prior. The entropy form is the black-box one, for priors without a closed-form KL.

use candle_core::Tensor;

use super::{standard_normal_log_prob, Decoder, DiagGaussian};
use crate::{Error, Result};

/// How the KL(q ‖ p) term of the ELBO is computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KlForm {
    /// KL(q ‖ N(0, I)) in closed form.
    #[default]
    Analytic,
    /// Monte Carlo: −log N(z; 0, I) averaged over the draws, minus the closed-form entropy H(q).
    Entropy,
}

/// The two terms of the ELBO for each datum of a batch, differentiable in the encoder and decoder.
#[derive(Clone, Debug)]
pub struct ElboTerms {
    /// 1/S Σ_s log p_θ(x_b | z_s), `[B]`: the expected log-likelihood (reconstruction term).
    pub log_likelihood: Tensor,
    /// KL(q(z | x_b) ‖ p(z)), exact or estimated as [`KlForm`] says, `[B]`.
    pub kl: Tensor,
}

impl ElboTerms {
    /// ELBO(x_b) = log-likelihood − KL, `[B]`.
    pub fn elbo(&self) -> Result<Tensor> {
        Ok((&self.log_likelihood - &self.kl)?)
    }

    /// The loss to minimise, −1/B Σ_b [log-likelihood_b − β · KL_b], a scalar. β = 1 gives −ELBO
    /// per datum; β < 1 down-weights the KL during warm-up.
    pub fn loss(&self, beta: f64) -> Result<Tensor> {
        if !(beta >= 0.0 && beta.is_finite()) {
            return Err(Error::config("beta", beta, "the KL weight β must be finite and ≥ 0"));
        }
        let kl = if beta == 1.0 { self.kl.clone() } else { (&self.kl * beta)? };
        Ok((&self.log_likelihood - kl)?.mean_all()?.neg()?)
    }
}

/// The ELBO terms of the batch `x` (`[B, ...]`) under q (`[B, D]`) and `decoder`, from the noise
/// `eps`: `[B, D]` for one draw per datum, or `[S, B, D]` for S draws (averaged).
pub fn elbo_terms<Dec: Decoder + ?Sized>(
    q: &DiagGaussian,
    decoder: &Dec,
    x: &Tensor,
    eps: &Tensor,
    form: KlForm,
) -> Result<ElboTerms> {
    let b = q.batch();
    if x.dims().first() != Some(&b) {
        return Err(Error::DimensionMismatch {
            what: format!("the data batch of shape {:?}", x.dims()),
            expected: b,
            got: x.dims().first().copied().unwrap_or(0),
        });
    }
    let z = q.rsample(eps)?;
    let draws: Vec<Tensor> =
        if z.rank() == 3 { (0..z.dim(0)?).map(|s| z.get(s)).collect::<candle_core::Result<_>>()? } else { vec![z] };
    let s = draws.len() as f64;
    let mut log_lik = Vec::with_capacity(draws.len());
    for z_s in &draws {
        let ll = decoder.log_likelihood(x, z_s)?;
        if ll.dims() != [b] {
            return Err(Error::ModelOutput {
                problem: format!(
                    "decoder gave a log-likelihood of shape {:?} for a batch of {b}; it must be [{b}]",
                    ll.dims()
                ),
            });
        }
        log_lik.push(ll);
    }
    let log_likelihood = mean_of(log_lik, s)?;
    let kl = match form {
        KlForm::Analytic => q.kl_standard_normal()?,
        KlForm::Entropy => {
            let log_prior = draws.iter().map(standard_normal_log_prob).collect::<Result<Vec<_>>>()?;
            (mean_of(log_prior, s)?.neg()? - q.entropy()?)?
        }
    };
    Ok(ElboTerms { log_likelihood, kl })
}

/// The mean of S tensors of one shape.
fn mean_of(terms: Vec<Tensor>, s: f64) -> Result<Tensor> {
    if terms.len() == 1 {
        return Ok(terms.into_iter().next().expect("one term"));
    }
    Ok((Tensor::stack(&terms, 0)?.sum(0)? / s)?)
}
