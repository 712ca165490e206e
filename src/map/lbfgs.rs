//! L-BFGS through argmin (Liu & Nocedal 1989), with More–Thuente line searches, safeguarded for
//! models whose log density overflows far from the mode, and free of the posterior's scale in its
//! steps; its stopping test, ‖∇f‖ ≤ tol_grad, is not, which is why the Newton decrement (newton.rs)
//! checks and finishes its answer wherever a Hessian is at hand.
//!
//! ```text
//! minimise f(x), x ∈ ℝⁿ:   x_{k+1} = x_k − α_k H_k ∇f(x_k)
//!   H_k  the inverse-Hessian approximation from the last m pairs (x_{i+1} − x_i, ∇f_{i+1} − ∇f_i)
//!   α_k  More–Thuente line search (strong Wolfe, c₁ = 10⁻⁴, c₂ = 0.9), first trial α = 1,
//!        steps in [ε² α₀, ∞) for a first trial α₀
//! each start: one steepest-descent step, first trial
//!   α₀ = min(1 / κ, b / ‖∇f‖∞),   κ = gᵀ (∇f(x) − ∇f(x − t g)) / (t ‖g‖²),   t = ε^(1/3) max(1, ‖x‖∞) / ‖g‖∞
//!   (κ the curvature along g = ∇f by one more gradient; b = 1, divided by 10 after a non-finite f)
//! converged when ‖∇f(x_k)‖₂ ≤ tol_grad, or at the rounding floor:
//!   ‖∇f‖² / 2κ ≤ 64 ε |f|   (the most a step along −∇f can gain is lost in the rounding of f;
//!                             ε of the dtype)
//! stopped short (a `Shortfall`, with the best point): at max_iters, after 20 restarts, when no step
//!   along −∇f lowers f, after 20 evaluations per allowed iteration, or (with a `Leash`, when
//!   Newton steps will follow) at the k-th stall
//! ```
//!
//! ‖∇f‖ ≤ tol_grad depends on the coordinates' scale: ∇f = H (x − x̂) near the mode, so on a
//! posterior with sds of 10⁴ (H ≈ 10⁻⁸) a gradient of 10⁻⁶ is 10⁻² sd from the mode, and line
//! searches limited by f's rounding can stall while the flat direction of a correlated posterior
//! is far from done (earnings: 20 restarts, 6.5 sds from the mode). The absolute tolerance stays as
//! L-BFGS's own
//! stopping rule and as the rule of a MAP without the curvature check; the answer that Laplace and
//! DADVI use is judged by λ²/2 = ½ ∇fᵀH⁻¹∇f instead.
//!
//! The first trial 1 / κ is the Newton step along −∇f, exact for a quadratic whatever its scale,
//! so curvatures from 10⁻⁸ to 10¹² (posterior sds from 10⁴ to 10⁻⁶) take the same few steps; the
//! bound b / ‖∇f‖∞ keeps the first trial from moving any coordinate by more than b, since a trial
//! far out can land where exp overflows. argmin's default smallest step, an absolute √ε, is larger
//! than the whole step a posterior with sds below about 10⁻⁴ needs; the lower bound ε² α₀ is relative
//! to the first trial instead. A line search that meets a non-finite f is restarted from the best
//! point with b divided by 10 (and the first trial of L-BFGS proper, 1, divided by 10 for the rest
//! of the run).
//!
//! The floor matters because f's rounding, about ε |f| with |f| growing with the data, caps how
//! small a gradient any line search can certify (‖∇f‖ ≳ √(2κ ε |f|)). A run also stops when an
//! iteration changes f by less than 64 ε |f|, so that line searches do not circle in the rounding
//! noise. Every run ends: after `max_iters` iterations, 20 restarts, or 20 evaluations per allowed
//! iteration, whichever comes first.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use argmin::core::observers::{Observe, ObserverMode};
use argmin::core::{CostFunction, Executor, Gradient, IterState, LineSearch, State, TerminationReason, KV};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

use super::describe_direction;
use super::newton::Convergence;
use crate::{Error, Result};

