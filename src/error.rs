//! The one error type of `elbo`.
//!
//! Library code never panics on user input: every fallible path returns an [`Error`] whose message
//! names the bad value and says what to do about it.

/// Everything that can go wrong in `elbo`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of its range (zero samples, a non-positive learning rate, ...).
    #[error("invalid setting `{name}` = {value}: {reason}")]
    InvalidConfig {
        /// The setting, as the builder method that sets it is named.
        name: &'static str,
        /// The value that was given.
        value: String,
        /// What the value must satisfy.
        reason: String,
    },

    /// Two things that must have the same length do not (a family of dimension 5 for a model of
    /// dimension 10, an initial location of the wrong length, ...).
    #[error("dimension mismatch: {what} has dimension {got}, but the model has dimension {expected}")]
    DimensionMismatch {
        /// What had the wrong dimension.
        what: String,
        /// The model's dimension, [`crate::LogJoint::dim`].
        expected: usize,
        /// The dimension that was found.
        got: usize,
    },

    /// `log_joint` broke its contract: it failed, or returned the wrong shape or dtype for a batch
    /// of draws.
    #[error("the model's log_joint {problem}")]
    ModelOutput {
        /// What was wrong, including the shapes and dtypes involved.
        problem: String,
    },

    /// A model was given no data (zero rows, or zero columns where columns are needed).
    #[error("empty data: {what}")]
    EmptyData {
        /// Which data, and what its shape was.
        what: String,
    },

    /// Optimisation met only non-finite ELBO values or gradients for too many steps in a row.
    #[error(
        "non-finite ELBO or gradient at iteration {iteration} ({consecutive} steps in a row \
         were skipped): {detail}"
    )]
    NonFinite {
        /// The iteration (0-based) of the last skipped step.
        iteration: usize,
        /// How many consecutive steps were skipped.
        consecutive: usize,
        /// Which draw and which coordinates of z gave the non-finite value, or which parameter had
        /// a non-finite gradient.
        detail: String,
    },

    /// A latent was declared badly: a repeated or empty name, a shape its constraint cannot take,
    /// bounds with a ≥ b.
    #[error("latent `{name}`: {problem}")]
    InvalidLatent {
        /// The latent's name.
        name: String,
        /// What is wrong with its declaration.
        problem: String,
    },

    /// A latent name that the model does not declare.
    #[error("unknown latent `{name}`: the model declares {}", known.join(", "))]
    UnknownLatent {
        /// The name that was asked for.
        name: String,
        /// The declared names.
        known: Vec<String>,
    },

    /// A user-given initial value cannot be used: wrong number of values, or outside the support.
    #[error("initial value of `{name}`: {problem}")]
    InitValue {
        /// The latent's name.
        name: String,
        /// What is wrong, naming the element and the constraint.
        problem: String,
    },

    /// log p(x, z) is not finite where the fit starts: at q's initial mean, or at every one of a
    /// few draws from the initial q.
    #[error(
        "log p(x, z) is not finite at the start: {detail}. Give initial values inside the support \
         (`init_value`), declare constrained latents for bounded parameters, or check the model"
    )]
    NonFiniteInit {
        /// Where it was not finite, and which coordinates cause it.
        detail: String,
    },

    /// A data file cannot be used: it is missing or unreadable, or its contents are not in the
    /// expected format (a bad magic number, sizes that do not match, a truncated file).
    #[error("data file {path}: {problem}")]
    DataFile {
        /// The file.
        path: String,
        /// What is wrong with it, and what was expected.
        problem: String,
    },

    /// An error from candle, the tensor library.
    #[error("candle: {0}")]
    Candle(candle_core::Error),

    /// Reading or writing a file or stream failed (draws exported to CSV or JSON, …).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),

    /// A deterministic optimisation (MAP, deterministic ADVI) stopped before its gradient norm
    /// reached the tolerance.
    #[error("{method} did not converge: after {iterations} L-BFGS iterations the gradient norm is {grad_norm:.3e}; {detail}")]
    NotConverged {
        /// What was being optimised, e.g. "MAP (L-BFGS on −log p(x, z))".
        method: &'static str,
        /// L-BFGS iterations run.
        iterations: usize,
        /// ‖∇‖₂ at the best point found.
        grad_norm: f64,
        /// Why it stopped, where, and what to do.
        detail: String,
    },

    /// A Hessian that must be positive definite (at a MAP, at the DADVI optimum) is not: the
    /// objective is flat or curved the wrong way along some direction.
    #[error(
        "{what} is not positive definite: its smallest eigenvalue is {eigenvalue:.3e} (the largest is \
         {largest:.3e}), along the direction {direction}. {advice}"
    )]
    NotPositiveDefinite {
        /// Which Hessian, of what.
        what: String,
        /// Its smallest eigenvalue (≤ 0 within the finite-difference error).
        eigenvalue: f64,
        /// Its largest eigenvalue, for scale.
        largest: f64,
        /// The eigenvector of the smallest eigenvalue, by coordinate name.
        direction: String,
        /// What it means and what to do.
        advice: String,
    },
}

impl From<candle_core::Error> for Error {
    /// Keeps an `elbo` error that travelled through candle (from inside a model) as itself.
    fn from(e: candle_core::Error) -> Self {
        match e {
            candle_core::Error::WithBacktrace { inner, .. } => Error::from(*inner),
            candle_core::Error::WrappedContext { wrapped, context } => match wrapped.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(wrapped) => Error::Candle(candle_core::Error::WrappedContext { wrapped, context }),
            },
            other => Error::Candle(other),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Builds [`Error::InvalidConfig`] for setting `name` with the bad `value` and what it must satisfy.
    pub fn config(name: &'static str, value: impl ToString, reason: impl ToString) -> Self {
        Error::InvalidConfig { name, value: value.to_string(), reason: reason.to_string() }
    }
}
