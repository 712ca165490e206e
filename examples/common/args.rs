//! Checks of the examples' flags, with messages that name the flag and what it must be.

/// A whole number ≥ 1 (a clap `value_parser`), with a plain message otherwise.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!("`{s}` is not a whole number ≥ 1")),
    }
}

/// `value` of `flag` (`--lr`) as a finite number > 0, or the message saying so.
pub fn positive(flag: &str, value: f64) -> Result<(), String> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(format!("{flag} {value} must be a positive number"))
    }
}
