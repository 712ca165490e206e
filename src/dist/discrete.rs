//! Discrete distributions parameterised on the real line: Bernoulli and Binomial by the
//! log-odds, Poisson by the log-rate, Categorical by unnormalised log-probabilities.
//!
//! ```text
//! Bernoulli(l):     log p(y) = y·l − softplus(l)                                     y ∈ {0, 1}
//! Binomial(n, l):   log p(k) = ln Γ(n+1) − ln Γ(k+1) − ln Γ(n−k+1) + k·l − n·softplus(l)   k ∈ {0..n}
//! Poisson(η):       log p(k) = k·η − e^η − ln Γ(k+1)                                 k ∈ {0, 1, …}
//! Categorical(l):   log p(k) = l_k − ln Σⱼ e^(l_j)                                   k ∈ {0..K−1}
//! softplus(l) = ln(1 + eˡ),  p = σ(l) = 1/(1 + e^(−l)),  λ = e^η
//! ```
//! These forms never compute ln p or ln(1 − p) from p, so they stay finite for any finite l or η
//! (y·ln p + (1 − y)·ln(1 − p) = y·l − softplus(l), since ln σ(l) = l − softplus(l)).

use candle_core::{bail, DType, Result, Shape, Tensor, D};

use super::{broadcast_shape, check_param, check_value, last_dim, Distribution, Param, Rule};

/// The Bernoulli distribution with log-odds `logits` = l = ln(p / (1 − p)):
///
/// ```text
/// log p(y) = y·l − softplus(l)        y ∈ {0, 1}
/// ```
///
/// The value is a floating-point tensor of 0s and 1s. Other values are not checked: the formula
/// is evaluated as written (it is linear in y).
#[derive(Clone, Debug)]
pub struct Bernoulli {
    logits: Param,
}

impl Bernoulli {
    /// Bernoulli(σ(logits)). Errors if a scalar `logits` is not finite.
    pub fn new(logits: impl Into<Param>) -> Result<Self> {
        let logits = logits.into();
        check_param("Bernoulli", "logits", &logits, Rule::Finite)?;
        Ok(Bernoulli { logits })
    }
}

impl Distribution for Bernoulli {
    fn log_prob(&self, y: &Tensor) -> Result<Tensor> {
        check_value("Bernoulli", y, &[("logits", &self.logits)])?;
        Param::from(y).mul(&self.logits)?.sub(&self.logits.softplus()?)?.tensor()
    }
}

/// The binomial distribution: the number of successes in `total_count` = n trials, each with
/// log-odds `logits` = l:
///
/// ```text
/// log p(k) = ln Γ(n+1) − ln Γ(k+1) − ln Γ(n−k+1) + k·l − n·softplus(l)        k ∈ {0, …, n}
/// ```
///
/// The value is a floating-point tensor of counts. Counts outside {0, …, n} are not checked;
/// there ln Γ meets its poles and the result is NaN or meaningless (statrs gives −∞). CPU-only
/// (ln Γ of the value).
#[derive(Clone, Debug)]
pub struct Binomial {
    total_count: Param,
    logits: Param,
}

impl Binomial {
    /// Binomial(total_count, σ(logits)). Errors if a scalar `total_count` is not finite and ≥ 0,
    /// or a scalar `logits` is not finite.
    pub fn new(total_count: impl Into<Param>, logits: impl Into<Param>) -> Result<Self> {
        let (total_count, logits) = (total_count.into(), logits.into());
        check_param("Binomial", "total_count", &total_count, Rule::NonNegative)?;
        check_param("Binomial", "logits", &logits, Rule::Finite)?;
        Ok(Binomial { total_count, logits })
    }
}

impl Distribution for Binomial {
    fn log_prob(&self, k: &Tensor) -> Result<Tensor> {
        check_value("Binomial", k, &[("total_count", &self.total_count), ("logits", &self.logits)])?;
        let (n, l) = (&self.total_count, &self.logits);
        let kp = Param::from(k);
        let choose = n.affine(1.0, 1.0)?.lgamma()?.sub(&kp.affine(1.0, 1.0)?.lgamma()?)?;
        let choose = choose.sub(&n.affine(1.0, 1.0)?.sub(&kp)?.lgamma()?)?;
        choose.add(&kp.mul(l)?)?.sub(&n.mul(&l.softplus()?)?)?.tensor()
    }
}

/// The Poisson distribution with log-rate `log_rate` = η (rate λ = e^η):
///
/// ```text
/// log p(k) = k·η − e^η − ln Γ(k+1)        k ∈ {0, 1, …}
/// ```
///
/// The value is a floating-point tensor of counts. Negative counts are not checked (ln Γ(k+1)
/// is then NaN or meaningless; statrs gives −∞). CPU-only (ln Γ of the value).
#[derive(Clone, Debug)]
pub struct Poisson {
    log_rate: Param,
}

