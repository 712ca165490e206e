//! Why a run stopped: the step limit, the time budget, a stopping rule, or L-BFGS's convergence.

use std::fmt;

/// Why a fit stopped.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum StopReason {
    /// It ran the number of steps it was given.
    MaxSteps,
    /// The wall-time budget (`Advi::max_time`) was spent.
    WallTime,
    /// Stan's rule: the mean or the median relative ELBO change fell below the tolerance.
    Stan {
        /// "mean" or "median".
        statistic: &'static str,
        /// Its value when the rule fired.
        value: f64,
    },
    /// The iterates were stationary from step `since` on, and the Monte Carlo standard error of
    /// their average, which q is, fell below the tolerance.
    Stationary {
        /// The first step of the averaged, stationary window.
        since: usize,
        /// The largest MCSE of the average: means in units of q's sd, sds relative.
        mcse: f64,
    },
    /// L-BFGS converged (MAP, Laplace, deterministic ADVI): the gradient norm or, after Newton steps
    /// if any, the Newton decrement is within its tolerance (`map::Convergence` says which).
    LbfgsConverged,
    /// L-BFGS stopped above its gradient tolerance because f can decrease no further in floating
    /// point: the most a step along −∇f could gain is below f's rounding.
    LbfgsRoundingFloor {
        /// ‖∇f‖₂ where it stopped.
        grad_norm: f64,
        /// The tolerance it did not reach.
        tol_grad: f64,
    },
    /// Pathfinder's paths ended: `converged` of the `paths` L-BFGS runs reached their tolerance
    /// (the others stopped at their iteration cap or a failed line search, and were used all the
    /// same, or failed).
    PathsEnded {
        /// Paths whose L-BFGS converged.
        converged: usize,
        /// Paths run.
        paths: usize,
    },
    /// A user's own rule ([`crate::stop::Rule`]) stopped the run.
    Custom {
        /// The rule's name.
        rule: &'static str,
        /// The statistic it decided on.
        value: f64,
    },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::MaxSteps => write!(f, "reached the maximum number of steps"),
            StopReason::WallTime => write!(f, "spent its wall-time budget"),
            StopReason::Stan { statistic, value } => {
                write!(f, "Stan's rule: the {statistic} relative ELBO change {value:.2e} is below the tolerance")
            }
            StopReason::Stationary { since, mcse } => write!(
                f,
                "converged: the iterates were stationary from step {since} (split-R̂) and the Monte Carlo \
                 error of their average is {mcse:.3} sd"
            ),
            StopReason::LbfgsConverged => write!(f, "L-BFGS converged"),
            StopReason::LbfgsRoundingFloor { grad_norm, tol_grad } => write!(
                f,
                "L-BFGS stopped at f's rounding floor: gradient norm {grad_norm:.2e}, above the tolerance {tol_grad:.0e}, \
                 but no step can lower f in floating point"
            ),
            StopReason::PathsEnded { converged, paths } => {
                write!(f, "Pathfinder's paths ended ({converged} of {paths} L-BFGS runs converged)")
            }
            StopReason::Custom { rule, value } => {
                write!(f, "the rule `{rule}` stopped the run (statistic {value:.4e})")
            }
        }
    }
}
