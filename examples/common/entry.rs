//! The examples' `main`: parse the flags, run, print what the run has to say, and end with the
//! exit status: 0 on success and for `--help`/`--version`, 2 for bad flags (clap's message) and for
//! an error of the run (printed as `error: …`).

use std::fmt::Display;
use std::process::ExitCode;

use clap::Parser;

/// The exit status of a run that failed, bad flags included.
pub const FAILED: u8 = 2;

/// What a successful run leaves to print.
pub trait Finished {
    /// Things the user should know, printed on stderr first.
    fn notes(&self) -> &[String] {
        &[]
    }
    /// Prints the result on stdout (nothing if the run printed as it went).
    fn print(&self) {}
}

impl Finished for () {}

/// Parses `A` from the command line and calls `run` with it.
pub fn main<A: Parser, R: Finished, E: Display>(run: impl FnOnce(A) -> Result<R, E>) -> ExitCode {
    let args = match A::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // --help and --version are not errors
            let code = if e.use_stderr() { FAILED } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(args) {
        Ok(result) => {
            for note in result.notes() {
                eprintln!("{note}");
            }
            result.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(FAILED)
        }
    }
}