impl Poisson {
    /// Poisson(e^log_rate). Errors if a scalar `log_rate` is not finite.
    pub fn new(log_rate: impl Into<Param>) -> Result<Self> {
        let log_rate = log_rate.into();
        check_param("Poisson", "log_rate", &log_rate, Rule::Finite)?;
        Ok(Poisson { log_rate })
    }
}

impl Distribution for Poisson {
    fn log_prob(&self, k: &Tensor) -> Result<Tensor> {
        check_value("Poisson", k, &[("log_rate", &self.log_rate)])?;
        let eta = &self.log_rate;
        let kp = Param::from(k);
        kp.mul(eta)?.sub(&eta.exp()?)?.sub(&kp.affine(1.0, 1.0)?.lgamma()?)?.tensor()
    }
}

/// The categorical distribution over {0, …, K−1} with unnormalised log-probabilities `logits`,
/// a tensor `[..., K]`:
///
/// ```text
/// log p(k) = l_k − ln Σⱼ e^(l_j)        (a log-softmax over the last axis, then the k-th entry)
/// ```
///
/// `log_prob(k)` takes an index tensor whose shape broadcasts against the batch shape of the
/// logits (all but the last axis), of dtype u8, u32, i64 or a float dtype holding whole numbers;
/// the result has the broadcast batch shape. Indices are checked on the host (one read of the
/// index tensor): a negative, fractional, non-finite or ≥ K index is an error. The gradient with
/// respect to the logits is exact (the log-softmax is built from differentiable ops; candle's
/// fused `softmax_last_dim` has none). A row of logits that are all −∞ gives NaN.
#[derive(Clone, Debug)]
pub struct Categorical {
    logits: Tensor,
}

impl Categorical {
    /// Categorical(softmax(logits)). Errors unless `logits` is a floating-point tensor with at
    /// least one axis and K ≥ 1.
    pub fn new(logits: impl Into<Param>) -> Result<Self> {
        let logits = match logits.into() {
            Param::Tensor(t) => t,
            Param::Scalar(v) => bail!("Categorical: `logits` must be a tensor [..., K], got the scalar {v}"),
        };
        check_param("Categorical", "logits", &Param::Tensor(logits.clone()), Rule::Finite)?;
        if last_dim("Categorical", "`logits`", &logits)? == 0 {
            bail!("Categorical: `logits` has K = 0 categories");
        }
        Ok(Categorical { logits })
    }

    /// The normalised log-probabilities ln p_k, `[..., K]`.
    pub fn log_probs(&self) -> Result<Tensor> {
        // the max is a constant shift: detaching it leaves the value and the gradient exact
        // (and avoids max's duplicated gradient on ties)
        let l = &self.logits;
        let m = l.max_keepdim(D::Minus1)?.detach();
        let lse = l.broadcast_sub(&m)?.exp()?.sum_keepdim(D::Minus1)?.log()?.broadcast_add(&m)?;
        l.broadcast_sub(&lse)
    }

    /// Checks the indices against K on the host and returns them as u32.
    fn indices(&self, k: &Tensor) -> Result<Tensor> {
        let n_cat = self.logits.dim(D::Minus1)?;
        if !matches!(k.dtype(), DType::U8 | DType::U32 | DType::I64) && !k.dtype().is_float() {
            bail!("Categorical: indices must be u8, u32, i64 or float, got dtype {:?}", k.dtype());
        }
        if !k.device().same_device(self.logits.device()) {
            bail!("Categorical: indices are on {:?} but the logits are on {:?}", k.device(), self.logits.device());
        }
        let host = k.detach().flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        if let Some(bad) = host.iter().find(|&&v| !(v >= 0.0 && v < n_cat as f64 && v.fract() == 0.0)) {
            bail!("Categorical: index {bad} is not one of 0, 1, …, {} (K = {n_cat})", n_cat - 1);
        }
        k.to_dtype(DType::U32)
    }
}

impl Distribution for Categorical {
    fn log_prob(&self, k: &Tensor) -> Result<Tensor> {
        let idx = self.indices(k)?;
        let lp = self.log_probs()?;
        if lp.rank() == 1 {
            // one set of logits for every index: a single index_select
            return lp.index_select(&idx.flatten_all()?, 0)?.reshape(k.shape());
        }
        let dims = lp.dims();
        let n_cat = dims[dims.len() - 1];
        let batch = broadcast_shape("Categorical", k.shape(), &Shape::from(&dims[..dims.len() - 1]))?;
        let mut full = batch.dims().to_vec();
        full.push(n_cat);
        let lp = lp.broadcast_as(full)?.contiguous()?;
        let idx = idx.broadcast_as(batch)?.unsqueeze(D::Minus1)?.contiguous()?;
        lp.gather(&idx, D::Minus1)?.squeeze(D::Minus1)
    }
}
