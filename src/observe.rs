//! Observers: they see every step of a run and change nothing.
//!
//! ```text
//! after step t:  observer.on_step(StepInfo { iteration: t, steps, elbo_t (NaN if skipped), η_t, elapsed })
//! at the end:    observer.on_finish()
//! ```
//!
//! [`Progress`] draws a progress bar (running ELBO, steps/s, ETA) on a terminal; [`TraceLog`] writes
//! one CSV line or JSON object per step; [`Trace`] keeps the trace in memory. Pass them to
//! [`crate::Advi::fit_with`] or [`crate::Advi::run_with`].

use std::io::Write;
use std::time::Duration;

use crate::Result;

/// What an observer sees after each step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepInfo {
    /// Steps run so far, this one included (1 after the first step).
    pub iteration: usize,
    /// The step limit of the run.
    pub steps: usize,
    /// This step's ELBO estimate; NaN if the step was skipped as non-finite.
    pub elbo: f64,
    /// The step size η used by this step.
    pub lr: f64,
    /// Wall time spent in the steps so far.
    pub elapsed: Duration,
}

/// Sees each step of a run; must not change it.
pub trait Observer {
    /// Called after every step, taken or skipped.
    fn on_step(&mut self, info: &StepInfo) -> Result<()>;

    /// Called once when the run ends, before the final ELBO is estimated.
    fn on_finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Every step's ELBO estimate, in memory (NaN for skipped steps).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// ELBO estimates by step.
    pub elbo: Vec<f64>,
    /// Step sizes by step.
    pub lr: Vec<f64>,
}

impl Observer for Trace {
    fn on_step(&mut self, info: &StepInfo) -> Result<()> {
        self.elbo.push(info.elbo);
        self.lr.push(info.lr);
        Ok(())
    }
}

/// Which text format a [`TraceLog`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// A header `iteration,elbo,lr,seconds`, then one line per step (`NaN` for a skipped step).
    Csv,
    /// JSON Lines: one object per step, `{"iteration": 1, "elbo": -12.5, "lr": 0.01, "seconds": 0.0001}`
    /// (`null` for a skipped step's ELBO).
    JsonLines,
}

/// Writes every step to a file or stream as it happens (buffer it: `BufWriter::new(file)`).
#[derive(Debug)]
pub struct TraceLog<W: Write> {
    out: W,
    format: LogFormat,
    started: bool,
}

impl<W: Write> TraceLog<W> {
    /// A log in `format` written to `out`.
    pub fn new(out: W, format: LogFormat) -> Self {
        TraceLog { out, format, started: false }
    }

    /// The writer back (flushed at the end of the run).
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl TraceLog<std::io::BufWriter<std::fs::File>> {
    /// A log written to `path`, in CSV if it ends in `.csv` and JSON Lines otherwise.
    pub fn create(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let format = if path.extension().is_some_and(|e| e == "csv") { LogFormat::Csv } else { LogFormat::JsonLines };
        Ok(TraceLog::new(std::io::BufWriter::new(std::fs::File::create(path)?), format))
    }
}

impl<W: Write> Observer for TraceLog<W> {
    fn on_step(&mut self, s: &StepInfo) -> Result<()> {
        let seconds = s.elapsed.as_secs_f64();
        match self.format {
            LogFormat::Csv => {
                if !self.started {
                    writeln!(self.out, "iteration,elbo,lr,seconds")?;
                }
                writeln!(self.out, "{},{:?},{:?},{:?}", s.iteration, s.elbo, s.lr, seconds)?;
            }
            LogFormat::JsonLines => {
                let elbo = if s.elbo.is_finite() { format!("{:?}", s.elbo) } else { "null".into() };
                writeln!(
                    self.out,
                    "{{\"iteration\": {}, \"elbo\": {elbo}, \"lr\": {:?}, \"seconds\": {seconds:?}}}",
                    s.iteration, s.lr
                )?;
            }
        }
        self.started = true;
        Ok(())
    }

    fn on_finish(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }
}

/// A progress bar on standard error: step, running ELBO (mean of the last 100 estimates), steps per
/// second and ETA. Drawn only on a terminal, and redrawn every `every` steps (default 50), so it
/// costs well under 2 % of a step.
#[derive(Debug)]
pub struct Progress {
    bar: indicatif::ProgressBar,
    every: usize,
    recent: std::collections::VecDeque<f64>,
}

impl Progress {
    /// A bar for a run of up to `steps` steps (the length shown; `usize::MAX` draws a spinner).
    pub fn new(steps: usize) -> Self {
        let bar = if steps == usize::MAX {
            indicatif::ProgressBar::new_spinner()
        } else {
            indicatif::ProgressBar::new(steps as u64)
        };
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  ELBO {msg}  {per_sec}  ETA {eta}",
        )
        .expect("a valid template");
        bar.set_style(style);
        Progress { bar, every: 50, recent: std::collections::VecDeque::with_capacity(100) }
    }

    /// Redraws every `every` steps instead of 50.
    pub fn every(mut self, every: usize) -> Self {
        self.every = every.max(1);
        self
    }
}

impl Observer for Progress {
    fn on_step(&mut self, s: &StepInfo) -> Result<()> {
        if s.elbo.is_finite() {
            if self.recent.len() == 100 {
                self.recent.pop_front();
            }
            self.recent.push_back(s.elbo);
        }
        if s.iteration.is_multiple_of(self.every) {
            let running = self.recent.iter().sum::<f64>() / self.recent.len().max(1) as f64;
            self.bar.set_message(format!("{running:.3}"));
            self.bar.set_position(s.iteration as u64);
        }
        Ok(())
    }

    fn on_finish(&mut self) -> Result<()> {
        self.bar.finish();
        Ok(())
    }
}
