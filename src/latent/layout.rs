//! The layout of named latent blocks in one unconstrained vector, and the constrained values a
//! model sees.
//!
//! ```text
//! z = (u₁, …, u_B) ∈ ℝᴰ          block b: unconstrained length n_b at offset o_b,  D = Σ_b n_b
//! x_b = f_b(u_b)                  constrained value of shape s_b (batched: [S, s_b…])
//! log p(x, z) = log p(x, x₁, …, x_B) + Σ_b log|det J_{f_b}(u_b)|
//! ```
//!
//! The user writes log p(x, x₁, …, x_B) against named constrained values ([`Values`]); the layout
//! unpacks z, applies each block's [`Bijector`] and adds the log-Jacobians.

use std::fmt;

use candle_core::Tensor;

use super::bijector::Bijector;
use crate::{Error, Result};

/// A block's constrained shape: `()` for a scalar, `[8]`, `[3, 4]`, a `Vec<usize>` or a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockShape(pub Vec<usize>);

impl<const N: usize> From<[usize; N]> for BlockShape {
    fn from(dims: [usize; N]) -> Self {
        BlockShape(dims.to_vec())
    }
}
impl From<&[usize]> for BlockShape {
    fn from(dims: &[usize]) -> Self {
        BlockShape(dims.to_vec())
    }
}
impl From<Vec<usize>> for BlockShape {
    fn from(dims: Vec<usize>) -> Self {
        BlockShape(dims)
    }
}
impl From<()> for BlockShape {
    fn from(_: ()) -> Self {
        BlockShape(Vec::new())
    }
}
impl From<usize> for BlockShape {
    fn from(n: usize) -> Self {
        BlockShape(vec![n])
    }
}

/// One named block: its constrained shape, its bijector, and where it sits in z.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    name: String,
    shape: Vec<usize>,
    bijector: Bijector,
    offset: usize,
    len: usize,
}

impl Block {
    /// The block's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The constrained shape of one draw (without the leading S axis).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// The constraint.
    pub fn bijector(&self) -> &Bijector {
        &self.bijector
    }
    /// Where the block's unconstrained coordinates start in z.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// How many unconstrained coordinates the block takes.
    pub fn unconstrained_len(&self) -> usize {
        self.len
    }
    /// How many constrained numbers one draw of the block has (the product of its shape).
    pub fn size(&self) -> usize {
        self.shape.iter().product()
    }

    /// The name of each constrained element in row-major order: `tau` for a block of one element,
    /// `theta[0]`, … for a vector and `L[1,0]`, … for a matrix (0-based, as in Rust).
    pub fn element_names(&self) -> Vec<String> {
        if self.size() == 1 {
            return vec![self.name.clone()];
        }
        (0..self.size())
            .map(|flat| {
                let mut index = vec![0; self.shape.len()];
                let mut rest = flat;
                for (i, &n) in self.shape.iter().enumerate().rev() {
                    index[i] = rest % n;
                    rest /= n;
                }
                let index: Vec<String> = index.iter().map(|i| i.to_string()).collect();
                format!("{}[{}]", self.name, index.join(","))
            })
            .collect()
    }
}

/// Named, shaped, constrained latents, declared one block at a time.
///
/// ```
/// use elbo::latent::Latents;
/// let latents = Latents::new().real("mu", [1]).positive("tau", [1]).real("theta_raw", [8]);
/// assert_eq!(latents.dim(), 10);
/// let simplex = Latents::new().simplex("w", [3]);
/// assert_eq!(simplex.dim(), 2); // K − 1 unconstrained coordinates for K weights
/// ```
///
/// Declaration problems (a repeated name, a shape the constraint cannot take, bounds with a ≥ b)
/// do not panic: the first one is reported as [`Error::InvalidLatent`] by [`Latents::validate`],
/// which every fit calls.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latents {
    blocks: Vec<Block>,
    problem: Option<(String, String)>,
}

impl Latents {
    /// No latents yet.
    pub fn new() -> Self {
        Latents::default()
    }

    /// Adds block `name` of constrained shape `shape` (`()` or `[1]` for a scalar, `[8]`, `[3, 4]`,
    /// …) under `bijector`. The bijector acts on the trailing axis (simplex, ordered) or the two
    /// trailing axes (Cholesky factor of a correlation matrix); leading axes are independent copies.
    pub fn add(mut self, name: &str, shape: impl Into<BlockShape>, bijector: Bijector) -> Self {
        let shape = shape.into().0;
        let len = match self.check(name, &shape, &bijector) {
            Ok(len) => len,
            Err(problem) => {
                self.problem.get_or_insert((name.to_string(), problem));
                0
            }
        };
        let offset = self.dim();
        self.blocks.push(Block { name: name.to_string(), shape, bijector, offset, len });
        self
    }

