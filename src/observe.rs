//! The observer slot: observers see every step of a run and change nothing.
//!
//! ```text
//! at the start:  observer.on_start(StartInfo { steps, iteration, family, dim })
//! after step t:  observer.on_step(StepInfo { iteration: t, steps, elbo_t (NaN if skipped), η_t, elapsed })
//! at the end:    observer.on_finish(FinishInfo { iterations, stop_reason })
//! ```
//!
//! [`Progress`] draws a progress bar (running ELBO, steps/s, ETA) on a terminal, for one run or
//! for several on one bar ([`Progress::runs`]: restarts, say); [`TraceLog`] writes one CSV line or
//! JSON object per step; [`Trace`] keeps the trace in memory. Pass them to
//! [`crate::Advi::fit_with`] or [`crate::Advi::run_with`].

use std::io::Write;
use std::time::Duration;

use crate::stop::StopReason;
use crate::Result;

/// What an observer sees when a run starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StartInfo {
    /// The step limit of the run.
    pub steps: usize,
    /// Steps already run (0, or more for a run resumed from a state).
    pub iteration: usize,
    /// The variational family's name.
    pub family: &'static str,
    /// D, the dimension of z.
    pub dim: usize,
}

/// What an observer sees when a run ends, before the final ELBO is estimated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FinishInfo {
    /// Steps run, skipped ones included.
    pub iterations: usize,
    /// Why the run stopped.
    pub stop_reason: StopReason,
}

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

/// Sees each step of a run; must not change it. An error it returns ends the fit with that error.
pub trait Observer {
    /// Called once before the first step of a run (an observer given to several runs sees several
    /// starts).
    fn on_start(&mut self, info: &StartInfo) -> Result<()> {
        let _ = info;
        Ok(())
    }

    /// Called after every step, taken or skipped.
    fn on_step(&mut self, info: &StepInfo) -> Result<()>;

    /// Called once when the run ends, before the final ELBO is estimated.
    fn on_finish(&mut self, info: &FinishInfo) -> Result<()> {
        let _ = info;
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

    fn on_finish(&mut self, _info: &FinishInfo) -> Result<()> {
        Ok(self.out.flush()?)
    }
}

/// A progress bar: step, running ELBO (mean of the last 100 estimates), steps per second and ETA,
/// drawn on standard error (or standard output, [`Progress::stdout`]) when that is a terminal, and
/// redrawn every `every` steps (default 50), so it costs a small part of a step (benches/README.md,
/// "Observers").
///
/// For several runs on one bar ([`Progress::runs`]), the bar counts the steps of all of them,
/// shows `fit r/R`, and takes the steps a stopping rule did not need out of its total.
#[derive(Debug)]
pub struct Progress {
    bar: indicatif::ProgressBar,
    every: usize,
    recent: std::collections::VecDeque<f64>,
    /// How many runs the bar is for, and how many have started.
    runs: usize,
    started: usize,
    /// Steps of the finished runs, the offset of the current run's steps.
    done: u64,
    /// The current run's step limit and its first iteration.
    steps: usize,
    first: usize,
}

impl Progress {
    /// A bar for a run of up to `steps` steps (the length shown; `usize::MAX` draws a spinner).
    pub fn new(steps: usize) -> Self {
        Self::make(1, steps, indicatif::ProgressDrawTarget::stderr())
    }

    /// One bar for `runs` runs of up to `steps` steps each (restarts from several seeds, say).
    pub fn runs(runs: usize, steps: usize) -> Self {
        Self::make(runs.max(1), steps, indicatif::ProgressDrawTarget::stderr())
    }

    fn make(runs: usize, steps: usize, target: indicatif::ProgressDrawTarget) -> Self {
        let bar = if steps == usize::MAX {
            indicatif::ProgressBar::with_draw_target(None, target)
        } else {
            indicatif::ProgressBar::with_draw_target(Some((steps.saturating_mul(runs)) as u64), target)
        };
        let template = if runs > 1 {
            "{prefix} {spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  ELBO {msg}  {per_sec}  ETA {eta}"
        } else {
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  ELBO {msg}  {per_sec}  ETA {eta}"
        };
        bar.set_style(indicatif::ProgressStyle::with_template(template).expect("a valid template"));
        Progress {
            bar,
            every: 50,
            recent: std::collections::VecDeque::with_capacity(100),
            runs,
            started: 0,
            done: 0,
            steps,
            first: 0,
        }
    }

