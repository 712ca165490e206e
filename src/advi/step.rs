//! The one step pipeline of stochastic ELBO ascent, for every family, objective and device.
//!
//! ```text
//! ε [S, D] ~ N(0, I)                           seeded host noise
//! z_s = T_λ(ε_s);  H(q) or log q(z_s)           the family
//! log p(x, z_s)                                 the model
//! f, a_s = objective(log p, q's term)
//! ∂f/∂λ = Σ_s a_s [g_s − 𝟙{LogQ} ∇_z log q_⊥(z_s)] ∂z_s/∂λ + 𝟙{Entropy} ∇_λ H(q),  g_s = ∇_z log p(x, z_s)
//! skip if f or the gradient is not finite;  g ← g · min(1, c/‖g‖);  λ ← optimiser(λ, g, η_t)
//! ```
//!
//! Where the family offers its gradient in closed form on the host, the model sees the draws as
//! a leaf: autodiff runs through the model alone and gives g_s, and the chain rule through
//! z = μ + L ε runs on the host. Otherwise the model sees z = T_λ(ε) with its graph, and one
//! backward pass of Σ_s a_s [log p(x, z_s) − 𝟙{LogQ} log q_⊥(z_s)] + 𝟙{Entropy} H(q) gives the
//! same gradient.
//!
//! [`Advi::step`] adds the bookkeeping around one pass: the trace, the snapshots and the
//! recovery from runs of non-finite steps, and the stopping rule.

use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};

use super::recovery::{describe_nonfinite_gradient, describe_nonfinite_log_joint, scalar, Recovered};
use super::start::{Whitened, Whitening};
use super::{Advi, Step, SviState};
use crate::family::{Family, FamilyGradient, HostGaussian, VariationalFamily};
use crate::linalg::to_f64_vec;
use crate::model::LogJoint;
use crate::objective::{evaluate_rows, no_entropy, QTerm, QValues};
use crate::optim::{Gradient, LocStep};
use crate::stop::StopReason;
use crate::stop::{Context, Decision, StopState};
use crate::{Error, Result};

impl<F: Family> Advi<F> {
    /// One step: draws ε, estimates the ELBO, and moves λ along its gradient unless the ELBO or
    /// the gradient is not finite (then the step is skipped and counted). After
    /// `max_consecutive_nonfinite` skipped steps in a row it restores and halves the step size,
    /// or fails (see [`Advi::max_consecutive_nonfinite`]).
    pub fn step<M: LogJoint + ?Sized>(&self, state: &mut SviState<F::Q>, model: &M) -> Result<Step> {
        let start = Instant::now();
        let outcome = self.try_step(state, model);
        state.elapsed += start.elapsed();
        state.iteration += 1;
        let step = outcome?;
        match &step {
            Step::Taken { elbo } => {
                state.trace.push(*elbo);
                state.recovery.taken(state.q.params().into_iter().map(|(_, v)| v))?;
                if let Some(averager) = &mut state.averager {
                    let params =
                        state.q.params().iter().map(|(_, v)| to_f64_vec(v.as_tensor())).collect::<Result<Vec<_>>>()?;
                    averager.observe(state.iteration, &params)?;
                }
            }
            Step::Skipped { detail } => {
                state.trace.push(f64::NAN);
                let vars = state.q.params().into_iter().map(|(_, v)| v);
                let iteration = state.iteration - 1;
                if state.recovery.skipped(vars, &mut state.optimizer, iteration, detail)? == Recovered::Restored {
                    state.lr_scale *= 0.5;
                    if let Some(averager) = &mut state.averager {
                        averager.restart(state.iteration);
                    }
                    match &mut state.stop {
                        StopState::Stationary(rule) => rule.restart(state.iteration),
                        StopState::Rule(rule) => rule.restart(state.iteration),
                        StopState::MaxSteps => {}
                    }
                }
            }
        }
        if matches!(step, Step::Taken { .. }) && self.adapt_whitening(state)? {
            return Ok(step);
        }
        match &mut state.stop {
            StopState::Stationary(rule) => match rule.observe(&state.q, state.iteration)? {
                Decision::Continue => {}
                Decision::Stop(w) => state.stopped = Some(StopReason::Stationary { since: w.since, mcse: w.mcse }),
                Decision::Halve => state.lr_scale *= 0.5,
            },
            StopState::Rule(rule) => {
                let elbo = match &step {
                    Step::Taken { elbo } => Some(*elbo),
                    Step::Skipped { .. } => None,
                };
                let cx = Context {
                    iteration: state.iteration,
                    max_steps: self.steps,
                    elbo,
                    trace: &state.trace,
                    q: Some(&state.q),
                };
                if let Some(reason) = rule.observe(&cx)? {
                    state.stopped = Some(reason);
                }
            }
            StopState::MaxSteps => {}
        }
        Ok(step)
    }

