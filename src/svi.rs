//! The engine: stochastic ascent of the ELBO with reparameterisation gradients (ADVI,
//! Kucukelbir et al. 2017).
//!
//! ```text
//! each step t:  ε ~ N(0, I) [S, D] from the seeded stream
//!               z = μ + L ε,  ELBO_t = estimator(log p(x, z), q)
//!               g = ∇_λ (−ELBO_t);  skip the step if ELBO_t or g is not finite
//!               g ← g · min(1, c / ‖g‖₂)            (with `clip_grad_norm(c)`)
//!               λ ← optimiser(λ, g, η_t · 2^(−h))
//! after K skipped steps in a row: λ ← the last good λ, fresh moments, h ← h + 1 (h ≤ 3), else fail
//! ```
//!
//! [`Advi`] holds the settings; [`Advi::fit`] validates, runs every step and returns a [`Fit`].
//! For manual control, [`Advi::init`] gives an [`SviState`] (a value: iteration, RNG, optimiser
//! moments, q) that [`Advi::step`] advances and [`Advi::run`] finishes.

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor, Var};

use crate::adapt::LrSearch;
use crate::diagnose::Diagnostics;
use crate::family::{Family, FamilyGradient, HostGaussian, Init, ScaleLink, VariationalFamily};
use crate::fit::{Averaged, Fit, Method, StopReason, SUMMARY_DRAWS};
use crate::latent::{Latents, Start};
use crate::linalg::{host_tensor, to_f64_vec};
use crate::map::Map;
use crate::model::LogJoint;
use crate::noise::{Noise, Stream};
use crate::objective::{evaluate, evaluate_rows, Estimator};
use crate::observe::{Observer, StepInfo};
use crate::optim::{LocStep, LrSchedule, Optimizer, OptimizerState};
use crate::stop::{Decision, StopRule, StopState};
use crate::summary::Draws;
use crate::{runtime, Error, Result};

/// Settings of a stochastic-ELBO fit; the builder of every fit.
///
/// ```
/// use elbo::prelude::*;
/// // log p(z) of N((1, -2), I), up to a constant
/// let model = elbo::from_fn(2, |z: &Tensor| {
///     let target = Tensor::new(&[1.0f64, -2.0], z.device())?;
///     z.broadcast_sub(&target)?.sqr()?.sum(1)? * -0.5
/// });
/// let fit = Advi::new(MeanField)
///     .dtype(DType::F64)
///     .samples(4)
///     .steps(2_000)
///     .lr(0.05)
///     .lr_schedule(LrSchedule::Exponential { final_lr: 1e-3 }) // settle at the optimum
///     .seed(1)
///     .fit(&model)?;
/// let mean = fit.mean()?.to_vec1::<f64>()?; // the posterior sd is 1
/// assert!((mean[0] - 1.0).abs() < 0.1 && (mean[1] + 2.0).abs() < 0.1);
/// println!("{fit}");
/// # Ok::<(), elbo::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Advi<F: Family> {
    family: F,
    samples: usize,
    steps: usize,
    seed: u64,
    optimizer: Optimizer,
    schedule: LrSchedule,
    estimator: Estimator,
    dtype: DType,
    device: Device,
    start: Start,
    init_map: Option<Map>,
    batch: Option<usize>,
    clip_grad_norm: Option<f64>,
    stop: Option<StopRule>,
    max_time: Option<Duration>,
    lr_search: Option<LrSearch>,
    loc_step: LocStep,
    family_gradient: FamilyGradient,
    init_scale: f64,
    link: ScaleLink,
    elbo_draws: usize,
    max_consecutive_nonfinite: usize,
    diagnostics: bool,
}

impl<F: Family> Advi<F> {
    /// Settings for fitting `family` with the defaults: 1 draw per step, at most 10,000 steps with
    /// the stationary stopping rule ([`Advi::stop`]), seed 0,
    /// Adam with η = 0.01 and a constant rate, the entropy estimator, F32 on the CPU, initial
    /// location 0 and scale 0.1 with a log link, 1,000 fresh draws for the final ELBO and the PSIS
    /// diagnostics, and failure after 20 non-finite steps in a row.
    pub fn new(family: F) -> Self {
        Advi {
            family,
            samples: 1,
            steps: 10_000,
            seed: 0,
            optimizer: Optimizer::default(),
            schedule: LrSchedule::Constant,
            estimator: Estimator::Entropy,
            dtype: DType::F32,
            device: Device::Cpu,
            start: Start::default(),
            init_map: None,
            batch: None,
            clip_grad_norm: None,
            stop: None,
            max_time: None,
            lr_search: None,
            loc_step: LocStep::Absolute,
            family_gradient: FamilyGradient::ClosedForm,
            init_scale: 0.1,
            link: ScaleLink::Log,
            elbo_draws: 1_000,
            max_consecutive_nonfinite: 20,
            diagnostics: true,
        }
    }

