//! The Newton decrement, a convergence test free of the posterior's scale, and the damped Newton
//! steps with a finite-difference Hessian that check and finish an L-BFGS run (Boyd &
//! Vandenberghe 2004, §9.5; Nocedal & Wright 2006, §3.1 and §3.4).
//!
//! ```text
//! λ²(x) = ∇f(x)ᵀ H⁻¹ ∇f(x),   H ≈ ∇²f (central differences, hessian.rs)        the Newton decrement
//! λ²/2 = f(x) − min_p [f(x) + ∇fᵀp + ½ pᵀHp]              the most a Newton step could gain, in nats
//! converged when λ²/2 ≤ tol_decrement (10⁻¹⁰ nats by default), or ‖∇f‖₂ ≤ tol_grad
//! damped Newton:  p = −H⁻¹∇f(x),   x ← x + α p,   α the first of 1, ½, ¼, … with
//!     f(x + αp) ≤ f(x) − c α λ²                                           (Armijo, c = 10⁻⁴)
//!  or f(x + αp) ≤ f(x) + 64 ε |f|  and  λ²(x + αp) < λ²(x)   (same H: a gain lost in f's rounding)
//!   H recomputed at x after a damped step (α < 1) or a slow one (λ² fell by less than 100×),
//!   or when no step is found; at most 20 steps and 6 Hessians
//! then one full step more (polish), kept if it lowers λ² (same H) without raising f beyond rounding
//! rounding floor: no step found with a fresh H, and λ²/2 ≤ 64 ε |f|
//! ```
//!
//! Why λ²/2 and why an absolute number of nats: where −log p is Gaussian near its mode x̂,
//! f(x) − f(x̂) = ½ (x − x̂)ᵀH(x − x̂) = λ²/2, so λ is the distance to the mode in posterior sds
//! (Mahalanobis), whatever the coordinates' scales, where ‖∇f‖ = ‖H(x − x̂)‖ is not: on a posterior
//! with sds of 10⁴ a gradient of 10⁻⁶ is 10⁻² sd from the mode, with sds of 10⁻⁴ it is 10⁻¹⁴.
//! 10⁻¹⁰ nats puts the answer within 1.4 · 10⁻⁵ sd of the mode, far below any Monte Carlo error it
//! will be compared with (the mean of 10⁶ exact draws is 10⁻³ sd off), and the polishing step,
//! which squares the error of a locally quadratic f, takes it to rounding. A tolerance relative to
//! |f| (say 10⁻⁹ |f|) would loosen with the data: |f| grows with N while the sds shrink, and for
//! |f| ≈ 10⁴ it would allow 5 · 10⁻³ sd. λ is computed from gradients, not from differences of f,
//! so f's rounding, ε |f|, does not bound it; where the gradient's own rounding does (an F32 model),
//! the steps stop lowering λ and the run says it stopped at the rounding floor.
//!
//! The Hessian a convergence test uses was taken within 10⁻⁴ sd (λ at its point) of the answer, so
//! the covariance a Laplace or linear-response fit reports is that of the answer to that order.

use std::fmt;

use super::hessian::Hessian;
use super::lbfgs::{norm, search, Lbfgs, Leash, Minimum, Point, Smooth, COST_ULPS, MAX_RESTARTS};
use crate::{Error, Result};

