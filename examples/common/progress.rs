//! The examples' own progress bars (indicatif), drawn only on a terminal, for work that is not an
//! `Advi` run an `elbo::observe::Progress` would see: `vae`'s epochs of batches.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The stream a bar is drawn on.
#[allow(dead_code)] // each example draws on one of them
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A bar of `len` steps on `screen`, redrawn at most `hz` times a second, in indicatif's `template`
/// with `=> ` for its bar; `None` unless `show` and `screen` is a terminal.
pub fn bar(show: bool, screen: Screen, hz: u8, len: u64, template: &str) -> Option<ProgressBar> {
    let terminal = match screen {
        Screen::Stdout => std::io::stdout().is_terminal(),
        Screen::Stderr => std::io::stderr().is_terminal(),
    };
    if !(show && terminal) {
        return None;
    }
    let target = match screen {
        Screen::Stdout => ProgressDrawTarget::stdout_with_hz(hz),
        Screen::Stderr => ProgressDrawTarget::stderr_with_hz(hz),
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ");
    bar.set_style(style);
    Some(bar)
}