    /// S, the number of draws of z per step (≥ 1).
    pub fn samples(mut self, s: usize) -> Self {
        self.samples = s;
        self
    }

    /// The most optimisation steps (every one of them with [`StopRule::MaxSteps`] or a decaying
    /// schedule; the default rule usually stops sooner).
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }

    /// The seed of every random draw; the same seed gives bit-identical results on the CPU.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The optimiser, e.g. `Optimizer::sgd(1e-3)`.
    pub fn optimizer(mut self, optimizer: Optimizer) -> Self {
        self.optimizer = optimizer;
        self
    }

    /// The (base) learning rate of the current optimiser.
    pub fn lr(mut self, lr: f64) -> Self {
        self.optimizer = self.optimizer.with_lr(lr);
        self
    }

    /// How the learning rate changes over the steps.
    pub fn lr_schedule(mut self, schedule: LrSchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// The ELBO estimator that drives the gradient.
    pub fn estimator(mut self, estimator: Estimator) -> Self {
        self.estimator = estimator;
        self
    }

    /// The floating-point type of q and of the draws passed to the model (F32 or F64); the
    /// model's own tensors must have the same.
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// The device of q and of the draws; the model's tensors must be there too.
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// The initial mean of q (length D); default zero.
    pub fn init_loc(mut self, loc: Vec<f64>) -> Self {
        self.start.loc = Some(loc);
        self
    }

    /// The initial value of latent `name` in the constrained space (row-major, as many numbers as
    /// its shape holds), e.g. `.init_value("tau", [2.0])`; q starts with its mean there. Latents
    /// not given start at u = 0 (or `init_loc`). The fit fails with a clear error for an unknown
    /// name, a wrong count, or a value outside the latent's support. A plain [`LogJoint`] has one
    /// real block called `z`.
    pub fn init_value(mut self, name: &str, values: impl AsRef<[f64]>) -> Self {
        self.start.value(name, values.as_ref());
        self
    }

    /// Start q's mean at the posterior mode found by `map` (from `init_loc` / `init_value`), the
    /// MAP in the unconstrained space; see [`crate::map::Map`]. Its curvature check is skipped: a
    /// start needs no Hessian.
    pub fn init_map(mut self, map: Map) -> Self {
        self.init_map = Some(map);
        self
    }

    /// Gradient-norm clipping: when ‖g‖₂ over all of q's parameters exceeds `max_norm`, the
    /// gradient is scaled to that norm before the optimiser sees it. Off by default (Adam is
    /// invariant to the gradient's scale; plain SGD is not).
    pub fn clip_grad_norm(mut self, max_norm: f64) -> Self {
        self.clip_grad_norm = Some(max_norm);
        self
    }

    /// Minibatch SVI (Hoffman et al. 2013): each step uses `b` data points drawn at random without
    /// replacement (seeded), with the likelihood scaled by N / b so the ELBO gradient stays unbiased.
    /// N comes from the model's data ([`LogJoint::data_len`]); the final ELBO and diagnostics use
    /// all the data. The model must support it (every [`crate::Model`] that implements `data_len`,
    /// `log_prior` and `log_likelihood`), and 1 ≤ b ≤ N.
    pub fn batch(mut self, b: usize) -> Self {
        self.batch = Some(b);
        self
    }

    /// The initial scale of q, L = scale · I (> 0); default 0.1.
    pub fn init_scale(mut self, scale: f64) -> Self {
        self.init_scale = scale;
        self
    }

    /// How the positive scales of q are parameterised; default [`ScaleLink::Log`].
    pub fn scale_link(mut self, link: ScaleLink) -> Self {
        self.link = link;
        self
    }

    /// The number of fresh draws for the final ELBO estimate and its standard error (≥ 2).
    pub fn elbo_draws(mut self, draws: usize) -> Self {
        self.elbo_draws = draws;
        self
    }

    /// Whether the fit ends with PSIS diagnostics (k̂, log-evidence estimate) on the ELBO's fresh
    /// draws; default on. They cost one sort of the draws.
    pub fn diagnostics(mut self, on: bool) -> Self {
        self.diagnostics = on;
        self
    }

    /// How many non-finite steps in a row are skipped (≥ 1) before the fit acts: it restores q's
    /// parameters from before the trouble (the start, or the end of the last 10 clean steps in a
    /// row), forgets the optimiser's moments and halves the step size, up to 3 times; after that,
    /// or when q had not moved since the start or the last restore, it fails with
    /// [`Error::NonFinite`] naming the iteration and the coordinates. Default 20.
    pub fn max_consecutive_nonfinite(mut self, n: usize) -> Self {
        self.max_consecutive_nonfinite = n;
        self
    }

    /// Validates, initialises, runs every step, and reports.
    pub fn fit<M: LogJoint + ?Sized>(&self, model: &M) -> Result<Fit<F::Q>> {
        self.fit_with(model, &mut [])
    }

    /// [`Advi::fit`] with observers that see every step (a progress bar, a log; see
    /// [`crate::observe`]); they change nothing, so the result is the same bit for bit.
    ///
    /// ```
    /// use elbo::observe::{LogFormat, Progress, Trace, TraceLog};
    /// use elbo::prelude::*;
    /// let model = elbo::from_fn(2, |z: &Tensor| z.sqr()?.sum(1)? * -0.5);
    /// let advi = Advi::new(MeanField).dtype(DType::F64).steps(200);
    /// let (mut bar, mut trace) = (Progress::new(200), Trace::default());
    /// let mut log = TraceLog::new(Vec::new(), LogFormat::Csv);
    /// let fit = advi.fit_with(&model, &mut [&mut bar, &mut trace, &mut log])?;
    /// assert_eq!(trace.elbo, fit.trace());
    /// assert_eq!(String::from_utf8(log.into_inner()).unwrap().lines().count(), 201); // header + steps
    /// # Ok::<(), elbo::Error>(())
    /// ```
    pub fn fit_with<M: LogJoint + ?Sized>(&self, model: &M, observers: &mut [&mut dyn Observer]) -> Result<Fit<F::Q>> {
        let Some(search) = &self.lr_search else {
            let state = self.init(model)?;
            return self.run_with(state, model, observers);
        };
        let report = search.run(self, model)?;
        let advi = self.clone().lr(report.chosen).loc_step(report.loc_step);
        let state = advi.init(model)?;
        let mut fit = advi.run_with(state, model, observers)?;
        fit.lr_search = Some(report);
        Ok(fit)
    }

    /// Searches the step size before the fit (Stan's grid by default, see [`LrSearch`]): short
    /// trials from the initial q, one per step size, and the fit runs with the best. The choice
    /// is in [`Fit::lr_search`] and the report.
    pub fn lr_search(mut self, search: LrSearch) -> Self {
        self.lr_search = Some(search);
        self
    }

    /// How the location's steps are measured: in the model's units ([`LocStep::Absolute`], the
    /// default) or in q's sds ([`LocStep::ScaleRelative`], for posteriors whose scales differ by
    /// orders of magnitude).
    pub fn loc_step(mut self, loc_step: LocStep) -> Self {
        self.loc_step = loc_step;
        self
    }

    /// How q's part of the ELBO gradient is computed: in closed form on the CPU for the built-in
    /// families (the default; only the model goes through autodiff), or by autodiff through
    /// everything. Both give the same gradient up to rounding; see [`crate::family::closed_form`].
    pub fn family_gradient(mut self, how: FamilyGradient) -> Self {
        self.family_gradient = how;
        self
    }

    pub(crate) fn seed_value(&self) -> u64 {
        self.seed
    }

    pub(crate) fn dtype_value(&self) -> DType {
        self.dtype
    }

    pub(crate) fn device_value(&self) -> Device {
        self.device.clone()
    }

    /// The stopping rule. By default a fit with a constant step size stops by
    /// [`StopRule::stationary`] (stationary iterates, averaged until the average's Monte Carlo
    /// error is small; q is the average), and a fit with a decaying schedule runs all its steps
    /// ([`StopRule::MaxSteps`]), since the schedule is planned over them.
    pub fn stop(mut self, rule: StopRule) -> Self {
        self.stop = Some(rule);
        self
    }

    /// A wall-time budget for the steps: the fit stops with [`StopReason::WallTime`] once the
    /// steps have taken this long.
    pub fn max_time(mut self, budget: Duration) -> Self {
        self.max_time = Some(budget);
        self
    }

    /// The rule in force: the one set, else stationarity with a constant step size (with halving
    /// after a step-size search, whose pick is often too large to stop at).
    pub fn stop_rule(&self) -> StopRule {
        self.stop.unwrap_or(match self.schedule {
            LrSchedule::Constant if self.lr_search.is_some() => {
                StopRule::Stationary { rhat: 1.1, tol: 0.02, halving: true }
            }
            LrSchedule::Constant => StopRule::stationary(),
            _ => StopRule::MaxSteps,
        })
    }

    /// Validates the settings and the model and makes the initial state.
    pub fn init<M: LogJoint + ?Sized>(&self, model: &M) -> Result<SviState<F::Q>> {
        self.validate()?;
        let mut loc = self.start.point(model)?;
        if let Some(map) = &self.init_map {
            loc = map.as_start(self.dtype, &self.device).init_loc(loc).fit(model)?.loc().to_vec();
        }
        let init =
            Init { loc, scale: self.init_scale, link: self.link, dtype: self.dtype, device: self.device.clone() };
        let q = self.family.init(&init)?;
        self.init_from(q, model)
    }

    /// Validates and makes the initial state from a given q (a warm start); q must have the
    /// fit's dtype and device.
    pub fn init_from<M: LogJoint + ?Sized>(&self, q: F::Q, model: &M) -> Result<SviState<F::Q>> {
        self.validate()?;
        if q.dtype() != self.dtype || !q.device().same_device(&self.device) {
            return Err(Error::config(
                "init_from",
                format!("a {} in {:?} on {:?}", q.name(), q.dtype(), q.device().location()),
                format!("q must match the fit's dtype {:?} and device {:?}", self.dtype, self.device.location()),
            ));
        }
        validate_model(&q, model, self.samples)?;
        let batches = self.batches(model)?;
        check_start(&q, model, self.seed)?;
        runtime::default_threads();
        let vars = q.params().into_iter().map(|(_, v)| v).collect();
        let start = snapshot(&q)?;
        Ok(SviState {
            optimizer: OptimizerState::new(self.optimizer, vars)?,
            q,
            noise: Noise::new(self.seed, Stream::Optimise),
            batches,
            stop: StopState::new(self.stop_rule(), self.steps),
            stopped: None,
            iteration: 0,
            trace: Vec::with_capacity(self.steps.min(1 << 16)),
            skipped: 0,
            consecutive_skipped: 0,
            taken_in_a_row: 0,
            last_good: start, // the start passed check_start: a point to return to
            lr_scale: 1.0,
            halvings: 0,
            moved: false,
            elapsed: Duration::ZERO,
        })
    }

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
                state.consecutive_skipped = 0;
                state.moved = true;
                state.taken_in_a_row += 1;
                if state.taken_in_a_row >= SNAPSHOT_EVERY {
                    state.last_good = snapshot(&state.q)?;
                    state.taken_in_a_row = 0;
                }
                if let StopState::Stan(rule) = &mut state.stop {
                    if let Some((statistic, value)) = rule.observe(*elbo) {
                        state.stopped = Some(StopReason::Stan { statistic, value });
                    }
                }
            }
            Step::Skipped { detail } => {
                state.trace.push(f64::NAN);
                state.skipped += 1;
                state.consecutive_skipped += 1;
                state.taken_in_a_row = 0;
                if state.consecutive_skipped >= self.max_consecutive_nonfinite {
                    // Back to the last parameters after a clean stretch, at half the step size,
                    // with fresh optimiser moments; fail once that has not helped, or at once if
                    // q has not moved since the start or the last restore (nothing to undo).
                    if state.halvings < MAX_HALVINGS && state.moved {
                        for ((_, var), value) in state.q.params().iter().zip(&state.last_good) {
                            var.set(value)?;
                        }
                        state.optimizer.reset()?;
                        state.lr_scale *= 0.5;
                        state.halvings += 1;
                        state.consecutive_skipped = 0;
                        state.moved = false;
                        if let StopState::Stationary(rule) = &mut state.stop {
                            rule.restart(state.iteration);
                        }
                    } else {
                        let halved = match state.halvings {
                            0 => String::new(),
                            h => format!(
                                " (after restoring the last good parameters and halving the step size {h} times)"
                            ),
                        };
                        return Err(Error::NonFinite {
                            iteration: state.iteration - 1,
                            consecutive: state.consecutive_skipped,
                            detail: format!("{detail}{halved}"),
                        });
                    }
                }
            }
        }
        if let StopState::Stationary(rule) = &mut state.stop {
            match rule.observe(&state.q, state.iteration)? {
                Decision::Continue => {}
                Decision::Stop(w) => state.stopped = Some(StopReason::Stationary { since: w.since, mcse: w.mcse }),
                Decision::Halve => state.lr_scale *= 0.5,
            }
        }
        Ok(step)
    }

    fn try_step<M: LogJoint + ?Sized>(&self, state: &mut SviState<F::Q>, model: &M) -> Result<Step> {
        if self.family_gradient == FamilyGradient::ClosedForm && self.device.is_cpu() {
            if let Some(host) = state.q.host_gaussian()? {
                return self.try_step_closed_form(state, model, host);
            }
        }
        let q = &state.q;
        let eps = state.noise.standard_normal(self.samples, q.dim(), self.dtype, &self.device)?;
        let rows = match (&mut state.batches, model.data_len()) {
            (Some(batches), Some(n)) => Some(batches.rows(n, self.batch.unwrap_or(n), &self.device)?),
            _ => None,
        };
        let est = self.estimator.estimate(q, model, &eps, rows.as_ref())?;
        let elbo = scalar(&est.elbo)?;
        if !elbo.is_finite() {
            let detail = describe_nonfinite_log_joint(q, model, &est.z, &est.log_joint)?;
            return Ok(Step::Skipped { detail });
        }
        let grads = est.elbo.neg()?.backward()?;
        let params = q.params();
        let present: Vec<(&str, &Tensor)> =
            params.iter().filter_map(|(name, v)| grads.get(v.as_tensor()).map(|g| (*name, g))).collect();
        // One host read for all gradients: Σ |g| is finite iff every entry is.
        let mut total = Tensor::zeros((), DType::F64, &self.device)?;
        for (_, g) in &present {
            total = (total + g.abs()?.sum_all()?.to_dtype(DType::F64)?)?;
        }
        if !scalar(&total)?.is_finite() {
            for (name, g) in &present {
                if !all_finite(g)? {
                    return Ok(Step::Skipped { detail: describe_nonfinite_grad(name, g)? });
                }
            }
        }
        let clip = match self.clip_grad_norm {
            Some(max_norm) => {
                let mut sq = Tensor::zeros((), DType::F64, &self.device)?;
                for (_, g) in &present {
                    sq = (sq + g.sqr()?.sum_all()?.to_dtype(DType::F64)?)?;
                }
                let norm = scalar(&sq)?.sqrt();
                (norm > max_norm).then(|| max_norm / norm)
            }
            None => None,
        };
        drop(present);
        let mut grads = grads;
        if let Some(factor) = clip {
            for (_, var) in &params {
                if let Some(g) = grads.get(var.as_tensor()) {
                    let scaled = (g.detach() * factor)?;
                    grads.insert(var.as_tensor(), scaled);
                }
            }
        }
        let lr = self.schedule.lr_at(self.optimizer.lr(), state.iteration, self.steps) * state.lr_scale;
        match self.loc_step {
            LocStep::Absolute => state.optimizer.step(&grads, lr)?,
            LocStep::ScaleRelative => {
                let Some(loc) = params.iter().position(|(name, _)| *name == "loc") else {
                    return Err(Error::config("loc_step", "ScaleRelative", "the family has no parameter named `loc`"));
                };
                let sd = state.q.marginal_log_sd()?.exp()?;
                state.optimizer.step_scaled(&grads, lr, Some((loc, &sd)))?
            }
        }
        Ok(Step::Taken { elbo })
    }

    /// [`Advi::try_step`] with q's part of the gradient in closed form on the host: the model is
    /// differentiated once, with the draws as the leaf (see [`crate::family::closed_form`]).
    fn try_step_closed_form<M: LogJoint + ?Sized>(
        &self,
        state: &mut SviState<F::Q>,
        model: &M,
        host: HostGaussian,
    ) -> Result<Step> {
        let (s, d) = (self.samples, host.dim());
        let eps = state.noise.standard_normal_host(s, d, self.dtype)?;
        let rows = match (&mut state.batches, model.data_len()) {
            (Some(batches), Some(n)) => Some(batches.rows(n, self.batch.unwrap_or(n), &self.device)?),
            _ => None,
        };
        let (z, units) = host.sample(&eps);
        let z = Tensor::from_vec(z, (s, d), &Device::Cpu)?.to_dtype(self.dtype)?;
        let z = Var::from_tensor(&z.to_device(&self.device)?)?;
        let log_joint = evaluate_rows(model, z.as_tensor(), rows.as_ref())?;
        let lp = to_f64_vec(&log_joint)?;
        let mean_lp = lp.iter().sum::<f64>() / s as f64;
        let elbo = match self.estimator {
            Estimator::Entropy => mean_lp + host.entropy(),
            Estimator::StickingTheLanding => {
                mean_lp - eps.chunks(d).map(|e| host.log_prob_of_noise(e)).sum::<f64>() / s as f64
            }
        };
        if !elbo.is_finite() {
            let detail = describe_nonfinite_log_joint(&state.q, model, z.as_tensor(), &log_joint)?;
            return Ok(Step::Skipped { detail });
        }
        let dlogp = match log_joint.sum_all()?.backward()?.get(z.as_tensor()) {
            Some(g) => to_f64_vec(g)?,
            None => vec![0.0; s * d], // log p(x, z) does not depend on z
        };
        // Descent on −ELBO.
        let mut grads = host.elbo_gradient(&eps, &units, &dlogp, self.estimator);
        grads.iter_mut().flatten().for_each(|g| *g = -*g);
        let params = state.q.params();
        for ((name, _), g) in params.iter().zip(&grads) {
            if g.iter().any(|x| !x.is_finite()) {
                return Ok(Step::Skipped { detail: describe_nonfinite_values(name, g) });
            }
        }
        if let Some(max_norm) = self.clip_grad_norm {
            let norm = grads.iter().flatten().map(|g| g * g).sum::<f64>().sqrt();
            if norm > max_norm {
                grads.iter_mut().flatten().for_each(|g| *g *= max_norm / norm);
            }
        }
        let lr = self.schedule.lr_at(self.optimizer.lr(), state.iteration, self.steps) * state.lr_scale;
        let sd = (self.loc_step == LocStep::ScaleRelative).then(|| host.marginal_sd());
        let scale = match &sd {
            None => None,
            Some(sd) => match params.iter().position(|(name, _)| *name == "loc") {
                Some(loc) => Some((loc, sd.as_slice())),
                None => {
                    return Err(Error::config("loc_step", "ScaleRelative", "the family has no parameter named `loc`"))
                }
            },
        };
        state.optimizer.step_host(host.into_values(), &grads, lr, scale)?;
        Ok(Step::Taken { elbo })
    }

    /// Runs the remaining steps (up to the `steps` setting), then estimates the final ELBO on
    /// fresh draws and reports; the report takes q over from the state.
    pub fn run<M: LogJoint + ?Sized>(&self, state: SviState<F::Q>, model: &M) -> Result<Fit<F::Q>> {
        self.run_with(state, model, &mut [])
    }

    /// [`Advi::run`] with observers that see every remaining step.
    pub fn run_with<M: LogJoint + ?Sized>(
        &self,
        mut state: SviState<F::Q>,
        model: &M,
        observers: &mut [&mut dyn Observer],
    ) -> Result<Fit<F::Q>> {
        let reason = loop {
            if let Some(reason) = state.stopped {
                break reason;
            }
            if state.iteration >= self.steps {
                break StopReason::MaxSteps;
            }
            if self.max_time.is_some_and(|budget| state.elapsed >= budget) {
                break StopReason::WallTime;
            }
            let lr = self.schedule.lr_at(self.optimizer.lr(), state.iteration, self.steps) * state.lr_scale;
            let step = self.step(&mut state, model)?;
            if !observers.is_empty() {
                let elbo = match step {
                    Step::Taken { elbo } => elbo,
                    Step::Skipped { .. } => f64::NAN,
                };
                let info = StepInfo { iteration: state.iteration, steps: self.steps, elbo, lr, elapsed: state.elapsed };
                for observer in observers.iter_mut() {
                    observer.on_step(&info)?;
                }
            }
        };
        for observer in observers.iter_mut() {
            observer.on_finish()?;
        }
        self.report(state, model, reason)
    }

    fn report<M: LogJoint + ?Sized>(&self, state: SviState<F::Q>, model: &M, reason: StopReason) -> Result<Fit<F::Q>> {
        // Iterate averaging: q becomes the average of the stationary window, if one was found.
        let mut averaged = None;
        let mut rule_halvings = 0;
        if let StopState::Stationary(rule) = &state.stop {
            rule_halvings = rule.halvings();
            if let (Some(window), Some((steps, mean))) = (rule.window(), rule.average()) {
                for ((_, var), value) in state.q.params().iter().zip(mean) {
                    var.set(&host_tensor(value, var)?)?;
                }
                averaged = Some(Averaged { since: window.since, steps, mcse: window.mcse });
            }
        }
        let q = &state.q;
        for (name, var) in q.params() {
            if !all_finite(var.as_tensor())? {
                return Err(Error::NonFinite {
                    iteration: state.iteration,
                    consecutive: state.consecutive_skipped,
                    detail: format!("the parameter `{name}` of q is not finite after the last step"),
                });
            }
        }
        let ratios = log_ratios(q, model, self.elbo_draws, self.seed, self.dtype, &self.device)?;
        let (elbo, elbo_se) = mean_se(&ratios);
        let elbo_nonfinite = ratios.iter().filter(|x| !x.is_finite()).count();
        let diagnostics = self.diagnostics.then(|| Diagnostics::from_log_ratios(&ratios));
        let family = q.name();
        let latents = latents_of(model);
        let eps =
            Noise::new(self.seed, Stream::Draws).standard_normal(SUMMARY_DRAWS, q.dim(), self.dtype, &self.device)?;
        let summary = Draws::from_unconstrained(&latents, &q.rsample(&eps)?.detach())?.summary();
        Ok(Fit {
            q: state.q,
            family,
            estimator: self.estimator,
            optimizer: self.optimizer,
            stop_reason: reason,
            iterations: state.iteration,
            skipped: state.skipped,
            trace: state.trace,
            elbo,
            elbo_se,
            elbo_draws: self.elbo_draws,
            elbo_nonfinite,
            diagnostics,
            elapsed: state.elapsed,
            seed: self.seed,
            latents,
            summary,
            halvings: state.halvings,
            averaged,
            rule_halvings,
            final_lr: self.schedule.lr_at(self.optimizer.lr(), state.iteration, self.steps) * state.lr_scale,
            lr_search: None,
            method: Method::Advi,
        })
    }

    /// The minibatch row stream, after checking the `batch` setting against the model's data.
    fn batches<M: LogJoint + ?Sized>(&self, model: &M) -> Result<Option<Noise>> {
        let Some(b) = self.batch else { return Ok(None) };
        let Some(n) = model.data_len() else {
            return Err(Error::config(
                "batch",
                b,
                "this model cannot be fitted on minibatches: implement data_len, log_prior and log_likelihood",
            ));
        };
        if b == 0 || b > n {
            return Err(Error::config("batch", b, format!("the minibatch size must be between 1 and N = {n}")));
        }
        if n > u32::MAX as usize {
            return Err(Error::config("batch", b, format!("N = {n} data points exceed the u32 row index")));
        }
        Ok(Some(Noise::new(self.seed, Stream::Batches)))
    }

    fn validate(&self) -> Result<()> {
        if self.samples == 0 {
            return Err(Error::config("samples", 0, "at least one draw per step is needed"));
        }
        if !(self.init_scale > 0.0 && self.init_scale.is_finite()) {
            return Err(Error::config("init_scale", self.init_scale, "the initial scale must be positive and finite"));
        }
        if self.elbo_draws < 2 {
            return Err(Error::config(
                "elbo_draws",
                self.elbo_draws,
                "at least 2 draws are needed for a standard error",
            ));
        }
        if self.max_consecutive_nonfinite == 0 {
            return Err(Error::config("max_consecutive_nonfinite", 0, "must be at least 1"));
        }
        if !matches!(self.dtype, DType::F32 | DType::F64) {
            return Err(Error::config("dtype", format!("{:?}", self.dtype), "use DType::F32 or DType::F64"));
        }
        if let Some(c) = self.clip_grad_norm {
            if !(c > 0.0 && c.is_finite()) {
                return Err(Error::config(
                    "clip_grad_norm",
                    c,
                    "the largest gradient norm must be positive and finite",
                ));
            }
        }
        if let Some(budget) = self.max_time {
            if budget.is_zero() {
                return Err(Error::config("max_time", format!("{budget:?}"), "the wall-time budget must be positive"));
            }
        }
        self.stop_rule().validate()?;
        if let Some(search) = &self.lr_search {
            search.validate()?;
        }
        self.optimizer.validate()?;
        self.schedule.validate()
    }
}