/// How an L-BFGS run, and the Newton steps that finished it if any, reached its answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Convergence {
    /// L-BFGS iterations.
    pub iterations: usize,
    /// Evaluations of the objective with its gradient: L-BFGS's line searches, and the Newton
    /// steps' (not the finite-difference Hessians', which the fit reports apart).
    pub evaluations: usize,
    /// ‖∇f‖₂ at the answer.
    pub grad_norm: f64,
    /// The gradient tolerance.
    pub tol_grad: f64,
    /// The Newton decrement's half, λ²/2 = ½ ∇fᵀH⁻¹∇f in nats at the answer, with the
    /// finite-difference Hessian; `None` when no Hessian was computed (a MAP without the curvature
    /// check, DADVI without linear response, when L-BFGS converged on its own).
    pub decrement: Option<f64>,
    /// The tolerance on λ²/2, in nats.
    pub tol_decrement: f64,
    /// Whether it stopped above both tolerances because f could be decreased no further in
    /// floating point: the gain a step could make was below the rounding of f.
    pub rounding_floor: bool,
    /// Restarts of L-BFGS from its best point after a failed or stalled line search.
    pub restarts: usize,
    /// Damped Newton steps taken because the decrement was above its tolerance (the one polishing
    /// step at the end is not counted).
    pub newton_steps: usize,
    /// Why L-BFGS stopped short of a tolerance when Newton steps then finished the run, e.g. `it
    /// reached max_iters = 1000`.
    pub lbfgs_note: Option<String>,
}

impl Convergence {
    /// Whether the answer meets a tolerance: ‖∇f‖₂ ≤ `tol_grad`, or λ²/2 ≤ `tol_decrement`.
    pub fn met_tolerance(&self) -> bool {
        self.grad_norm <= self.tol_grad || self.decrement.is_some_and(|d| d <= self.tol_decrement)
    }
}