/// Settings of the L-BFGS runs behind MAP, Laplace and deterministic ADVI.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lbfgs {
    /// The most iterations (default 1,000).
    pub max_iters: usize,
    /// Converged when the gradient's Euclidean norm is at most this (default 10⁻⁶).
    pub tol_grad: f64,
    /// Where a finite-difference Hessian H is at hand (Laplace, a MAP with the curvature check,
    /// DADVI): converged when the Newton decrement's half λ²/2 = ½ ∇fᵀH⁻¹∇f is at most this many
    /// nats (default 10⁻¹⁰, within 1.4 · 10⁻⁵ posterior sd of the mode; see `newton.rs`).
    pub tol_decrement: f64,
    /// m, how many recent steps shape the inverse-Hessian approximation (default 10).
    pub memory: usize,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Lbfgs { max_iters: 1_000, tol_grad: 1e-6, tol_decrement: 1e-10, memory: 10 }
    }
}

impl Lbfgs {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.tol_grad > 0.0 && self.tol_grad.is_finite()) {
            return Err(Error::config("tol_grad", self.tol_grad, "the gradient tolerance must be positive and finite"));
        }
        if !(self.tol_decrement > 0.0 && self.tol_decrement.is_finite()) {
            return Err(Error::config(
                "tol_decrement",
                self.tol_decrement,
                "the tolerance on the Newton decrement (in nats) must be positive and finite",
            ));
        }
        if self.memory == 0 {
            return Err(Error::config("memory", 0, "L-BFGS needs at least one stored step"));
        }
        Ok(())
    }
}

/// An evaluated point: x, f(x) and ∇f(x).
pub(crate) type Point = (Vec<f64>, f64, Vec<f64>);

/// A smooth objective: its value and gradient at a point, and how many evaluations it has made.
pub(crate) trait Smooth {
    fn value_and_gradient(&self, x: &[f64]) -> Result<(f64, Vec<f64>)>;
    fn evaluations(&self) -> usize;
    /// The machine epsilon of the arithmetic behind f (F32's when the model computes in F32).
    fn epsilon(&self) -> f64;
}

/// What [`search`] found.
#[derive(Clone, Debug)]
pub(crate) struct Minimum {
    pub x: Vec<f64>,
    pub value: f64,
    pub gradient: Vec<f64>,
    pub convergence: Convergence,
    /// f at the start and after every iteration.
    pub trace: Vec<f64>,
}

/// Why an L-BFGS run stopped short of its tolerance: a few words for the record of a run that
/// Newton steps then finish, and the error the run fails with otherwise.
#[derive(Debug)]
pub(crate) struct Shortfall {
    pub note: String,
    pub error: Error,
    /// Whether the run stopped at its `patience` (and could go on).
    pub patience: bool,
}

impl Shortfall {
    /// The error, with `more` (what was tried after) added to its detail.
    pub(crate) fn into_error(self, more: &str) -> Error {
        match self.error {
            Error::NotConverged { method, iterations, grad_norm, detail } => {
                Error::NotConverged { method, iterations, grad_norm, detail: format!("{detail}; {more}") }
            }
            other => other,
        }
    }
}

/// How far a [`search`] may go: to its `patience`-th stall (`None`: no limit), with `restarts` of
/// its allowance used before it began (by the run it resumes).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Leash {
    pub patience: Option<usize>,
    pub restarts: usize,
}

pub(crate) const MAX_RESTARTS: usize = 20;
/// An L-BFGS run also stops when an iteration changes f by less than this many ε |f| (then
/// [`at_rounding_floor`] decides whether that is the end), so that it does not spend many line
/// searches on changes lost in rounding; the rounding of f in the Newton steps' tests too.
pub(crate) const COST_ULPS: f64 = 64.0;
const EVALUATIONS_PER_ITERATION: usize = 20;
/// The smallest step a line search may take, relative to its first trial: ε² (argmin's default
/// is an absolute √ε, larger than the steps of a posterior with sds below about 10⁻⁴).
const STEP_MIN: f64 = f64::EPSILON * f64::EPSILON;