/// What one step did.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The parameters moved; `elbo` is this step's Monte Carlo ELBO estimate.
    Taken {
        /// The step's ELBO estimate.
        elbo: f64,
    },
    /// The ELBO or gradient was not finite, so the parameters were left alone.
    Skipped {
        /// What was not finite, and where.
        detail: String,
    },
}

/// Everything a fit carries from step to step.
#[derive(Debug)]
pub struct SviState<Q> {
    /// The variational family at its current parameters.
    pub q: Q,
    optimizer: OptimizerState,
    noise: Noise,
    /// Draws the minibatch rows (None: every step sees all the data).
    batches: Option<Noise>,
    /// The stopping rule's memory.
    stop: StopState,
    /// Set once the stopping rule has decided.
    stopped: Option<StopReason>,
    iteration: usize,
    trace: Vec<f64>,
    skipped: usize,
    consecutive_skipped: usize,
    /// Steps taken since the last skip or snapshot.
    taken_in_a_row: usize,
    /// q's parameters at the start, then after each run of `SNAPSHOT_EVERY` clean steps.
    last_good: Vec<Tensor>,
    /// The factor on the step size (halved after each recovery from non-finite steps).
    lr_scale: f64,
    halvings: usize,
    /// Whether a step was taken since the start or the last restore.
    moved: bool,
    elapsed: Duration,
}

