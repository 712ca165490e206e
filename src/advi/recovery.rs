//! Non-finite values: the check of the model at the start, the skip-restore-halve recovery's
//! constants and snapshots, and the messages that say which draw or coordinate was not finite.
//!
//! ```text
//! a step whose ELBO estimate or gradient is not finite is skipped;
//! after K skipped steps in a row: λ ← the last good λ, fresh moments, η ← η/2 (at most 3 times), else fail
//! ```

use candle_core::{DType, Tensor};

use crate::family::VariationalFamily;
use crate::linalg::to_f64_vec;
use crate::model::{latents_of, LogJoint};
use crate::noise::{Noise, Stream};
use crate::objective::evaluate;
use crate::summary::Draws;
use crate::{Error, Result};

/// Checks that the model's dimension is q's, and that `log_joint` keeps its contract on a batch of
/// `samples` draws at q's mean.
pub(super) fn validate_model<Q: VariationalFamily, M: LogJoint + ?Sized>(
    q: &Q,
    model: &M,
    samples: usize,
) -> Result<()> {
    if let Some(latents) = model.named_latents() {
        latents.validate()?;
    }
    let d = model.dim();
    if d == 0 {
        return Err(Error::ModelOutput { problem: "dim() is 0: a model needs at least one latent coordinate".into() });
    }
    if q.dim() != d {
        return Err(Error::DimensionMismatch { what: format!("the {}", q.name()), expected: d, got: q.dim() });
    }
    let z = q.loc()?.unsqueeze(0)?.repeat((samples, 1))?;
    evaluate(model, &z)?;
    Ok(())
}

/// Clean steps in a row after which q's parameters are kept as the point to return to.
pub(super) const SNAPSHOT_EVERY: usize = 10;

/// How many times a run of non-finite steps may be answered by restoring and halving.
pub(super) const MAX_HALVINGS: usize = 3;

/// Copies (not aliases: `Var::set` writes in place) of q's parameters.
pub(super) fn snapshot<Q: VariationalFamily>(q: &Q) -> Result<Vec<Tensor>> {
    q.params().iter().map(|(_, v)| Ok(v.as_tensor().copy()?)).collect()
}

/// How many draws of the initial q [`check_start`] tries besides q's mean.
pub(super) const START_DRAWS: usize = 4;

/// Fails with [`Error::NonFiniteInit`] when log p(x, z) is not finite at q's initial mean, or at
/// every one of [`START_DRAWS`] draws from the initial q (a model that is fine near the mean but
/// occasionally not finite further out is left to the step's skipping).
pub(super) fn check_start<Q: VariationalFamily, M: LogJoint + ?Sized>(q: &Q, model: &M, seed: u64) -> Result<()> {
    let eps = Noise::new(seed, Stream::Start).standard_normal(START_DRAWS, q.dim(), q.dtype(), &q.device())?;
    let z = Tensor::cat(&[q.loc()?.detach().unsqueeze(0)?, q.rsample(&eps)?.detach()], 0)?;
    let lp = evaluate(model, &z)?;
    let values = to_f64_vec(&lp)?;
    if values[0].is_finite() && values[1..].iter().any(|v| v.is_finite()) {
        return Ok(());
    }
    let detail = if values[0].is_finite() {
        name_coordinates(&describe_nonfinite_log_joint(q, model, &z, &lp)?, model)
    } else {
        let at = Draws::from_unconstrained(&latents_of(model), &z.narrow(0, 0, 1)?)?;
        let shown: Vec<String> =
            at.names().iter().zip(at.row(0)).take(8).map(|(name, v)| format!("{name} = {v:.4}")).collect();
        let more = if at.names().len() > 8 { format!(", … ({} more)", at.names().len() - 8) } else { String::new() };
        format!("log p(x, z) = {} at q's initial mean, where {}{more}", values[0], shown.join(", "))
    };
    Err(Error::NonFiniteInit { detail })
}

/// Rewrites `z[i]` in a diagnosis as `z[i] (block `name`)` when the model has named latents.
pub(super) fn name_coordinates<M: LogJoint + ?Sized>(detail: &str, model: &M) -> String {
    let Some(latents) = model.named_latents() else { return detail.to_string() };
    let mut out = detail.to_string();
    for block in latents.blocks() {
        for i in block.offset()..block.offset() + block.unconstrained_len() {
            let from = format!("z[{i}] =");
            out = out.replace(&from, &format!("z[{i}] (unconstrained `{}`) =", block.name()));
        }
    }
    out
}

/// A scalar tensor's value as f64.
pub(super) fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Says which draw gave a non-finite log p, and which of its coordinates alone make log p
/// non-finite when moved there from q's mean (one batched call of `log_joint`).
pub(super) fn describe_nonfinite_log_joint<Q: VariationalFamily, M: LogJoint + ?Sized>(
    q: &Q,
    model: &M,
    z: &Tensor,
    log_joint: &Tensor,
) -> Result<String> {
    let lp = to_f64_vec(log_joint)?;
    let Some(s) = lp.iter().position(|x| !x.is_finite()) else {
        return Ok("the entropy of q is not finite (its scale overflowed or vanished)".into());
    };
    let zs = to_f64_vec(&z.get(s)?)?;
    let shown = format_vec(&zs);
    let bad_z: Vec<usize> = (0..zs.len()).filter(|&i| !zs[i].is_finite()).collect();
    if !bad_z.is_empty() {
        return Ok(format!("draw {s} has non-finite coordinates {bad_z:?} (q's scale overflowed): z = {shown}"));
    }
    let mean = q.loc()?.detach();
    let at_mean = to_f64_vec(&evaluate(model, &mean.unsqueeze(0)?)?)?[0];
    if !at_mean.is_finite() {
        return Ok(format!("log p(x, z) = {} for draw {s} (z = {shown}), and also {at_mean} at q's mean", lp[s]));
    }
    // Row i: q's mean with coordinate i moved to the offending draw's value.
    let d = zs.len();
    let eye = Tensor::eye(d, z.dtype(), z.device())?;
    let base = mean.unsqueeze(0)?.broadcast_as((d, d))?;
    let moved = z.get(s)?.detach().unsqueeze(0)?.broadcast_as((d, d))?;
    let probe = ((base * (1.0 - &eye)?)? + (moved * &eye)?)?;
    let single = to_f64_vec(&evaluate(model, &probe)?)?;
    let culprits: Vec<String> =
        (0..d).filter(|&i| !single[i].is_finite()).map(|i| format!("z[{i}] = {}", zs[i])).collect();
    Ok(if culprits.is_empty() {
        format!("log p(x, z) = {} for draw {s}, z = {shown}; no single coordinate alone makes it non-finite", lp[s])
    } else {
        format!("log p(x, z) = {} for draw {s}, caused by {} (z = {shown})", lp[s], culprits.join(", "))
    })
}

pub(super) fn all_finite(t: &Tensor) -> Result<bool> {
    Ok(scalar(&t.abs()?.sum_all()?)?.is_finite())
}

/// Says which coordinates of a parameter's gradient are not finite (their flat indices).
pub(super) fn describe_nonfinite_gradient(name: &str, bad: &[usize]) -> String {
    format!("the gradient of `{name}` is not finite at flat indices {bad:?} (log p(x, z) was finite)")
}

pub(super) fn format_vec(v: &[f64]) -> String {
    const SHOW: usize = 8;
    let head: Vec<String> = v.iter().take(SHOW).map(|x| format!("{x:.4}")).collect();
    let more = if v.len() > SHOW { format!(", … ({} more)", v.len() - SHOW) } else { String::new() };
    format!("[{}{more}]", head.join(", "))
}