/// Minimises `problem` from `x0` with L-BFGS; `names` name the coordinates in messages and
/// `method` names the optimisation. Converged when the gradient norm reaches the tolerance, or when
/// f cannot be decreased further in floating point ([`at_rounding_floor`]); otherwise fails with
/// [`Error::NotConverged`], saying why. Records into `path` the start and the iterate (x, f, ∇f)
/// after every iteration, in order, whether or not the run converges (Pathfinder's raw material).
pub(crate) fn minimize_on_path<P: Smooth>(
    problem: &P,
    x0: Vec<f64>,
    settings: &Lbfgs,
    method: &'static str,
    names: &[String],
    path: Option<Arc<Mutex<Vec<Point>>>>,
) -> Result<Minimum> {
    match search(problem, x0, settings, method, names, path, Leash::default())? {
        (minimum, None) => Ok(minimum),
        (_, Some(short)) => Err(short.error),
    }
}

/// [`minimize_on_path`] that also returns the best point of a run that
/// stopped short of its tolerance, with why ([`Shortfall`]), for Newton steps to finish; with
/// `leash.patience` = Some(k) it also stops short at its k-th stall (a failed line search, or a
/// change of f lost in rounding, away from the rounding floor), where Newton steps may do better
/// than more restarts. Fails only on errors of the model or of the settings.
pub(crate) fn search<P: Smooth>(
    problem: &P,
    x0: Vec<f64>,
    settings: &Lbfgs,
    method: &'static str,
    names: &[String],
    path: Option<Arc<Mutex<Vec<Point>>>>,
    leash: Leash,
) -> Result<(Minimum, Option<Shortfall>)> {
    settings.validate()?;
    let limit = problem.evaluations() + EVALUATIONS_PER_ITERATION * settings.max_iters.max(1);
    let adapter = Adapter { problem, best: RefCell::new(None), failure: RefCell::new(None), limit };
    let start_evaluations = problem.evaluations();
    let (f0, g0) = adapter.eval(&x0)?;
    let origin = x0.clone();
    if let Some(Ok(mut path)) = path.as_ref().map(|p| p.lock()) {
        path.push((x0.clone(), f0, g0));
    }
    let trace = Recorded { trace: Arc::new(Mutex::new(vec![adapter.best_value()])), path };
    let (mut iterations, mut restarts, mut stalls, mut first_step) = (0usize, leash.restarts, 0usize, 1.0f64);
    // the first trial of L-BFGS proper: 1, divided by 10 whenever its line search met a non-finite f
    let mut lbfgs_step = 1.0f64;
    // 1 / κ along −g, once a stalled run has measured it: the first trial of the next restart
    let mut newton_step: Option<f64> = None;
    let done = |iterations: usize, restarts: usize, rounding_floor: bool, short: Option<Shortfall>| {
        let (x, value, gradient) = adapter.best();
        let convergence = Convergence {
            iterations,
            evaluations: problem.evaluations() - start_evaluations,
            grad_norm: norm(&gradient),
            tol_grad: settings.tol_grad,
            decrement: None,
            tol_decrement: settings.tol_decrement,
            rounding_floor,
            restarts,
            newton_steps: 0,
            lbfgs_note: None,
        };
        let trace = trace.trace.lock().map(|t| t.clone()).unwrap_or_default();
        Ok((Minimum { x, value, gradient, convergence, trace }, short))
    };
    // iterations so far, from the trace (f at the start and after every iteration), when a run
    // ended in an error and did not say how many it made
    let counted = |iterations: usize| trace.trace.lock().map_or(iterations, |t| t.len().saturating_sub(1));
    loop {
        let (x, f, g) = adapter.best();
        let grad_norm = norm(&g);
        let fail = |iterations: usize, note: String, detail: String| Shortfall {
            error: Error::NotConverged { method, iterations, grad_norm, detail: format!("{note}{detail}") },
            note,
            patience: false,
        };
        if grad_norm <= settings.tol_grad {
            return done(iterations, restarts, false, None);
        }
        if iterations >= settings.max_iters {
            let note = format!("it reached max_iters = {}", settings.max_iters);
            let detail =
                format!("; raise it with `.max_iters(…)`, or loosen `.tol_grad(…)` (now {:e})", settings.tol_grad);
            return done(iterations, restarts, false, Some(fail(iterations, note, detail)));
        }
        if restarts > MAX_RESTARTS {
            let note = format!("it was restarted {MAX_RESTARTS} times after failed or stalled line searches");
            let detail = format!("; the last failure: {}", adapter.failure_text(&origin, names));
            return done(iterations, restarts, false, Some(fail(iterations, note, detail)));
        }
        let spent = |iterations: usize| {
            let note = format!("it spent its {EVALUATIONS_PER_ITERATION} evaluations per allowed iteration");
            let detail = "; raise `.max_iters(…)`".to_string();
            done(iterations, restarts, false, Some(fail(iterations, note, detail)))
        };
        // One steepest-descent iteration whose first trial is the Newton step along −∇f, 1 / κ,
        // bounded so that no coordinate moves by more than `first_step`; then L-BFGS proper.
        let bounded = first_step / g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let newton = newton_step.take().or_else(|| curvature_along(problem, &x, &g).map(|k| 1.0 / k));
        let alpha = newton.map_or(bounded, |a| a.min(bounded));
        let n = match run(&adapter, (x.clone(), f, g.clone()), alpha, 1, settings, &trace) {
            Ok((n, _)) => n,
            Err(_) if adapter.spent() => return spent(counted(iterations)),
            Err(e) => return Err(e),
        };
        iterations += n;
        if adapter.best_value() >= f {
            if adapter.failure_was_nonfinite() && restarts < MAX_RESTARTS {
                first_step /= 10.0;
                restarts += 1;
                continue;
            }
            if at_rounding_floor(problem, &x, f, &g).0 {
                return done(iterations, restarts, true, None);
            }
            let note = "no step along −∇f decreased f".to_string();
            let detail = format!(": {}", adapter.failure_text(&origin, names));
            return done(iterations, restarts, false, Some(fail(iterations, note, detail)));
        }
        first_step = 1.0;
        let budget = settings.max_iters.saturating_sub(iterations);
        let f_before = adapter.best_value();
        let (n, reason) = match run(&adapter, adapter.best(), lbfgs_step, budget, settings, &trace) {
            Ok(ended) => ended,
            Err(_) if adapter.spent() => return spent(counted(iterations)),
            Err(e) => return Err(e),
        };
        iterations += n;
        if adapter.failure_was_nonfinite() {
            lbfgs_step /= 10.0;
        }
        let (x, f, g) = adapter.best();
        if norm(&g) > settings.tol_grad
            && matches!(reason, Some(TerminationReason::SolverExit(_) | TerminationReason::SolverConverged))
        {
            // a failed line search, or a change of f lost in rounding: done if f cannot decrease any
            // further, else restart from the best point with fresh memory. The floor test sees
            // only the direction −∇f, which on a long, narrow ridge is across it: a run that still
            // made progress is restarted instead, since its own directions went further.
            let progressed = f_before - f > COST_ULPS * problem.epsilon() * f.abs();
            let (reached, kappa) = at_rounding_floor(problem, &x, f, &g);
            if reached && (!progressed || restarts >= MAX_RESTARTS) {
                return done(iterations, restarts, true, None);
            }
            newton_step = kappa.map(|k| 1.0 / k);
            restarts += 1;
            stalls += 1;
            if leash.patience.is_some_and(|k| stalls >= k) {
                let note = format!("it stalled {stalls} times");
                let detail = format!(": {}", adapter.failure_text(&origin, names));
                let short = Shortfall { patience: true, ..fail(iterations, note, detail) };
                return done(iterations, restarts, false, Some(short));
            }
        }
    }
}

