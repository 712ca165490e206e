//! What a fit carries from step to step ([`SviState`], a value), and what one step did
//! ([`Step`]).

use std::sync::Arc;
use std::time::Duration;

use super::recovery::Recovery;
use super::start::Whitening;

use crate::average::Averager;
use crate::noise::Noise;
use crate::optim::OptimizerState;
use crate::report::StartRecord;
use crate::stop::StopReason;
use crate::stop::StopState;

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
    /// The variational family at its current parameters: in the whitened coordinates u of
    /// Pathfinder's start when the fit has one (z = m + A u; the report's q is in z).
    pub q: Q,
    pub(super) optimizer: OptimizerState,
    pub(super) noise: Noise,
    /// Draws the minibatch rows (None: every step sees all the data).
    pub(super) batches: Option<Noise>,
    /// The averager of the iterates, if one was set.
    pub(super) averager: Option<Box<dyn Averager>>,
    /// The stopping rule's memory.
    pub(super) stop: StopState,
    /// Set once the stopping rule has decided.
    pub(super) stopped: Option<StopReason>,
    pub(super) iteration: usize,
    pub(super) trace: Vec<f64>,
    /// The skip-restore-halve bookkeeping of non-finite steps.
    pub(super) recovery: Recovery,
    /// The factor on the step size (halved after each recovery from non-finite steps).
    pub(super) lr_scale: f64,
    pub(super) elapsed: Duration,
    /// The whitened coordinates q lives in (None: the model's).
    pub(super) whitening: Option<Arc<Whitening>>,
    /// Where the fit started.
    pub(super) start: StartRecord,
}

impl<Q> SviState<Q> {
    /// The stopping rule's decision, once it has made one (`run` stops there; a manual loop of
    /// [`crate::Advi::step`] should too).
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
        self.recovery.skipped_steps()
    }
}