    /// The step pipeline, the same for every family, objective and device:
    /// noise → draws (and q's term) → log p → objective → gradient in λ →
    /// guard → clip → update.
    fn try_step<M: LogJoint + ?Sized>(&self, state: &mut SviState<F::Q>, model: &M) -> Result<Step> {
        let (s, d) = (self.samples, state.q.dim());
        let eps = state.noise.standard_normal_host(s, d, self.dtype)?;
        let rows = match (&mut state.batches, model.data_len()) {
            (Some(batches), Some(n)) => Some(batches.rows(n, self.batch.unwrap_or(n), &self.device)?),
            _ => None,
        };
        let closed_form = self.family_gradient == FamilyGradient::ClosedForm && self.device.is_cpu();
        let whitening = state.whitening.clone();
        let mut draw = Draw::new(&state.q, eps, s, closed_form, &self.device, whitening.clone())?;
        let term = self.objective.q_term();
        // log p_u(u) = log p(x, m + A u) + log |det A| in whitened coordinates: on the host path
        // the draws are already in z, elsewhere the model is seen through the map
        let (log_joint, log_det) = match (&whitening, &draw.how) {
            (None, _) => (evaluate_rows(model, draw.z(), rows.as_ref())?, 0.0),
            (Some(w), Pullback::Host { .. }) => (evaluate_rows(model, draw.z(), rows.as_ref())?, w.log_det()),
            (Some(w), Pullback::Autodiff { .. }) => {
                (evaluate_rows(&Whitened::without_log_det(model, w), draw.z(), rows.as_ref())?, w.log_det())
            }
        };
        let mut lp = to_f64_vec(&log_joint)?;
        if log_det != 0.0 {
            lp.iter_mut().for_each(|v| *v += log_det);
        }
        let q_values = draw.q_values(&state.q, term)?;
        let estimate = self.objective.estimate(&lp, q_values.as_values());
        if estimate.weights.len() != s {
            return Err(Error::config(
                "objective",
                self.objective.name(),
                format!(
                    "its estimate must weigh each of the S = {s} draws; it gave {} weights",
                    estimate.weights.len()
                ),
            ));
        }
        if !estimate.value.is_finite() {
            let z = draw.z().detach();
            let detail = match (&whitening, &draw.how) {
                (Some(w), Pullback::Autodiff { .. }) => {
                    describe_nonfinite_log_joint(&state.q, &Whitened::new(model, w), &z, &log_joint)?
                }
                _ => describe_nonfinite_log_joint(&state.q, model, &z, &log_joint)?,
            };
            return Ok(Step::Skipped { detail });
        }
        let sd = match self.loc_step {
            LocStep::Absolute => None,
            LocStep::ScaleRelative => Some(draw.marginal_sd(&state.q)?),
        };
        let (mut grads, values) = draw.gradient(&state.q, &log_joint, &estimate.weights, term)?;
        grads.scale(-1.0)?; // descent on −ELBO
        if let Some((i, bad)) = grads.first_nonfinite()? {
            let params = state.q.params();
            return Ok(Step::Skipped { detail: describe_nonfinite_gradient(params[i].0, &bad) });
        }
        if let Some(max_norm) = self.clip_grad_norm {
            let norm = grads.norm()?;
            if norm > max_norm {
                grads.scale(max_norm / norm)?;
            }
        }
        let lr = self.lr_at(state);
        // the location is a Gaussian's first parameter
        state.optimizer.update(values, grads, lr, sd.as_deref().map(|sd| (0, sd)))?;
        Ok(Step::Taken { elbo: estimate.value })
    }
}