/// Whether f cannot be decreased from x in floating point, with the curvature along g found on
/// the way: the most a line search along −g can gain, ‖g‖² / 2κ with κ = gᵀ∇²f g / ‖g‖² from a
/// difference of gradients (which rounding spares), is below the rounding of f: [`COST_ULPS`] ε |f|,
/// or 10 × the spread of f at three points a few ulps from x if that is larger.
fn at_rounding_floor<P: Smooth>(problem: &P, x: &[f64], f: f64, g: &[f64]) -> (bool, Option<f64>) {
    let Some(kappa) = curvature_along(problem, x, g) else { return (false, None) };
    let gg: f64 = g.iter().map(|v| v * v).sum();
    let eps = problem.epsilon();
    let mut noise = COST_ULPS * eps * f.abs();
    for k in [4.0, -4.0, 8.0] {
        let nearby: Vec<f64> = x.iter().map(|xi| xi * (1.0 + k * eps)).collect();
        match problem.value_and_gradient(&nearby) {
            Ok((f_nearby, _)) => noise = noise.max(10.0 * (f_nearby - f).abs()),
            Err(_) => return (false, Some(kappa)),
        }
    }
    (gg / (2.0 * kappa) <= noise, Some(kappa))
}

/// κ = gᵀ∇²f g / ‖g‖², the curvature of f along g at x, from the difference of gradients at x and
/// at x − t g, t = ε^(1/3) max(1, ‖x‖∞) / ‖g‖∞ (the largest coordinate moves by ε^(1/3) of its
/// scale: an evaluation); `None` when that gradient fails or κ is not positive and finite.
fn curvature_along<P: Smooth>(problem: &P, x: &[f64], g: &[f64]) -> Option<f64> {
    let gg: f64 = g.iter().map(|v| v * v).sum();
    let g_max = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let x_max = x.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    if gg == 0.0 || !gg.is_finite() {
        return None;
    }
    let t = problem.epsilon().cbrt() * x_max / g_max;
    let probe: Vec<f64> = x.iter().zip(g).map(|(xi, gi)| xi - t * gi).collect();
    let (_, g_probe) = problem.value_and_gradient(&probe).ok()?;
    let kappa = g.iter().zip(&g_probe).map(|(a, b)| a * (a - b)).sum::<f64>() / (t * gg);
    (kappa > 0.0 && kappa.is_finite()).then_some(kappa)
}

