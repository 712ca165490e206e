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
//!
//! - `step.rs`: the one step pipeline (noise → draws → log p → objective → gradient → update);
//! - `state.rs`: what a fit carries from step to step;
//! - `recovery.rs`: the start check and the recovery from non-finite steps;
//! - `lr_search.rs`: the step-size search before a fit;
//! - `start.rs`: the default start at Pathfinder's Gaussian, with the steps in its whitened
//!   coordinates.

mod lr_search;
mod recovery;
mod start;
mod state;
mod step;

pub use crate::report::LrSearchReport;
pub use lr_search::LrSearch;
pub use recovery::{Recovered, Recovery, MAX_HALVINGS};
pub use state::{Step, SviState};

use std::sync::Arc;
use std::time::Duration;

use candle_core::{DType, Device};

use crate::average::Averager;
use crate::family::{Family, FamilyGradient, Init, ScaleLink, VariationalFamily};
use crate::latent::Start;
use crate::linalg::host_tensor;
use crate::map::Map;
use crate::model::LogJoint;
use crate::noise::{Noise, Stream};
use crate::objective::{Estimator, Objective, QTerm};
use crate::observe::{FinishInfo, Observer, StartInfo, StepInfo};
use crate::optim::{LocStep, LrSchedule, Optimizer, OptimizerState, UpdateRule};
use crate::pathfinder::Pathfinder;
use crate::report::{log_ratios, mean_se, Averaged, Evaluation, Fit, Method, Run, StartRecord, Stochastic};
use crate::stop::StopReason;
use crate::stop::{Rule, StopRule, StopState};
use crate::{runtime, Error, Result};
use recovery::{all_finite, check_start, snapshot, validate_model};
use start::{Begin, Whitened, Whitening};

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
    /// A user's own update rule, in force instead of `optimizer`'s when set.
    update_rule: Option<Arc<dyn UpdateRule>>,
    schedule: LrSchedule,
    objective: Arc<dyn Objective>,
    dtype: DType,
    device: Device,
    start: Start,
    init_map: Option<Map>,
    /// The default start: Pathfinder's Gaussian, steps in its whitened coordinates (None: the
    /// point start).
    pathfinder: Option<Pathfinder>,
    /// The start once found (a step-size search's trials share it).
    begin: Option<Begin>,
    batch: Option<usize>,
    clip_grad_norm: Option<f64>,
    stop: Option<StopRule>,
    /// A user's own stopping rule, in force instead of `stop` when set.
    stop_when: Option<Arc<dyn Rule>>,
    /// Averages the iterates (with a rule other than the stationary one, which averages itself).
    averager: Option<Arc<dyn Averager>>,
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
    /// Settings for fitting `family` with the defaults: the start at Pathfinder's Gaussian with
    /// the steps in its whitened coordinates, for the built-in families ([`Advi::init_pathfinder`];
    /// other families start at location 0 and scale 0.1), 1 draw per step, at most 10,000 steps
    /// with the stationary stopping rule ([`Advi::stop`]), seed 0, Adam with η = 0.01 and a
    /// constant rate, the entropy estimator, F32 on the CPU, a log link for the scales, 4,000
    /// fresh draws for the final ELBO and the PSIS diagnostics, and failure after 20 non-finite
    /// steps in a row.
    pub fn new(family: F) -> Self {
        Advi {
            family,
            samples: 1,
            steps: 10_000,
            seed: 0,
            optimizer: Optimizer::default(),
            update_rule: None,
            schedule: LrSchedule::Constant,
            objective: Arc::new(Estimator::Entropy),
            dtype: DType::F32,
            device: Device::Cpu,
            start: Start::default(),
            init_map: None,
            pathfinder: Some(Pathfinder::new()),
            begin: None,
            batch: None,
            clip_grad_norm: None,
            stop: None,
            stop_when: None,
            averager: None,
            max_time: None,
            lr_search: None,
            loc_step: LocStep::Absolute,
            family_gradient: FamilyGradient::ClosedForm,
            init_scale: 0.1,
            link: ScaleLink::Log,
            elbo_draws: crate::report::EVALUATION_DRAWS,
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
        self.update_rule = None;
        self
    }

    /// A user's own update rule ([`crate::optim::UpdateRule`]) instead of the built-in ones; it
    /// is given the step size of [`Advi::lr`] and the schedule. Each fit starts from a copy of
    /// `rule` as given.
    pub fn update_rule(mut self, rule: impl UpdateRule + Clone + 'static) -> Self {
        self.update_rule = Some(Arc::new(rule));
        self
    }

    /// The update rule in force: the user's own, else the built-in optimiser's.
    fn rule(&self) -> Box<dyn UpdateRule> {
        match &self.update_rule {
            Some(rule) => rule.clone_rule(),
            None => self.optimizer.rule(),
        }
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

    /// The ELBO estimator that drives the gradient (a built-in [`Objective`]).
    pub fn estimator(mut self, estimator: Estimator) -> Self {
        self.objective = Arc::new(estimator);
        self
    }

    /// The objective that drives the gradient: a built-in [`Estimator`] or a user's own
    /// (see [`crate::objective`]).
    pub fn objective(mut self, objective: impl Objective + 'static) -> Self {
        self.objective = Arc::new(objective);
        self
    }

    /// The step size of the next step: the schedule's η_t times the recovery's halvings.
    pub(crate) fn lr_at<Q>(&self, state: &SviState<Q>) -> f64 {
        self.schedule.lr_at(self.optimizer.lr(), state.iteration, self.steps) * state.lr_scale
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

    /// The initial mean of q (length D), or with Pathfinder on, the start of its first path;
    /// default zero.
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
    /// MAP in the unconstrained space, with scale `init_scale`; see [`crate::map::Map`]. Its
    /// curvature check is skipped: a start needs no Hessian. This is a point start: it turns
    /// Pathfinder off.
    pub fn init_map(mut self, map: Map) -> Self {
        self.init_map = Some(map);
        self.pathfinder = None;
        self
    }

    /// Where q starts: at the Gaussian `pathfinder` finds from `init_loc` / `init_value` (the
    /// default, [`Pathfinder::new`]), with the steps run in its whitened coordinates (see
    /// `start.rs`: z = m + A u with A Aᵀ its covariance, so that every step is in posterior sds
    /// whatever the posterior's scale), or with `None` at the point (`init_loc`, `init_value`,
    /// `init_map`) with scale `init_scale`, steps in the model's coordinates. Only families with
    /// affine maps ([`Family::affine_kind`]: the built-in Gaussians) are whitened. When every
    /// path fails, the fit starts at the point and its report says why
    /// ([`crate::report::StartRecord`]).
    pub fn init_pathfinder(mut self, pathfinder: Option<Pathfinder>) -> Self {
        self.pathfinder = pathfinder;
        self.begin = None;
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

    /// The initial scale of q at a point start, L = scale · I (> 0); default 0.1. This is a
    /// point start: it turns Pathfinder off ([`Advi::init_pathfinder`]).
    pub fn init_scale(mut self, scale: f64) -> Self {
        self.init_scale = scale;
        self.pathfinder = None;
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
        // the trials and the fit share one start
        let mut shared = self.clone();
        self.validate()?;
        shared.begin = Some(self.begin(model, &self.start_point(model)?)?);
        let report = search.run(&shared, model)?;
        let advi = shared.lr(report.chosen).loc_step(report.loc_step);
        let state = advi.init(model)?;
        let mut fit = advi.run_with(state, model, observers)?;
        fit.set_lr_search(report);
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
        self.stop_when = None;
        self
    }

    /// Iterate averaging ([`crate::average`]): q at the end is `averager`'s average of the
    /// iterates. The stationary stopping rule averages over its own window and takes precedence
    /// when it finds one.
    pub fn averager(mut self, averager: impl Averager + Clone + 'static) -> Self {
        self.averager = Some(Arc::new(averager));
        self
    }

    /// A user's own stopping rule ([`crate::stop::Rule`]) instead of the built-in ones: each fit
    /// starts from a copy of `rule` as given.
    pub fn stop_when(mut self, rule: impl Rule + Clone + 'static) -> Self {
        self.stop_when = Some(Arc::new(rule));
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

    /// Validates the settings and the model and makes the initial state (running Pathfinder for
    /// the default start). With Pathfinder's start, the state's q is in the whitened coordinates
    /// u; the report's q is in the model's.
    pub fn init<M: LogJoint + ?Sized>(&self, model: &M) -> Result<SviState<F::Q>> {
        self.validate()?;
        let loc = self.start_point(model)?;
        let (whitening, record) = self.begin(model, &loc)?;
        let (loc, scale) = match &whitening {
            // q_u = N(0, I) is Pathfinder's Gaussian
            Some(_) => (vec![0.0; loc.len()], 1.0),
            None => (loc, self.init_scale),
        };
        let init = Init { loc, scale, link: self.link, dtype: self.dtype, device: self.device.clone() };
        let q = self.family.init(&init)?;
        self.state_from(q, model, whitening, record)
    }

    /// The point the fit (or Pathfinder's first path) starts from: `init_loc` / `init_value`, then
    /// `init_map`'s search from there.
    fn start_point<M: LogJoint + ?Sized>(&self, model: &M) -> Result<Vec<f64>> {
        let loc = self.start.point(model)?;
        match &self.init_map {
            Some(map) => Ok(map.as_start(self.dtype, &self.device).init_loc(loc).fit(model)?.loc().to_vec()),
            None => Ok(loc),
        }
    }

    /// Validates and makes the initial state from a given q (a warm start), in the model's
    /// coordinates; q must have the fit's dtype and device.
    pub fn init_from<M: LogJoint + ?Sized>(&self, q: F::Q, model: &M) -> Result<SviState<F::Q>> {
        self.validate()?;
        self.state_from(q, model, None, StartRecord::Point)
    }

    /// The initial state from q, in the coordinates of `whitening` (None: the model's).
    fn state_from<M: LogJoint + ?Sized>(
        &self,
        q: F::Q,
        model: &M,
        whitening: Option<Arc<Whitening>>,
        start: StartRecord,
    ) -> Result<SviState<F::Q>> {
        if q.dtype() != self.dtype || !q.device().same_device(&self.device) {
            return Err(Error::config(
                "init_from",
                format!("a {} in {:?} on {:?}", q.name(), q.dtype(), q.device().location()),
                format!("q must match the fit's dtype {:?} and device {:?}", self.dtype, self.device.location()),
            ));
        }
        match &whitening {
            Some(w) => validate_model(&q, &Whitened::new(model, w), self.samples)?,
            None => validate_model(&q, model, self.samples)?,
        }
        self.check_family(&q)?;
        let batches = self.batches(model)?;
        match &whitening {
            Some(w) => check_start(&q, &Whitened::new(model, w), self.seed)?,
            None => check_start(&q, model, self.seed)?,
        }
        runtime::default_threads();
        let vars = q.params().into_iter().map(|(_, v)| v).collect();
        let snapshot_at_start = snapshot(&q)?;
        Ok(SviState {
            optimizer: OptimizerState::with_rule(self.rule(), vars)?,
            q,
            noise: Noise::new(self.seed, Stream::Optimise),
            batches,
            averager: self.averager.as_ref().map(|a| a.clone_averager()),
            stop: match &self.stop_when {
                Some(rule) => StopState::Rule(rule.clone_rule()),
                None => StopState::new(self.stop_rule(), self.steps),
            },
            stopped: None,
            iteration: 0,
            trace: Vec::with_capacity(self.steps.min(1 << 16)),
            // the start passed check_start: a point to return to
            recovery: Recovery::new(snapshot_at_start, self.max_consecutive_nonfinite)?,
            lr_scale: 1.0,
            elapsed: Duration::ZERO,
            whitening,
            start,
        })
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
        let start =
            StartInfo { steps: self.steps, iteration: state.iteration, family: state.q.name(), dim: state.q.dim() };
        for observer in observers.iter_mut() {
            observer.on_start(&start)?;
        }
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
            let lr = self.lr_at(&state);
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
        let finish = FinishInfo { iterations: state.iteration, stop_reason: reason };
        for observer in observers.iter_mut() {
            observer.on_finish(&finish)?;
        }
        self.report(state, model, reason)
    }

    fn report<M: LogJoint + ?Sized>(&self, state: SviState<F::Q>, model: &M, reason: StopReason) -> Result<Fit<F::Q>> {
        // Iterate averaging: q becomes the average of the stationary window, if one was found.
        let mut averaged = None;
        let mut rhat_at_cap = None;
        let mut rule_halvings = 0;
        if let StopState::Stationary(rule) = &state.stop {
            rule_halvings = rule.halvings();
            if let (Some(window), Some((steps, mean))) = (rule.window(), rule.average()) {
                for ((_, var), value) in state.q.params().iter().zip(mean) {
                    var.set(&host_tensor(value, var)?)?;
                }
                averaged = Some(Averaged { since: window.since, steps, mcse: window.mcse });
            } else if reason == StopReason::MaxSteps {
                // the cap came first: q is the average of the latest half of the iterates or the
                // last one, whichever has the larger ELBO, and how far from stationary they were
                // is said
                if let Some((since, steps, mean, rhat)) = rule.latest_half() {
                    rhat_at_cap = Some(rhat);
                    if self.average_is_better(&state, model, mean)? {
                        averaged = Some(Averaged { since, steps, mcse: f64::NAN });
                    }
                }
            }
        }
        if let (None, Some(average)) = (averaged, state.averager.as_ref().and_then(|a| a.average())) {
            for ((_, var), value) in state.q.params().iter().zip(average.params) {
                var.set(&host_tensor(value, var)?)?;
            }
            averaged = Some(Averaged { since: average.since, steps: average.steps, mcse: f64::NAN });
        }
        let q = &state.q;
        for (name, var) in q.params() {
            if !all_finite(var.as_tensor())? {
                return Err(Error::NonFinite {
                    iteration: state.iteration,
                    consecutive: state.recovery.consecutive(),
                    detail: format!("the parameter `{name}` of q is not finite after the last step"),
                });
            }
        }
        let stochastic = Stochastic {
            objective: self.objective.name(),
            optimizer: format!("{} (lr {})", state.optimizer.rule_name(), self.optimizer.lr()),
            skipped: state.recovery.skipped_steps(),
            halvings: state.recovery.halvings(),
            averaged,
            rule_halvings,
            final_lr: self.lr_at(&state),
            lr_search: None,
            start: state.start.clone(),
            rhat_at_cap,
        };
        let run = Run {
            method: Method::Advi,
            stop_reason: reason,
            iterations: state.iteration,
            trace: state.trace,
            elapsed: state.elapsed,
            stochastic: Some(stochastic),
        };
        let q = match &state.whitening {
            Some(w) => self.family.push_forward(&state.q, &w.affine)?,
            None => state.q,
        };
        self.evaluation().report(q, model, run)
    }

    /// Sets q to the averaged parameters `mean` if their ELBO beats the current ones' on the same
    /// 256 draws (else leaves q as it is); returns whether it did.
    fn average_is_better<M: LogJoint + ?Sized>(
        &self,
        state: &SviState<F::Q>,
        model: &M,
        mean: Vec<Vec<f64>>,
    ) -> Result<bool> {
        const DRAWS: usize = 256;
        let elbo = |q: &F::Q| -> Result<f64> {
            let ratios = match &state.whitening {
                Some(w) => log_ratios(q, &Whitened::new(model, w), DRAWS, self.seed, self.dtype, &self.device)?,
                None => log_ratios(q, model, DRAWS, self.seed, self.dtype, &self.device)?,
            };
            let mean = mean_se(&ratios).0;
            Ok(if mean.is_nan() { f64::NEG_INFINITY } else { mean })
        };
        let last = snapshot(&state.q)?;
        let last_elbo = elbo(&state.q)?;
        for ((_, var), value) in state.q.params().iter().zip(mean) {
            var.set(&host_tensor(value, var)?)?;
        }
        if elbo(&state.q)? >= last_elbo {
            return Ok(true);
        }
        for ((_, var), value) in state.q.params().iter().zip(&last) {
            var.set(value)?;
        }
        Ok(false)
    }

    /// How the fitted q is evaluated: the ELBO's fresh draws and PSIS.
    pub(crate) fn evaluation(&self) -> Evaluation {
        Evaluation {
            draws: self.elbo_draws,
            diagnostics: self.diagnostics,
            seed: self.seed,
            dtype: self.dtype,
            device: self.device.clone(),
        }
    }

    /// Checks that q offers what the objective and the location step need.
    fn check_family(&self, q: &F::Q) -> Result<()> {
        if self.objective.q_term() == QTerm::Entropy && q.closed_form_entropy()?.is_none() {
            return Err(crate::objective::no_entropy(q.name()));
        }
        if self.loc_step == LocStep::ScaleRelative && q.gaussian().is_none() {
            return Err(step::not_gaussian(q.name()));
        }
        Ok(())
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
