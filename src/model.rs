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
}

impl<T: LogJoint + ?Sized> LogJoint for &T {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn log_joint(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        (**self).log_joint(z)
    }
}

impl<T: LogJoint + ?Sized> LogJoint for Box<T> {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn log_joint(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        (**self).log_joint(z)
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