impl fmt::Display for Convergence {
    /// `12 L-BFGS iterations, 13 gradient evaluations: gradient norm 9.4e-7 ≤ 1e-6, Newton
    /// decrement λ²/2 2.1e-16 nats`, or, after a Newton finish, `175 L-BFGS iterations (it was
    /// restarted 20 times …), then 3 Newton steps, 190 gradient evaluations: Newton decrement
    /// λ²/2 3.2e-19 ≤ 1e-10 nats, gradient norm 2.4e-9`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} L-BFGS iterations", self.iterations)?;
        if let Some(note) = &self.lbfgs_note {
            write!(f, " ({note})")?;
        }
        if self.newton_steps > 0 || self.lbfgs_note.is_some() {
            let s = if self.newton_steps == 1 { "" } else { "s" };
            write!(f, ", then {} Newton step{s}", self.newton_steps)?;
        }
        write!(f, ", {} gradient evaluations: ", self.evaluations)?;
        let by_decrement = self.decrement.filter(|d| *d <= self.tol_decrement);
        match (by_decrement, self.decrement) {
            (Some(d), _) if !self.rounding_floor => write!(
                f,
                "Newton decrement λ²/2 {d:.1e} ≤ {:.0e} nats, gradient norm {:.2e}",
                self.tol_decrement, self.grad_norm
            ),
            _ if self.rounding_floor => {
                write!(
                    f,
                    "gradient norm {:.2e} (above the tolerance {:.0e}, but f can decrease no further in floating point)",
                    self.grad_norm, self.tol_grad
                )?;
                match self.decrement {
                    Some(d) => write!(f, ", Newton decrement λ²/2 {d:.1e} nats (tolerance {:.0e})", self.tol_decrement),
                    None => Ok(()),
                }
            }
            (_, decrement) => {
                write!(f, "gradient norm {:.2e} ≤ {:.0e}", self.grad_norm, self.tol_grad)?;
                match decrement {
                    Some(d) => write!(f, ", Newton decrement λ²/2 {d:.1e} nats"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// A finite-difference Hessian of f at a point, with its inverse.
#[derive(Clone, Debug)]
pub(crate) struct Curvature {
    pub hessian: Hessian,
    /// H⁻¹, row-major.
    pub inverse: Vec<f64>,
}

impl Curvature {
    /// The Newton step p = −H⁻¹g and λ² = gᵀH⁻¹g (= −gᵀp).
    fn step(&self, g: &[f64]) -> (Vec<f64>, f64) {
        let n = g.len();
        let p: Vec<f64> = (0..n).map(|i| -(0..n).map(|j| self.inverse[i * n + j] * g[j]).sum::<f64>()).collect();
        let lambda2 = -p.iter().zip(g).map(|(a, b)| a * b).sum::<f64>();
        (p, lambda2.max(0.0))
    }

    /// √(H⁻¹)ᵢᵢ: the sds of the Gaussian with precision H, the coordinates' scales.
    pub fn sd(&self) -> Vec<f64> {
        let n = self.hessian.n;
        (0..n).map(|i| self.inverse[i * n + i].sqrt()).collect()
    }
}

/// How the Newton steps ended.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Ended {
    /// λ²/2 ≤ tol_decrement, with a Hessian taken within 10⁻⁴ sd.
    Converged,
    /// No step lowers f or λ² with a fresh Hessian, and λ²/2 is below f's rounding.
    RoundingFloor,
    /// Neither: why.
    Stalled(String),
}

/// What the Newton steps leave: the Hessian of the answer, and how they ended.
#[derive(Debug)]
pub(crate) struct Finish {
    pub curvature: Curvature,
    pub ended: Ended,
}

/// The stalls (failed or stalled line searches away from the rounding floor) after which L-BFGS
/// hands over to Newton steps.
const PATIENCE: usize = 2;
const MAX_STEPS: usize = 20;
const MAX_HESSIANS: usize = 6;
const ARMIJO: f64 = 1e-4;
/// Halvings of α before a line search gives up (α down to 2⁻⁴⁰ ≈ 10⁻¹²).
const HALVINGS: usize = 40;
/// The largest λ (in sds) between the Hessian's point and the answer for a convergence test.
const STALE: f64 = 1e-4;
/// A step that lowers λ² by less than this factor makes the next step take a fresh Hessian.
const SLOW: f64 = 0.01;

/// A Hessian of f at a point, given the previous one (for its scales) if any; it counts its own
/// gradient evaluations, failed Hessians included.
pub(crate) type HessianAt<'a> = dyn FnMut(&[f64], Option<&Curvature>) -> Result<Curvature> + 'a;

/// L-BFGS from `x0`, then Newton steps ([`finish`]): they check the answer on the Hessian from
/// `hessian_at` when `check` (Laplace, a MAP with the curvature check, DADVI with linear
/// response), and finish a run that stopped short or at its rounding floor in any case. L-BFGS
/// hands over at its second stall, where more restarts rarely help; if the Newton steps cannot
/// finish from there (the Hessian is not positive definite so far from the mode, or they stall),
/// L-BFGS resumes from the best point with the iterations and restarts left, hands over again
/// after twice as many stalls (4, then 8, while they fit in the 20 restarts), and the steps try
/// again where it ends. Fails with L-BFGS's error, plus what the Newton steps met, when neither
/// gets to a tolerance or the rounding floor; with the Hessian's error when `check` and the
/// Hessian is not positive definite. Without `check`, an L-BFGS answer at its rounding floor that
/// the steps cannot improve on stands, as L-BFGS alone would return it.
pub(crate) fn minimize<P: Smooth>(
    problem: &P,
    x0: Vec<f64>,
    settings: &Lbfgs,
    method: &'static str,
    names: &[String],
    check: bool,
    hessian_at: &mut HessianAt<'_>,
) -> Result<(Minimum, Option<Finish>)> {
    let start = problem.evaluations();
    let mut leash = Leash { patience: Some(PATIENCE), restarts: 0 };
    let (mut found, mut short) = search(problem, x0, settings, method, names, None, leash)?;
    loop {
        if short.is_none() && !check && !found.convergence.rounding_floor {
            return Ok((found, None));
        }
        let before = found.clone();
        let attempt = finish(problem, &mut found, settings.tol_decrement, hessian_at);
        found.convergence.evaluations = problem.evaluations() - start;
        let trouble = match &attempt {
            Ok(Finish { ended: Ended::Stalled(why), .. }) => {
                Some(format!("damped Newton steps from there did not finish it: {why}"))
            }
            Ok(_) => None,
            Err(e) => Some(format!("no Newton steps from there: {e}")),
        };
        let Some(trouble) = trouble else {
            let floor = before.convergence.rounding_floor.then(|| "it stopped at f's rounding floor".to_string());
            found.convergence.lbfgs_note = short.map(|s| s.note).or(floor);
            return Ok((found, attempt.ok()));
        };
        match short {
            Some(s) if s.patience => {
                let best = if found.value < before.value { found } else { before };
                let rest =
                    Lbfgs { max_iters: settings.max_iters.saturating_sub(best.convergence.iterations), ..*settings };
                // the next hand-over after twice as many stalls, so that a Hessian that fails far
                // from the mode is tried a few times at most
                let patience = leash.patience.map(|k| 2 * k).filter(|k| best.convergence.restarts + k <= MAX_RESTARTS);
                leash = Leash { patience, restarts: best.convergence.restarts };
                let (more, again) = search(problem, best.x.clone(), &rest, method, names, None, leash)?;
                found = resumed(best, more);
                found.convergence.evaluations = problem.evaluations() - start;
                short = again;
            }
            Some(s) => return Err(s.into_error(&trouble)),
            None if !check => {
                let mut before = before;
                before.convergence.evaluations = problem.evaluations() - start;
                return Ok((before, None));
            }
            None => {
                let finished = attempt?;
                if found.convergence.met_tolerance() {
                    return Ok((found, Some(finished)));
                }
                let c = &found.convergence;
                return Err(Error::NotConverged {
                    method,
                    iterations: c.iterations,
                    grad_norm: c.grad_norm,
                    detail: format!(
                        "L-BFGS stopped (within its gradient tolerance, or where f could decrease no further \
                         along −∇f), but the Newton decrement λ²/2 is {:.2e} nats, above f's rounding; \
                         {trouble}. Try another start (`init_value`)",
                        c.decrement.unwrap_or(f64::NAN)
                    ),
                });
            }
        }
    }
}

/// The record of an L-BFGS run `first` resumed by `more` from its best point.
fn resumed(first: Minimum, more: Minimum) -> Minimum {
    let (a, b) = (&first.convergence, &more.convergence);
    let convergence = Convergence {
        iterations: a.iterations + b.iterations,
        newton_steps: a.newton_steps + b.newton_steps,
        ..b.clone()
    };
    let trace = first.trace.iter().chain(more.trace.iter().skip(1)).copied().collect();
    Minimum { convergence, trace, ..more }
}

/// The [`module`](self) rule from `found`, the L-BFGS answer: the decrement with the Hessian from
/// `hessian_at` (given the point and the previous Hessian, for its scales), damped Newton steps
/// while it is above `tol`, one polishing step, and the record in `found.convergence` (steps,
/// decrement, gradient norm, rounding floor; the caller counts the evaluations). Fails only when a
/// Hessian fails (not positive definite, or the model's error).
pub(crate) fn finish<P: Smooth>(
    problem: &P,
    found: &mut Minimum,
    tol: f64,
    hessian_at: &mut HessianAt<'_>,
) -> Result<Finish> {
    let mut curvature = hessian_at(&found.x, None)?;
    // λ² at the current Hessian's point: how far (in sds) from the iterate it was taken
    let mut lambda2_at_hessian = curvature.step(&found.gradient).1;
    let (mut hessians, mut fresh, mut refresh, mut steps) = (1, true, false, 0);
    let eps = problem.epsilon();
    let ended = loop {
        if refresh && hessians < MAX_HESSIANS {
            curvature = hessian_at(&found.x, Some(&curvature))?;
            lambda2_at_hessian = curvature.step(&found.gradient).1;
            (hessians, fresh) = (hessians + 1, true);
        }
        let (p, lambda2) = curvature.step(&found.gradient);
        if lambda2 / 2.0 <= tol {
            if fresh || lambda2_at_hessian.sqrt() <= STALE || hessians >= MAX_HESSIANS {
                break Ended::Converged;
            }
            // converged by a Hessian taken too far away: check with one at the answer
            refresh = true;
            continue;
        }
        if steps >= MAX_STEPS {
            break stalled(found, lambda2, eps, format!("after {steps} Newton steps λ²/2 is {:.2e}", lambda2 / 2.0));
        }
        match line_search(problem, found, &p, lambda2, &curvature) {
            Some((alpha, point)) => {
                steps += 1;
                (found.x, found.value, found.gradient) = point;
                found.trace.push(found.value);
                fresh = false;
                refresh = alpha < 1.0 || curvature.step(&found.gradient).1 > SLOW * lambda2;
            }
            None if !fresh && hessians < MAX_HESSIANS => refresh = true,
            None => {
                let why = format!("no step along the Newton direction lowered f or λ² (λ²/2 = {:.2e})", lambda2 / 2.0);
                break stalled(found, lambda2, eps, why);
            }
        }
    };
    if ended == Ended::Converged {
        polish(problem, found, &curvature);
    }
    let (_, lambda2) = curvature.step(&found.gradient);
    let c = &mut found.convergence;
    c.newton_steps += steps;
    c.decrement = Some(lambda2 / 2.0);
    c.grad_norm = norm(&found.gradient);
    c.rounding_floor = match ended {
        Ended::Converged | Ended::Stalled(_) => false,
        Ended::RoundingFloor => !c.met_tolerance(),
    };
    Ok(Finish { curvature, ended })
}

/// The end of steps that found no lower point: the rounding floor if the most a Newton step could
/// gain, λ²/2, is below f's rounding, else stalled, saying `why`.
fn stalled(found: &Minimum, lambda2: f64, eps: f64, why: String) -> Ended {
    if lambda2 / 2.0 <= COST_ULPS * eps * found.value.abs() {
        Ended::RoundingFloor
    } else {
        Ended::Stalled(why)
    }
}

/// Backtracking from α = 1 along the Newton step `p` (module doc): the α taken and the point
/// (x, f, ∇f), or `None`.
fn line_search<P: Smooth>(
    problem: &P,
    found: &Minimum,
    p: &[f64],
    lambda2: f64,
    curvature: &Curvature,
) -> Option<(f64, Point)> {
    let noise = COST_ULPS * problem.epsilon() * found.value.abs();
    let mut alpha = 1.0;
    for _ in 0..HALVINGS {
        let x: Vec<f64> = found.x.iter().zip(p).map(|(x, p)| x + alpha * p).collect();
        if x == found.x {
            return None;
        }
        if let Ok((f, g)) = problem.value_and_gradient(&x) {
            let armijo = f <= found.value - ARMIJO * alpha * lambda2;
            let within_rounding = f <= found.value + noise && curvature.step(&g).1 < lambda2;
            if armijo || within_rounding {
                return Some((alpha, (x, f, g)));
            }
        }
        alpha *= 0.5;
    }
    None
}

/// One full Newton step x ← x − H⁻¹∇f(x) more, kept if it lowers λ² (with the same H) without
/// raising f beyond its rounding: the finite-difference Hessian sees curvature that L-BFGS's
/// approximation and line searches lost to rounding, so the answer sharpens at the cost of one
/// evaluation.
fn polish<P: Smooth>(problem: &P, found: &mut Minimum, curvature: &Curvature) {
    let (p, lambda2) = curvature.step(&found.gradient);
    if lambda2 == 0.0 {
        return;
    }
    let x: Vec<f64> = found.x.iter().zip(&p).map(|(x, p)| x + p).collect();
    if let Ok((f, g)) = problem.value_and_gradient(&x) {
        let noise = COST_ULPS * problem.epsilon() * found.value.abs();
        if curvature.step(&g).1 < lambda2 && f <= found.value + noise {
            (found.x, found.value, found.gradient) = (x, f, g);
        }
    }
}