/// One argmin run of L-BFGS from `start` (x, f, ∇f) with first trial step `alpha`, for at most
/// `iterations` iterations; returns the iterations run and why it ended.
fn run<P: Smooth>(
    adapter: &Adapter<'_, P>,
    start: Point,
    alpha: f64,
    iterations: usize,
    settings: &Lbfgs,
    trace: &Recorded,
) -> Result<(usize, Option<TerminationReason>)> {
    *adapter.failure.borrow_mut() = None;
    let mut line_search =
        MoreThuenteLineSearch::new().with_bounds(STEP_MIN * alpha, f64::INFINITY).map_err(argmin_error)?;
    line_search.initial_step_length(alpha).map_err(argmin_error)?;
    let solver = LBFGS::new(line_search, settings.memory)
        .with_tolerance_grad(settings.tol_grad)
        .and_then(|s| s.with_tolerance_cost(COST_ULPS * adapter.problem.epsilon() * start.1.abs().max(1.0)))
        .map_err(argmin_error)?;
    // f and ∇f at x come from the memo; passing f here would set argmin's previous cost to f too,
    // and its cost tolerance would end the run before the first iteration
    let (x, _, g) = start;
    let result = Executor::new(ByRef(adapter), solver)
        .configure(|state| state.param(x).gradient(g).max_iters(iterations as u64))
        .add_observer(Recorder(trace.clone()), ObserverMode::Always)
        .timer(false)
        .run()
        .map_err(argmin_error)?;
    let state = result.state();
    Ok((state.get_iter() as usize, state.get_termination_reason().cloned()))
}

/// An argmin error as ours: one of ours that travelled through argmin comes back as itself.
fn argmin_error(e: argmin::core::Error) -> Error {
    match e.downcast::<Error>() {
        Ok(ours) => ours,
        Err(other) => Error::ModelOutput { problem: format!("could not be optimised: argmin failed with '{other}'") },
    }
}

/// What the runs record: f after every iteration, and the iterates themselves when asked.
#[derive(Clone)]
struct Recorded {
    trace: Arc<Mutex<Vec<f64>>>,
    path: Option<Arc<Mutex<Vec<Point>>>>,
}

/// Records f (and the iterate) after every iteration.
struct Recorder(Recorded);

