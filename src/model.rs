//! The model contract: the log joint density log p(x, z) for a batch of draws of z.
//!
//! ```text
//! log_joint(z)[s] = log p(x, z_s),   z: [S, D] → [S]
//! ```
//!
//! x (the data) lives inside the model; z is the unconstrained latent vector of length D. The batch
//! axis S is the Monte Carlo axis: one call evaluates every draw, so a model written with
//! broadcasting costs one graph per step, not S graphs.

use candle_core::Tensor;

use crate::latent::{Latents, Values};

/// A probabilistic model, given as its log joint density over an unconstrained latent vector.
///
/// ```
/// use elbo::prelude::*;
///
/// /// z ~ N(0, I) in two dimensions (a model with no data).
/// struct StandardNormal;
/// impl LogJoint for StandardNormal {
///     fn dim(&self) -> usize { 2 }
///     fn log_joint(&self, z: &Tensor) -> candle_core::Result<Tensor> {
///         let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
///         (z.sqr()?.sum(1)? * -0.5)? - 2.0 * half_log_2pi
///     }
/// }
/// let z = Tensor::zeros((3, 2), DType::F64, &Device::Cpu)?;
/// assert_eq!(StandardNormal.log_joint(&z)?.dims(), &[3]);
/// # Ok::<(), elbo::Error>(())
/// ```
pub trait LogJoint {
    /// D, the length of the latent vector z.
    fn dim(&self) -> usize;

    /// log p(x, z) for each of the S rows of `z` (`[S, D]` → `[S]`). It must be differentiable in `z`
    /// with candle's autodiff, and keep the normalising constants if ELBO values are to be compared
    /// with log-evidence values.
    fn log_joint(&self, z: &Tensor) -> candle_core::Result<Tensor>;

    /// The named, constrained latents behind z, if the model declares them (every [`Model`] does);
    /// fits use them to report draws and summaries by name in the constrained space.
    fn named_latents(&self) -> Option<&Latents> {
        None
    }

    /// N, the number of i.i.d. data points the likelihood sums over, read from the model's data;
    /// `None` (the default) if the model cannot be fitted on minibatches.
    fn data_len(&self) -> Option<usize> {
        None
    }

    /// log p(z) + (N / B) Σ_{i ∈ rows} log p(xᵢ | z) for the B data points `rows` (u32 `[B]`):
    /// an unbiased estimate of log p(x, z) over random minibatches (Hoffman et al. 2013). The
    /// default fails; a [`Model`] gets it from its `log_prior` and `log_likelihood`, with the
    /// factor N / B applied by `elbo`.
    fn log_joint_minibatch(&self, z: &Tensor, rows: &Tensor) -> candle_core::Result<Tensor> {
        let _ = (z, rows);
        candle_core::bail!("this model cannot be fitted on minibatches: it does not implement data_len")
    }
}

/// A probabilistic model over named, constrained latents: the way to write a model whose
/// parameters are scales, probabilities, weights or correlations.
///
/// ```text
/// log_joint(z) = log_density(f(z)) + log|det J_f(z)|     (the Jacobian is added by elbo)
/// ```
///
/// Every `Model` is a [`LogJoint`] over the unconstrained z. A plain [`LogJoint`] over an
/// unconstrained `[S, D]` tensor stays available for models that need no names or constraints.
///
/// ```
/// use elbo::prelude::*;
/// use elbo::dist::{Distribution, HalfCauchy, Normal};
///
/// /// Eight schools, non-centred: θ_j = μ + τ θ̃_j, y_j ~ N(θ_j, σ_j).
/// struct EightSchools { y: Tensor, sigma: Tensor, latents: Latents }
/// impl Model for EightSchools {
///     fn latents(&self) -> &Latents { &self.latents }
///     fn log_density(&self, v: &Values) -> candle_core::Result<Tensor> {
///         let (mu, tau, theta_raw) = (v.get("mu")?, v.get("tau")?, v.get("theta_raw")?); // [S,1], [S,1], [S,8]
///         let theta = theta_raw.broadcast_mul(tau)?.broadcast_add(mu)?;
///         let prior = (Normal::new(0.0, 5.0)?.log_prob(mu)?.sum(1)?
///             + HalfCauchy::new(5.0)?.log_prob(tau)?.sum(1)?)?
///             + Normal::new(0.0, 1.0)?.log_prob(theta_raw)?.sum(1)?;
///         let likelihood = Normal::new(theta, self.sigma.unsqueeze(0)?)?.log_prob(&self.y.unsqueeze(0)?)?.sum(1)?;
///         prior? + likelihood
///     }
/// }
/// let dev = Device::Cpu;
/// let model = EightSchools {
///     y: Tensor::new(&[28.0f32, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], &dev)?,
///     sigma: Tensor::new(&[15.0f32, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], &dev)?,
///     latents: Latents::new().real("mu", [1]).positive("tau", [1]).real("theta_raw", [8]),
/// };
/// let fit = Advi::new(MeanField).samples(8).steps(2_000).fit(&model)?;
/// let tau = fit.summary().get("tau").unwrap();
/// assert!(tau.mean > 0.0);
/// println!("{fit}"); // the table: mu, tau, theta_raw[0..8] with mean, sd and 5/50/95 % quantiles
/// # Ok::<(), elbo::Error>(())
/// ```
pub trait Model {
    /// The latents, by name, shape and constraint.
    fn latents(&self) -> &Latents;

