//! bball_drive_event_0-hmm_drive_0: a two-state hidden Markov model of a basketball player's
//! drives (state 1: no drive, state 2: drive), with exponential emissions and the hidden states
//! summed out by the forward algorithm.
//!
//! ```text
//! Θ = (θ¹; θ²),  Θ_jk = P(z_t = k | z_{t−1} = j),  θʲ ∈ 2-simplex;   0 < φ₁ < φ₂,  0 < λ₁ < λ₂
//! ℓ_k(t) = ln Exp(u_t | φ_k) + ln Exp(v_t | λ_k) = ln φ_k − φ_k u_t + ln λ_k − λ_k v_t
//! γ₁(k) = ℓ_k(1)                                            (no initial-state term)
//! γ_t(k) = ln Σ_j exp(γ_{t−1}(j) + ln Θ_jk + ℓ_k(t)),   t = 2 … N = 416
//! log p(u, v | Θ, φ, λ) = ln Σ_k exp γ_N(k)
//! θ¹ ~ Dirichlet(α₁·), θ² ~ Dirichlet(α₂·)  (α = [[4, 2], [2, 4]] from the data)
//! φ₁, λ₁ ~ N(0, 1),  φ₂, λ₂ ~ N(3, 1)      (on the ordered support; the truncation is constant)
//! unconstrained: each θʲ by one stick-breaking coordinate, θʲ₁ = σ(a), log-Jacobian
//! ln θʲ₁ + ln θʲ₂; φ₁ = e^b, φ₂ = φ₁ + e^c, log-Jacobian b + c, and the same for λ      D = 6
//! ```
//!
//! u is 1 / speed and v the distance to the hoop. The recursion is a product in the (log-sum-exp,
//! +) semiring, γ_N = γ₁ ⊗ M₂ ⊗ … ⊗ M_N with M_t[j, k] = ln Θ_jk + ℓ_k(t), and it is computed
//! as such: the N − 1 matrices `[S, N − 1, 2, 2]` are multiplied in pairs, level by level, in
//! ⌈log₂(N − 1)⌉ = 9 levels of batched 2 × 2 log-matrix products, not N sequential steps of
//! `[S, 2]` (the same sums, associated differently; each product is a log-sum-exp, so nothing
//! under- or overflows). The latents are `theta1`, `theta2` (simplex `[2]`), `phi` and `lambda`
//! (positive ordered `[2]`).
//!
//! What makes it hard: the transition probabilities pile up near 1 (θ¹₁ ≈ 0.991, θ²₂ ≈ 0.965),
//! so their marginals are skewed (≈ ±1.1); the scales differ about 400× (sd of λ₁ ≈ 0.0016, of
//! φ₂ ≈ 0.6).

use candle_core::Tensor;
use elbo::dist::{Distribution, Normal};
use elbo::{Error, Latents, Model, Result, Values};

use super::data::{Data, DataTensor};

/// The two-state HMM with exponential emissions (module doc); latents `theta1`, `theta2`
/// (simplex `[2]`), `phi` and `lambda` (positive ordered `[2]`).
#[derive(Clone, Debug)]
pub struct Hmm {
    /// u, [1, N, 1].
    u: DataTensor,
    /// v, [1, N, 1].
    v: DataTensor,
    /// The Dirichlet concentrations, rows α₁·, α₂·.
    alpha: [[f64; 2]; 2],
    /// ln Γ(α_j1 + α_j2) − ln Γ(α_j1) − ln Γ(α_j2) for each row.
    dirichlet_norm: [f64; 2],
    n: usize,
    latents: Latents,
}

impl Hmm {
    /// The model for posteriordb's `bball_drive_event_0` data (`K` = 2, `N` ≥ 2, `u`, `v`
    /// positive, `alpha` 2 × 2 positive).
    pub fn new(data: &Data) -> Result<Self> {
        let bad = |problem: String| Error::DataFile { path: data.origin().to_string(), problem };
        let k = data.int("K")?;
        if k != 2 {
            return Err(bad(format!("this model has K = 2 hidden states; the data have K = {k}")));
        }
        let n = data.int("N")?;
        if n < 2 {
            return Err(bad(format!("the sequence needs N ≥ 2 steps; it has {n}")));
        }
        let u = data.positive_reals("u", n)?;
        let v = data.positive_reals("v", n)?;
        let a = data.matrix("alpha", 2, 2)?;
        if let Some(x) = a.iter().find(|&&x| x <= 0.0) {
            return Err(bad(format!("field `alpha`: the Dirichlet concentration {x} is not positive")));
        }
        let ln_gamma = |x: &[f64]| -> Result<Vec<f64>> {
            Ok(elbo::special::lgamma(&Tensor::new(x, &candle_core::Device::Cpu)?)?.to_vec1::<f64>()?)
        };
        let norm = |row: &[f64]| -> Result<f64> {
            let g = ln_gamma(&[row[0] + row[1], row[0], row[1]])?;
            Ok(g[0] - g[1] - g[2])
        };
        let dirichlet_norm = [norm(&a[0..2])?, norm(&a[2..4])?];
        Ok(Hmm {
            u: DataTensor::new(u, &[1, n, 1])?,
            v: DataTensor::new(v, &[1, n, 1])?,
            alpha: [[a[0], a[1]], [a[2], a[3]]],
            dirichlet_norm,
            n,
            latents: Latents::new()
                .simplex("theta1", [2])
                .simplex("theta2", [2])
                .positive_ordered("phi", [2])
                .positive_ordered("lambda", [2]),
        })
    }

