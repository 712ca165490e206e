//! The examples' one error type, for what goes wrong after clap has parsed the flags: each message
//! names the bad flag, file, line or column and, where there is one, what to do about it.
//! `entry::main` prints it as `error: …` and exits with status 2.

use std::fmt;
use std::marker::PhantomData;

/// What an example calls its fitting, for the message of a failed one.
pub trait Example {
    /// The words before the library's error: `the fit failed`, `training failed`.
    const FIT_FAILED: &'static str;
}

/// Bad settings, unreadable data, a failed fit, or a result that cannot be written.
#[derive(Debug)]
pub enum AppError<X> {
    /// Bad settings: the flag, its value and what it must be.
    Input(String),
    /// Data that cannot be read or used: the file (line, column) and what is wrong; the message
    /// ends with how to get usable data where the example knows.
    Data(String),
    /// The fit failed; shown after [`Example::FIT_FAILED`].
    Fit(elbo::Error, PhantomData<X>),
    /// Writing a result failed: the path and why.
    Output(String),
}

impl<X: Example> fmt::Display for AppError<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Input(m) | AppError::Data(m) | AppError::Output(m) => write!(f, "{m}"),
            AppError::Fit(e, _) => write!(f, "{}: {e}", X::FIT_FAILED),
        }
    }
}

impl<X: Example + fmt::Debug> std::error::Error for AppError<X> {}

impl<X> From<elbo::Error> for AppError<X> {
    fn from(e: elbo::Error) -> Self {
        AppError::Fit(e, PhantomData)
    }
}

impl<X> From<candle_core::Error> for AppError<X> {
    fn from(e: candle_core::Error) -> Self {
        AppError::Fit(e.into(), PhantomData)
    }
}