    fn check(&self, name: &str, shape: &[usize], bijector: &Bijector) -> std::result::Result<usize, String> {
        if name.is_empty() {
            return Err("a latent needs a non-empty name".into());
        }
        if self.blocks.iter().any(|b| b.name == name) {
            return Err("the name is declared twice".into());
        }
        if shape.contains(&0) {
            return Err(format!("shape {shape:?} has no elements"));
        }
        bijector.validate()?;
        bijector.unconstrained_len(shape)
    }

    /// An unconstrained block (ℝ).
    pub fn real(self, name: &str, shape: impl Into<BlockShape>) -> Self {
        self.add(name, shape, Bijector::Real)
    }
    /// A positive block, x = exp(u).
    pub fn positive(self, name: &str, shape: impl Into<BlockShape>) -> Self {
        self.add(name, shape, Bijector::Positive)
    }
    /// A positive block through softplus, x = log(1 + eᵘ) (gentler than exp for large u).
    pub fn positive_softplus(self, name: &str, shape: impl Into<BlockShape>) -> Self {
        self.add(name, shape, Bijector::PositiveSoftplus)
    }
    /// A block bounded below, x = a + exp(u) > a.
    pub fn lower_bounded(self, name: &str, shape: impl Into<BlockShape>, a: f64) -> Self {
        self.add(name, shape, Bijector::LowerBounded(a))
    }
    /// A block bounded above, x = b − exp(u) < b.
    pub fn upper_bounded(self, name: &str, shape: impl Into<BlockShape>, b: f64) -> Self {
        self.add(name, shape, Bijector::UpperBounded(b))
    }
    /// A block in the open interval (a, b), x = a + (b − a) σ(u); `(0, 1)` for probabilities.
    pub fn interval(self, name: &str, shape: impl Into<BlockShape>, a: f64, b: f64) -> Self {
        self.add(name, shape, Bijector::Interval(a, b))
    }
    /// Probability vectors on the simplex along the last axis (stick-breaking; K − 1 coordinates).
    pub fn simplex(self, name: &str, shape: impl Into<BlockShape>) -> Self {
        self.add(name, shape, Bijector::Simplex)
    }
    /// Increasing vectors along the last axis (cut-points).
    pub fn ordered(self, name: &str, shape: impl Into<BlockShape>) -> Self {
        self.add(name, shape, Bijector::Ordered)
    }
    /// Positive increasing vectors along the last axis.
    pub fn positive_ordered(self, name: &str, shape: impl Into<BlockShape>) -> Self {
        self.add(name, shape, Bijector::PositiveOrdered)
    }
    /// The lower Cholesky factor L of a k × k correlation matrix (L Lᵀ has a unit diagonal).
    pub fn corr_cholesky(self, name: &str, k: usize) -> Self {
        self.add(name, [k, k], Bijector::CorrCholesky)
    }

    /// D, the length of the unconstrained vector z.
    pub fn dim(&self) -> usize {
        self.blocks.iter().map(|b| b.len).sum()
    }

    /// The blocks in declaration order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The block called `name`, or [`Error::UnknownLatent`] listing the declared names.
    pub fn block(&self, name: &str) -> Result<&Block> {
        self.blocks.iter().find(|b| b.name == name).ok_or_else(|| self.unknown(name))
    }

    fn unknown(&self, name: &str) -> Error {
        Error::UnknownLatent { name: name.to_string(), known: self.blocks.iter().map(|b| b.name.clone()).collect() }
    }

    /// The name of every constrained element, block by block (the columns of draws and summaries).
    pub fn element_names(&self) -> Vec<String> {
        self.blocks.iter().flat_map(Block::element_names).collect()
    }

    /// The first declaration problem, if any, as [`Error::InvalidLatent`]; also refuses an empty
    /// declaration.
    pub fn validate(&self) -> Result<()> {
        if let Some((name, problem)) = &self.problem {
            return Err(Error::InvalidLatent { name: name.clone(), problem: problem.clone() });
        }
        if self.blocks.is_empty() {
            return Err(Error::InvalidLatent { name: String::new(), problem: "no latents are declared".into() });
        }
        Ok(())
    }