/// One step's draws of q, and what the family's part of the gradient needs.
struct Draw {
    how: Pullback,
}

/// How the gradient in z is carried back to λ.
enum Pullback {
    /// In closed form on the host ([`HostGaussian`]): the model is differentiated at the leaf `z`
    /// alone, and the chain rule through z = μ + L ε (and z = m + A u in whitened coordinates)
    /// runs on the host.
    Host { q: Box<HostGaussian>, z: Var, eps: Vec<f64>, units: Vec<f64>, whitening: Option<Arc<Whitening>> },
    /// By autodiff: the model sees z = T_λ(ε) with its graph, and one backward pass runs through
    /// the model and the family (`entropy`: H(q) with its graph, once the objective asked for it).
    Autodiff { eps: Tensor, z: Tensor, entropy: Option<Tensor> },
}

/// q's term of the estimate, as [`Objective::q_term`] asked.
enum QOwned {
    Entropy(f64),
    LogQ(Vec<f64>),
}

impl QOwned {
    fn as_values(&self) -> QValues<'_> {
        match self {
            QOwned::Entropy(h) => QValues::Entropy(*h),
            QOwned::LogQ(log_q) => QValues::LogQ(log_q),
        }
    }
}

impl Draw {
    /// z = T_λ(ε) from the host noise `eps` (`[S, D]` row-major): on the host where the family
    /// has its gradient in closed form and `closed_form` allows it, else as a tensor graph.
    fn new<Q: VariationalFamily>(
        q: &Q,
        eps: Vec<f64>,
        s: usize,
        closed_form: bool,
        device: &Device,
        whitening: Option<Arc<Whitening>>,
    ) -> Result<Self> {
        let (d, dtype) = (q.dim(), q.dtype());
        if closed_form {
            if let Some(host) = q.host_gaussian()? {
                let (mut z, units) = host.sample(&eps);
                if let Some(w) = &whitening {
                    z = w.to_model(&z)?;
                }
                let z = Tensor::from_vec(z, (s, d), &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?;
                let z = Var::from_tensor(&z)?;
                return Ok(Draw { how: Pullback::Host { q: Box::new(host), z, eps, units, whitening } });
            }
        }
        let eps = host_noise_tensor(eps, s, d, dtype, device)?;
        let z = q.rsample(&eps)?;
        Ok(Draw { how: Pullback::Autodiff { eps, z, entropy: None } })
    }

    /// z, `[S, D]`, as the model sees it.
    fn z(&self) -> &Tensor {
        match &self.how {
            Pullback::Host { z, .. } => z.as_tensor(),
            Pullback::Autodiff { z, .. } => z,
        }
    }

    /// H(q) or log q(z_s) of the draws.
    fn q_values<Q: VariationalFamily>(&mut self, q: &Q, term: QTerm) -> Result<QOwned> {
        Ok(match (&mut self.how, term) {
            (Pullback::Host { q: host, .. }, QTerm::Entropy) => QOwned::Entropy(host.entropy()),
            (Pullback::Host { q: host, eps, .. }, QTerm::LogQ) => {
                QOwned::LogQ(eps.chunks(host.dim()).map(|e| host.log_prob_of_noise(e)).collect())
            }
            (Pullback::Autodiff { entropy, .. }, QTerm::Entropy) => match q.closed_form_entropy()? {
                Some(h) => {
                    let value = scalar(&h)?;
                    *entropy = Some(h);
                    QOwned::Entropy(value)
                }
                None => return Err(no_entropy(q.name())),
            },
            (Pullback::Autodiff { eps, .. }, QTerm::LogQ) => QOwned::LogQ(to_f64_vec(&q.log_prob_of_noise(eps)?)?),
        })
    }

    /// ∂f/∂λ (ascent) from the draws' log p(x, z_s) (`log_joint`, `[S]`, on the draws' graph)
    /// and the objective's weights (formula in [`crate::objective`]), with q's parameter values
    /// when they were read to the host.
    fn gradient<Q: VariationalFamily>(
        self,
        q: &Q,
        log_joint: &Tensor,
        weights: &[f64],
        term: QTerm,
    ) -> Result<(Gradient, Option<Vec<Vec<f64>>>)> {
        match self.how {
            Pullback::Host { q: host, z, eps, units, whitening } => {
                // ∇_z Σ_s log p(x, z_s); none when log p ignores z
                let mut dlogp = match log_joint.sum_all()?.backward()?.remove(z.as_tensor()) {
                    Some(g) => to_f64_vec(&g)?,
                    None => vec![0.0; eps.len()],
                };
                // in whitened coordinates, ∇_u = Aᵀ ∇_z
                if let Some(w) = &whitening {
                    dlogp = w.gradient_to_u(&dlogp)?;
                }
                let grads = host.gradient(&eps, &units, &dlogp, weights, term);
                Ok((Gradient::Host(grads), Some(host.into_values())))
            }
            Pullback::Autodiff { z, entropy, .. } => {
                let (dtype, device) = (z.dtype(), z.device().clone());
                // Σ_s a_s [log p(x, z_s(λ)) − 𝟙{LogQ} log q_⊥(z_s(λ))] + 𝟙{Entropy} H(q): its gradient
                // in λ is the objective's (the weights fixed, λ held fixed inside log q_⊥)
                let uniform = weights.iter().all(|&w| w == weights[0]);
                let weighted_sum = |per_draw: Tensor| -> Result<Tensor> {
                    // [S] → Σ_s a_s x_s, a scalar multiply when every draw weighs the same
                    if uniform {
                        return Ok((per_draw.sum_all()? * weights[0])?);
                    }
                    let a = Tensor::from_slice(weights, weights.len(), &Device::Cpu)?
                        .to_dtype(dtype)?
                        .to_device(&device)?;
                    Ok((per_draw * a)?.sum_all()?)
                };
                let mut surrogate = weighted_sum(log_joint.clone())?;
                surrogate = match (term, entropy) {
                    (QTerm::Entropy, Some(h)) => (surrogate + h)?,
                    (QTerm::Entropy, None) => match q.closed_form_entropy()? {
                        Some(h) => (surrogate + h)?,
                        None => return Err(no_entropy(q.name())),
                    },
                    (QTerm::LogQ, _) => (surrogate - weighted_sum(q.log_prob(&z)?)?)?,
                };
                let grads = surrogate.backward()?;
                let grads = q.params().iter().map(|(_, v)| grads.get(v.as_tensor()).map(Tensor::detach)).collect();
                Ok((Gradient::Tensors(grads), None))
            }
        }
    }

    /// q's sd of each coordinate (for [`LocStep::ScaleRelative`]).
    fn marginal_sd<Q: VariationalFamily>(&self, q: &Q) -> Result<Vec<f64>> {
        match &self.how {
            Pullback::Host { q: host, .. } => Ok(host.marginal_sd()),
            Pullback::Autodiff { .. } => match q.gaussian() {
                Some(g) => to_f64_vec(&g.marginal_log_sd()?.exp()?),
                None => Err(not_gaussian(q.name())),
            },
        }
    }
}

/// The error for scale-relative location steps on a family that is not a Gaussian.
pub(super) fn not_gaussian(family: &str) -> Error {
    Error::config(
        "loc_step",
        "ScaleRelative",
        format!("the {family} is not a Gaussian: it has no location and sds to measure steps in"),
    )
}

/// The host noise as a `[S, D]` tensor of `dtype` on `device` (the values are exact in `dtype`).
fn host_noise_tensor(eps: Vec<f64>, s: usize, d: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(eps, (s, d), &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?)
}