impl<Q> SviState<Q> {
    /// The stopping rule's decision, once it has made one (`run` stops there; a manual loop of
    /// [`Advi::step`] should too).
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stopped
    }

    /// Steps taken or skipped so far.
    pub fn iteration(&self) -> usize {
        self.iteration
    }

    /// The ELBO estimate of every step so far (NaN for skipped steps).
    pub fn trace(&self) -> &[f64] {
        &self.trace
    }

    /// Steps skipped so far because of non-finite values.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

/// Checks that the model's dimension is q's, and that `log_joint` keeps its contract on a batch of
/// `samples` draws at q's mean.
fn validate_model<Q: VariationalFamily, M: LogJoint + ?Sized>(q: &Q, model: &M, samples: usize) -> Result<()> {
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
const SNAPSHOT_EVERY: usize = 10;

/// How many times a run of non-finite steps may be answered by restoring and halving.
const MAX_HALVINGS: usize = 3;

/// Copies (not aliases: `Var::set` writes in place) of q's parameters.
fn snapshot<Q: VariationalFamily>(q: &Q) -> Result<Vec<Tensor>> {
    q.params().iter().map(|(_, v)| Ok(v.as_tensor().copy()?)).collect()
}

/// The named latents of the model, or one real block `z` for a plain [`LogJoint`].
pub(crate) fn latents_of<M: LogJoint + ?Sized>(model: &M) -> Latents {
    model.named_latents().cloned().unwrap_or_else(|| Latents::new().real("z", [model.dim()]))
}

/// How many draws of the initial q [`check_start`] tries besides q's mean.
const START_DRAWS: usize = 4;

/// Fails with [`Error::NonFiniteInit`] when log p(x, z) is not finite at q's initial mean, or at
/// every one of [`START_DRAWS`] draws from the initial q (a model that is fine near the mean but
/// occasionally not finite further out is left to the step's skipping).
fn check_start<Q: VariationalFamily, M: LogJoint + ?Sized>(q: &Q, model: &M, seed: u64) -> Result<()> {
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
fn name_coordinates<M: LogJoint + ?Sized>(detail: &str, model: &M) -> String {
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

/// log p(x, zᵢ) − log q(zᵢ) for `draws` fresh draws zᵢ ~ q (the ELBO is their mean).
pub(crate) fn log_ratios<Q: VariationalFamily, M: LogJoint + ?Sized>(
    q: &Q,
    model: &M,
    draws: usize,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<Vec<f64>> {
    // up to 256 draws a call, fewer for big data sets: S · N ≤ 4 Mi keeps the model's [S, N, …]
    // intermediates within a few hundred MB (N = 100,000 gives 41 draws a call)
    let chunk = model.data_len().map_or(256, |n| (1usize << 22) / n.max(1)).clamp(1, 256);
    let mut noise = Noise::new(seed, Stream::Evaluate);
    let mut w = Vec::with_capacity(draws);
    while w.len() < draws {
        let n = chunk.min(draws - w.len());
        let eps = noise.standard_normal(n, q.dim(), dtype, device)?;
        let z = q.rsample(&eps)?.detach();
        let log_w = (evaluate(model, &z)? - q.log_prob_of_noise(&eps)?)?;
        w.extend(to_f64_vec(&log_w)?);
    }
    Ok(w)
}

/// Mean and Monte Carlo standard error.
pub(crate) fn mean_se(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// A scalar tensor's value as f64.
fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Says which draw gave a non-finite log p, and which of its coordinates alone make log p
/// non-finite when moved there from q's mean (one batched call of `log_joint`).
fn describe_nonfinite_log_joint<Q: VariationalFamily, M: LogJoint + ?Sized>(
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

fn all_finite(t: &Tensor) -> Result<bool> {
    Ok(scalar(&t.abs()?.sum_all()?)?.is_finite())
}

/// Says which coordinates of a parameter's gradient are not finite.
fn describe_nonfinite_grad(name: &str, g: &Tensor) -> Result<String> {
    Ok(describe_nonfinite_values(name, &to_f64_vec(g)?))
}

fn describe_nonfinite_values(name: &str, g: &[f64]) -> String {
    let bad: Vec<usize> = (0..g.len()).filter(|&i| !g[i].is_finite()).take(10).collect();
    format!("the gradient of `{name}` is not finite at flat indices {bad:?} (log p(x, z) was finite)")
}

fn format_vec(v: &[f64]) -> String {
    const SHOW: usize = 8;
    let head: Vec<String> = v.iter().take(SHOW).map(|x| format!("{x:.4}")).collect();
    let more = if v.len() > SHOW { format!(", … ({} more)", v.len() - SHOW) } else { String::new() };
    format!("[{}{more}]", head.join(", "))
}