    /// The log-likelihood from ln Θ `[S, 2, 2]`, φ and λ `[S, 2]` (module doc), `[S]`.
    fn log_likelihood(&self, log_theta: &Tensor, phi: &Tensor, lambda: &Tensor) -> candle_core::Result<Tensor> {
        let s = phi.dim(0)?;
        let (u, v) = (self.u.like(phi)?, self.v.like(phi)?);
        let (phi3, lambda3) = (phi.unsqueeze(1)?, lambda.unsqueeze(1)?); // [S, 1, 2]
        let rates = (u.broadcast_mul(&phi3)? + v.broadcast_mul(&lambda3)?)?; // φ_k u_t + λ_k v_t, [S, N, 2]
        let emission = (phi3.log()? + lambda3.log()?)?.broadcast_sub(&rates)?; // ℓ_k(t), [S, N, 2]
                                                                               // M_t[j, k] = ln Θ_jk + ℓ_k(t) for t = 2 … N, [S, N − 1, 2, 2]
        let steps = emission.narrow(1, 1, self.n - 1)?.unsqueeze(2)?.broadcast_add(&log_theta.unsqueeze(1)?)?;
        let product = log_product(steps)?; // [S, 2, 2]
        let first = emission.narrow(1, 0, 1)?.reshape((s, 2, 1))?; // γ₁(j)
        first.broadcast_add(&product)?.reshape((s, 4))?.log_sum_exp(1)
    }

    /// Σ_j ln Dirichlet(θʲ | α_j·) from ln θʲ `[S, 2]` each, `[S]`.
    fn transition_prior(&self, log_theta: [&Tensor; 2]) -> candle_core::Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for ((row, norm), log_t) in self.alpha.iter().zip(self.dirichlet_norm).zip(log_theta) {
            let weights = Tensor::new(&[row[0] - 1.0, row[1] - 1.0], log_t.device())?.to_dtype(log_t.dtype())?;
            let lp = (log_t.broadcast_mul(&weights)?.sum(1)? + norm)?;
            total = Some(match total {
                Some(t) => (t + lp)?,
                None => lp,
            });
        }
        total.ok_or_else(|| candle_core::Error::Msg("no transition rows".into()))
    }
}

/// ln-matrix products C[i, j] = ln Σ_k exp(A[i, k] + B[k, j]) of `[S, m, 2, 2]` batches.
fn log_matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    a.unsqueeze(4)?.broadcast_add(&b.unsqueeze(2)?)?.log_sum_exp(3) // [S, m, i, k, j] → [S, m, i, j]
}

/// The ordered ln-product M₁ ⊗ M₂ ⊗ … ⊗ M_m of `[S, m, 2, 2]`, multiplied in pairs level by level
/// (an odd one out is carried to the next level), `[S, 2, 2]`.
fn log_product(mut m: Tensor) -> candle_core::Result<Tensor> {
    let s = m.dim(0)?;
    while m.dim(1)? > 1 {
        let len = m.dim(1)?;
        let half = len / 2;
        let pairs = m.narrow(1, 0, 2 * half)?.reshape((s, half, 2, 2, 2))?; // [S, pair, first/second, i, j]
        let product = log_matmul(&pairs.narrow(2, 0, 1)?.squeeze(2)?, &pairs.narrow(2, 1, 1)?.squeeze(2)?)?;
        m = if len % 2 == 1 { Tensor::cat(&[&product, &m.narrow(1, len - 1, 1)?], 1)? } else { product };
    }
    m.squeeze(1)
}

impl Model for Hmm {
    fn latents(&self) -> &Latents {
        &self.latents
    }

    fn log_density(&self, v: &Values<'_>) -> candle_core::Result<Tensor> {
        let (theta1, theta2) = (v.get("theta1")?.log()?, v.get("theta2")?.log()?); // [S, 2]
        let (phi, lambda) = (v.get("phi")?, v.get("lambda")?);
        let s = phi.dim(0)?;
        let location = Tensor::new(&[0.0f64, 3.0], phi.device())?.to_dtype(phi.dtype())?.reshape((1, 2))?;
        let unit = Normal::new(0.0, 1.0)?;
        let rates_prior = (unit.log_prob(&phi.broadcast_sub(&location)?)?
            + unit.log_prob(&lambda.broadcast_sub(&location)?)?)?
        .sum(1)?;
        let prior = (self.transition_prior([&theta1, &theta2])? + rates_prior)?;
        let log_theta = Tensor::stack(&[&theta1, &theta2], 1)?; // [S, j, k]
        debug_assert_eq!(log_theta.dims(), [s, 2, 2]);
        prior + self.log_likelihood(&log_theta, phi, lambda)?
    }
}