    /// Unpacks a batch z `[S, D]` into constrained values by name, with Σ_b log|det J_b| `[S]`.
    pub fn constrain(&self, z: &Tensor) -> candle_core::Result<(Values<'_>, Tensor)> {
        let (s, d) = z.dims2()?;
        if d != self.dim() {
            candle_core::bail!("the latents take z of shape [S, {}], got [{s}, {d}]", self.dim());
        }
        let mut tensors = Vec::with_capacity(self.blocks.len());
        let mut log_det: Option<Tensor> = None;
        for block in &self.blocks {
            let u = if block.len == d { z.clone() } else { z.narrow(1, block.offset, block.len)? };
            if block.bijector == Bijector::Real {
                // nothing to add: skip the zero log-Jacobian (a few ops per block and step)
                let shape: Vec<usize> = std::iter::once(s).chain(block.shape.iter().copied()).collect();
                tensors.push(u.reshape(shape)?);
                continue;
            }
            let (x, ld) = block.bijector.forward(&u, &block.shape)?;
            log_det = Some(match log_det {
                Some(total) => (total + ld)?,
                None => ld,
            });
            tensors.push(x);
        }
        let log_det = match log_det {
            Some(total) => total,
            None => Tensor::zeros(s, z.dtype(), z.device())?,
        };
        Ok((Values { latents: self, tensors }, log_det))
    }

    /// The unconstrained coordinates of one block from its constrained values (row-major, as many as
    /// the block's shape holds). Fails with [`Error::InitValue`] for a wrong count or a value outside
    /// (or on the boundary of) the support.
    pub fn unconstrain(&self, name: &str, values: &[f64]) -> Result<Vec<f64>> {
        let block = self.block(name)?;
        let bad = |problem: String| Error::InitValue { name: name.to_string(), problem };
        if values.len() != block.size() {
            return Err(bad(format!(
                "{} values were given, but shape {:?} holds {}",
                values.len(),
                block.shape,
                block.size()
            )));
        }
        if let Some(problem) = block.bijector.check_support(values, &block.shape) {
            return Err(bad(format!("{problem} (the constraint is {})", block.bijector)));
        }
        let mut shape = vec![1];
        shape.extend_from_slice(&block.shape);
        let x = Tensor::from_vec(values.to_vec(), shape, &candle_core::Device::Cpu)?;
        let u: Vec<f64> = block.bijector.inverse(&x, &block.shape)?.flatten_all()?.to_vec1()?;
        if let Some(i) = u.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "it lies on the boundary of the support ({}): unconstrained coordinate {i} is {}",
                block.bijector, u[i]
            )));
        }
        Ok(u)
    }

    /// A model over these latents from a closure giving log p(x, x₁, …, x_B) at constrained values
    /// (`[S]`, one value per draw); see [`crate::Model`].
    ///
    /// ```
    /// use elbo::prelude::*;
    /// use elbo::latent::Latents;
    /// // log p(τ) = −τ (τ ~ Exponential(1)) on τ > 0; elbo adds log|dτ/du| = u.
    /// let model = Latents::new().positive("tau", ()).model(|v| v.get("tau")?.neg());
    /// assert_eq!(model.dim(), 1);
    /// ```
    pub fn model<F>(self, log_density: F) -> FnModel<F>
    where
        F: Fn(&Values<'_>) -> candle_core::Result<Tensor>,
    {
        FnModel { latents: self, log_density }
    }
}

impl fmt::Display for Latents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.blocks.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{} {:?} {}", b.name, b.shape, b.bijector)?;
        }
        Ok(())
    }
}

/// Constrained values by name for a batch of S draws: each is `[S, shape…]`.
#[derive(Clone, Debug)]
pub struct Values<'a> {
    latents: &'a Latents,
    tensors: Vec<Tensor>,
}

impl Values<'_> {
    /// The constrained value of latent `name`, `[S, shape…]` (`[S]` for a block declared with
    /// shape `()`). An undeclared name is an error that names the declared ones.
    pub fn get(&self, name: &str) -> candle_core::Result<&Tensor> {
        match self.latents.blocks.iter().position(|b| b.name == name) {
            Some(i) => Ok(&self.tensors[i]),
            None => Err(candle_core::Error::WrappedContext {
                wrapped: Box::new(self.latents.unknown(name)),
                context: format!("latent `{name}` is not declared"),
            }),
        }
    }

    /// The latents these values belong to.
    pub fn latents(&self) -> &Latents {
        self.latents
    }
}

/// A model made of [`Latents`] and a closure; see [`Latents::model`].
#[derive(Clone)]
pub struct FnModel<F> {
    latents: Latents,
    log_density: F,
}

impl<F> crate::Model for FnModel<F>
where
    F: Fn(&Values<'_>) -> candle_core::Result<Tensor>,
{
    fn latents(&self) -> &Latents {
        &self.latents
    }
    fn log_density(&self, values: &Values<'_>) -> candle_core::Result<Tensor> {
        (self.log_density)(values)
    }
}

impl<F> fmt::Debug for FnModel<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("latent::FnModel").field("latents", &self.latents).finish_non_exhaustive()
    }
}