impl Observe<IterState<Vec<f64>, Vec<f64>, (), (), (), f64>> for Recorder {
    fn observe_iter(
        &mut self,
        state: &IterState<Vec<f64>, Vec<f64>, (), (), (), f64>,
        _kv: &KV,
    ) -> std::result::Result<(), argmin::core::Error> {
        if let Ok(mut trace) = self.0.trace.lock() {
            trace.push(state.get_cost());
        }
        if let (Some(Ok(mut path)), Some(x), Some(g)) =
            (self.0.path.as_ref().map(|p| p.lock()), state.get_param(), state.get_gradient())
        {
            path.push((x.clone(), state.get_cost(), g.clone()));
        }
        Ok(())
    }
}

/// The objective as argmin sees it: keeps the best point evaluated and the last failure, and stops
/// evaluating past the budget.
struct Adapter<'a, P> {
    problem: &'a P,
    best: RefCell<Option<Point>>,
    /// The point, the error's message, and whether it was a non-finite value or gradient.
    failure: RefCell<Option<(Vec<f64>, String, bool)>>,
    limit: usize,
}

impl<P: Smooth> Adapter<'_, P> {
    fn eval(&self, x: &[f64]) -> Result<(f64, Vec<f64>)> {
        if self.problem.evaluations() >= self.limit {
            return Err(Error::config("max_iters", self.limit, "the evaluation budget of the line searches is spent"));
        }
        match self.problem.value_and_gradient(x) {
            Ok((f, g)) => {
                let better = self.best.borrow().as_ref().is_none_or(|(_, best, _)| f < *best);
                if better {
                    *self.best.borrow_mut() = Some((x.to_vec(), f, g.clone()));
                }
                Ok((f, g))
            }
            Err(e) => {
                let nonfinite = matches!(e, Error::ModelOutput { .. });
                *self.failure.borrow_mut() = Some((x.to_vec(), e.to_string(), nonfinite));
                Err(e)
            }
        }
    }

    fn best(&self) -> Point {
        self.best.borrow().clone().unwrap_or_default()
    }

    /// Whether the evaluation budget is spent (the run's last evaluation was refused).
    fn spent(&self) -> bool {
        self.problem.evaluations() >= self.limit
    }

    fn best_value(&self) -> f64 {
        self.best.borrow().as_ref().map_or(f64::INFINITY, |b| b.1)
    }

    fn failure_was_nonfinite(&self) -> bool {
        matches!(&*self.failure.borrow(), Some((_, _, true)))
    }

    /// The last failed evaluation, with the direction from `from` to it (or, if it is not finite,
    /// to the best point) by coordinate name.
    fn failure_text(&self, from: &[f64], names: &[String]) -> String {
        match &*self.failure.borrow() {
            Some((at, e, _)) => {
                let (best, best_f, _) = self.best();
                let to = if at.iter().all(|v| v.is_finite()) { at.as_slice() } else { best.as_slice() };
                let step: Vec<f64> = to.iter().zip(from).map(|(a, b)| a - b).collect();
                let towards = if norm(&step) > 0.0 && norm(&step).is_finite() {
                    format!(
                        "; the search went along {} to {} (−log p = {best_f:.6e} at the best point)",
                        describe_direction(&step, names),
                        super::bridge::short(to)
                    )
                } else {
                    String::new()
                };
                format!(
                    "{e}{towards}. If log p(x, z) grows without bound that way, the posterior has no finite mode \
                     (an improper prior?); otherwise start elsewhere (`init_value`)"
                )
            }
            None => "the line search found no point with a lower value (no evaluation failed)".into(),
        }
    }
}

/// argmin takes its problem by value: this passes the adapter by reference.
struct ByRef<'b, 'a, P>(&'b Adapter<'a, P>);

impl<P: Smooth> CostFunction for ByRef<'_, '_, P> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, x: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        Ok(self.0.eval(x)?.0)
    }
}

impl<P: Smooth> Gradient for ByRef<'_, '_, P> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, x: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        Ok(self.0.eval(x)?.1)
    }
}

/// The Euclidean norm (scaled, so that it overflows only if the norm itself does).
pub(crate) fn norm(v: &[f64]) -> f64 {
    let top = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if top == 0.0 || !top.is_finite() {
        return top;
    }
    top * v.iter().map(|x| (x / top).powi(2)).sum::<f64>().sqrt()
}