    /// Redraws every `every` steps instead of 50.
    pub fn every(mut self, every: usize) -> Self {
        self.every = every.max(1);
        self
    }

    /// Draws on standard output instead of standard error (still only on a terminal).
    pub fn stdout(self) -> Self {
        self.bar.set_draw_target(indicatif::ProgressDrawTarget::stdout());
        self
    }
}

impl Observer for Progress {
    fn on_start(&mut self, info: &StartInfo) -> Result<()> {
        self.started += 1;
        self.steps = info.steps;
        self.first = info.iteration;
        self.recent.clear();
        if self.runs > 1 {
            self.bar.set_prefix(format!("fit {}/{}", self.started.min(self.runs), self.runs));
        }
        Ok(())
    }

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
            self.bar.set_position(self.done + (s.iteration - self.first) as u64);
        }
        Ok(())
    }

    fn on_finish(&mut self, info: &FinishInfo) -> Result<()> {
        let ran = info.iterations.saturating_sub(self.first) as u64;
        if let Some(length) = self.bar.length() {
            // the steps a stopping rule did not need leave the total
            let planned = self.steps.saturating_sub(self.first) as u64;
            self.bar.set_length(length.saturating_sub(planned.saturating_sub(ran)));
        }
        self.done += ran;
        self.bar.set_position(self.done);
        if self.started >= self.runs {
            // the report follows: the bar makes way for it
            self.bar.finish_and_clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    /// Records the events it sees.
    #[derive(Default)]
    struct Events {
        starts: Vec<StartInfo>,
        steps: usize,
        finishes: Vec<FinishInfo>,
    }

    impl Observer for Events {
        fn on_start(&mut self, info: &StartInfo) -> Result<()> {
            self.starts.push(*info);
            Ok(())
        }
        fn on_step(&mut self, _info: &StepInfo) -> Result<()> {
            self.steps += 1;
            Ok(())
        }
        fn on_finish(&mut self, info: &FinishInfo) -> Result<()> {
            self.finishes.push(*info);
            Ok(())
        }
    }

    fn quadratic() -> impl LogJoint {
        crate::from_fn(3, |z: &Tensor| z.sqr()?.sum(1)? * -0.5)
    }

    #[test]
    fn an_observer_sees_the_start_every_step_and_the_end() {
        let advi = Advi::new(MeanField).dtype(DType::F64).steps(300).elbo_draws(10);
        let (model, mut events) = (quadratic(), Events::default());
        let mut state = advi.init(&model).unwrap();
        for _ in 0..20 {
            advi.step(&mut state, &model).unwrap();
        }
        let fit = advi.run_with(state, &model, &mut [&mut events]).unwrap();
        let start = StartInfo { steps: 300, iteration: 20, family: "mean-field Gaussian", dim: 3 };
        assert_eq!(events.starts, vec![start]);
        assert_eq!(events.steps, fit.iterations() - 20);
        assert_eq!(events.finishes, vec![FinishInfo { iterations: fit.iterations(), stop_reason: fit.stop_reason() }]);
    }

    /// Two runs on one bar: the first stops early (the stationary rule), and the steps it did not
    /// need leave the bar's total; the second runs all its steps.
    #[test]
    fn one_bar_counts_the_steps_of_several_runs() {
        let model = quadratic();
        let mut bar = Progress::make(2, 10_000, indicatif::ProgressDrawTarget::hidden());
        let early = Advi::new(MeanField).dtype(DType::F64).steps(10_000).elbo_draws(10).seed(1);
        let first = early.fit_with(&model, &mut [&mut bar]).unwrap();
        assert!(first.iterations() < 10_000, "the rule should stop early: {first}");
        assert_eq!(bar.bar.length(), Some(20_000 - (10_000 - first.iterations() as u64)));
        assert_eq!(bar.bar.position(), first.iterations() as u64);
        let fixed = early.steps(10_000).stop(StopRule::MaxSteps).seed(2);
        let second = fixed.fit_with(&model, &mut [&mut bar]).unwrap();
        assert_eq!(bar.bar.length(), Some((first.iterations() + second.iterations()) as u64));
        assert_eq!(bar.bar.position(), bar.bar.length().unwrap());
        assert_eq!(bar.bar.prefix(), "fit 2/2");
    }
}