    /// log p(x, x₁, …, x_B) at the constrained values of a batch of S draws, `[S]`. Write it with
    /// the densities of [`crate::dist`]; do not add the Jacobian of the constraints.
    fn log_density(&self, values: &Values<'_>) -> candle_core::Result<Tensor>;

    /// For minibatch SVI (`Advi::batch`): N, the number of i.i.d. data points, read from the data
    /// (never typed in, so the likelihood's scale N / B cannot silently be wrong). `None` (the
    /// default) means no minibatches; a model that returns `Some` implements the two methods below,
    /// with `log_density = log_prior + log_likelihood` over all rows.
    fn data_len(&self) -> Option<usize> {
        None
    }

    /// log p(θ) alone, `[S]` (for minibatches).
    fn log_prior(&self, values: &Values<'_>) -> candle_core::Result<Tensor> {
        let _ = values;
        candle_core::bail!("log_prior is not implemented: the model cannot be fitted on minibatches")
    }

    /// Σ_{i ∈ rows} log p(xᵢ | θ) over the data points `rows` (u32 indices `[B]`), `[S]`, unscaled:
    /// `elbo` multiplies it by N / B.
    fn log_likelihood(&self, values: &Values<'_>, rows: &Tensor) -> candle_core::Result<Tensor> {
        let _ = (values, rows);
        candle_core::bail!("log_likelihood is not implemented: the model cannot be fitted on minibatches")
    }
}

impl<M: Model + ?Sized> LogJoint for M {
    fn dim(&self) -> usize {
        self.latents().dim()
    }
    fn log_joint(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let (values, log_det) = self.latents().constrain(z)?;
        self.log_density(&values)? + log_det
    }
    fn named_latents(&self) -> Option<&Latents> {
        Some(self.latents())
    }
    fn data_len(&self) -> Option<usize> {
        Model::data_len(self)
    }
    fn log_joint_minibatch(&self, z: &Tensor, rows: &Tensor) -> candle_core::Result<Tensor> {
        let Some(n) = Model::data_len(self) else {
            candle_core::bail!("this model cannot be fitted on minibatches: its data_len() is None")
        };
        let b = rows.dim(0)?;
        let (values, log_det) = self.latents().constrain(z)?;
        let likelihood = (self.log_likelihood(&values, rows)? * (n as f64 / b as f64))?;
        (self.log_prior(&values)? + likelihood)? + log_det
    }
}

/// A model made of a closure and a dimension; see [`from_fn`].
#[derive(Clone)]
pub struct FnModel<F> {
    dim: usize,
    f: F,
}

/// Turns a closure `|z: &Tensor| -> candle_core::Result<Tensor>` (`[S, dim]` → `[S]`) into a model, so
/// a one-line model needs no struct.
///
/// ```
/// use elbo::prelude::*;
/// // log p(z) = -½ Σ z² (an unnormalised standard normal in 3 dimensions)
/// let model = elbo::from_fn(3, |z: &Tensor| z.sqr()?.sum(1)? * -0.5);
/// assert_eq!(model.dim(), 3);
/// ```
pub fn from_fn<F>(dim: usize, f: F) -> FnModel<F>
where
    F: Fn(&Tensor) -> candle_core::Result<Tensor>,
{
    FnModel { dim, f }
}

impl<F> LogJoint for FnModel<F>
where
    F: Fn(&Tensor) -> candle_core::Result<Tensor>,
{
    fn dim(&self) -> usize {
        self.dim
    }
    fn log_joint(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        (self.f)(z)
    }
}

impl<F> std::fmt::Debug for FnModel<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnModel").field("dim", &self.dim).finish_non_exhaustive()
    }
}

/// The named latents of the model, or one real block `z` for a plain [`LogJoint`].
pub(crate) fn latents_of<M: LogJoint + ?Sized>(model: &M) -> crate::latent::Latents {
    model.named_latents().cloned().unwrap_or_else(|| crate::latent::Latents::new().real("z", [model.dim()]))
}
