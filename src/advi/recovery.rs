//! Non-finite values: the check of the model at the start, the skip-restore-halve recovery
//! ([`Recovery`], which any training loop over candle `Var`s can use: Advi's and the VAE
//! trainer's), and the messages that say which draw or coordinate was not finite.
//!
//! ```text
//! a step whose ELBO estimate or gradient is not finite is skipped;
//! after K skipped steps in a row: λ ← the last good λ, fresh moments, η ← η/2 (at most 3 times), else fail
//! the last good λ: the start, then λ after every P clean steps in a row (P = 10 unless set)
//! ```

use std::borrow::Borrow;

use candle_core::{DType, Tensor, Var};

use crate::family::VariationalFamily;
use crate::linalg::to_f64_vec;
use crate::model::{latents_of, LogJoint};
use crate::noise::{Noise, Stream};
use crate::objective::evaluate;
use crate::optim::OptimizerState;
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
pub const MAX_HALVINGS: usize = 3;

/// Copies (not aliases: `Var::set` writes in place) of q's parameters.
pub(super) fn snapshot<Q: VariationalFamily>(q: &Q) -> Result<Vec<Tensor>> {
    copies(q.params().into_iter().map(|(_, v)| v))
}

fn copies(vars: impl IntoIterator<Item = impl Borrow<Var>>) -> Result<Vec<Tensor>> {
    vars.into_iter().map(|v| Ok(v.borrow().as_tensor().copy()?)).collect()
}

/// The skip-restore-halve bookkeeping of a training loop: the caller skips a step whose loss or
/// gradient is not finite (leaving the parameters alone) and says so with [`Recovery::skipped`];
/// a step it takes it reports with [`Recovery::taken`]. After `max_consecutive` skips in a row
/// the parameters go back to the last snapshot, the optimiser's memory is reset and the caller
/// is told to halve its step size, at most [`MAX_HALVINGS`] times; the next such run (or one
/// before any step was taken since the start or the last restore: nothing to undo) is an
/// [`Error::NonFinite`].
#[derive(Debug)]
pub struct Recovery {
    max_consecutive: usize,
    snapshot_every: usize,
    skipped: usize,
    consecutive: usize,
    /// Steps taken since the last skip or snapshot.
    taken_in_a_row: usize,
    /// The parameters at the start, then after each run of `snapshot_every` clean steps: buffers
    /// of their own, written in place (a snapshot allocates nothing).
    last_good: Vec<Var>,
    halvings: usize,
    /// Whether a step was taken since the start or the last restore.
    moved: bool,
}

/// What the caller does after a skipped step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovered {
    /// Nothing: go on.
    Continue,
    /// The parameters were restored and the optimiser reset: halve the step size (and restart
    /// whatever learnt from the steps since the snapshot).
    Restored,
}

impl Recovery {
    /// The bookkeeping for parameters that start at `start` (copies, not aliases of the
    /// variables); a snapshot every 10 clean steps.
    pub fn new(start: Vec<Tensor>, max_consecutive: usize) -> Result<Self> {
        let own = |t: Tensor| if t.is_variable() { Var::from_tensor(&t.copy()?) } else { Var::from_tensor(&t) };
        let last_good = start.into_iter().map(own).collect::<candle_core::Result<_>>()?;
        Ok(Recovery {
            max_consecutive,
            snapshot_every: SNAPSHOT_EVERY,
            skipped: 0,
            consecutive: 0,
            taken_in_a_row: 0,
            last_good,
            halvings: 0,
            moved: false,
        })
    }

    /// The bookkeeping for `vars` at their current values (copied now).
    pub fn for_vars(vars: &[Var], max_consecutive: usize) -> Result<Self> {
        Self::new(copies(vars)?, max_consecutive)
    }

    /// A snapshot after every `n` clean steps in a row (at least 1) instead of 10.
    pub fn snapshot_every(mut self, n: usize) -> Self {
        self.snapshot_every = n.max(1);
        self
    }

    /// A step was taken: `vars` (in the order of the start) moved.
    pub fn taken(&mut self, vars: impl IntoIterator<Item = impl Borrow<Var>>) -> Result<()> {
        self.consecutive = 0;
        self.moved = true;
        self.taken_in_a_row += 1;
        if self.taken_in_a_row >= self.snapshot_every {
            for (buffer, var) in self.last_good.iter().zip(vars) {
                buffer.set(var.borrow().as_tensor())?;
            }
            self.taken_in_a_row = 0;
        }
        Ok(())
    }

    /// The parameters were moved to new coordinates: `vars` as they are now is the point to
    /// return to, as at a start.
    pub(crate) fn rebase(&mut self, vars: impl IntoIterator<Item = impl Borrow<Var>>) -> Result<()> {
        for (buffer, var) in self.last_good.iter().zip(vars) {
            buffer.set(var.borrow().as_tensor())?;
        }
        (self.taken_in_a_row, self.moved) = (0, false);
        Ok(())
    }

    /// Step `iteration` (from 0) was skipped because of `detail`. At the limit of skips in a
    /// row: restores `vars`, resets `optimizer` and returns [`Recovered::Restored`], or fails.
    pub fn skipped(
        &mut self,
        vars: impl IntoIterator<Item = impl Borrow<Var>>,
        optimizer: &mut OptimizerState,
        iteration: usize,
        detail: &str,
    ) -> Result<Recovered> {
        self.skipped += 1;
        self.consecutive += 1;
        self.taken_in_a_row = 0;
        if self.consecutive < self.max_consecutive {
            return Ok(Recovered::Continue);
        }
        // Back to the last parameters after a clean stretch, at half the step size, with fresh
        // optimiser moments; fail once that has not helped, or at once if the parameters have
        // not moved since the start or the last restore (nothing to undo).
        if self.halvings < MAX_HALVINGS && self.moved {
            for (var, value) in vars.into_iter().zip(&self.last_good) {
                var.borrow().set(value.as_tensor())?;
            }
            optimizer.reset()?;
            self.halvings += 1;
            self.consecutive = 0;
            self.moved = false;
            return Ok(Recovered::Restored);
        }
        let halved = match self.halvings {
            0 => String::new(),
            h => format!(" (after restoring the last good parameters and halving the step size {h} times)"),
        };
        Err(Error::NonFinite { iteration, consecutive: self.consecutive, detail: format!("{detail}{halved}") })
    }

    /// Steps skipped so far.
    pub fn skipped_steps(&self) -> usize {
        self.skipped
    }

    /// Steps skipped in a row up to now.
    pub fn consecutive(&self) -> usize {
        self.consecutive
    }

    /// Restores so far (each halved the step size).
    pub fn halvings(&self) -> usize {
        self.halvings
    }
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
