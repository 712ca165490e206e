//! The examples' files: the output folder and the JSON report, with messages that name the path.

use std::path::Path;

use serde::Serialize;

/// Creates `dir` and its parents (before a fit, so that a bad `--out` does not cost one).
pub fn create_folder(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the folder {}: {e}", dir.display()))
}

/// Writes `value` as pretty-printed JSON, with a final newline, to `path`.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", path.display());
    let json = serde_json::to_string_pretty(value).map_err(|e| fail(&e))?;
    std::fs::write(path, json + "\n").map_err(|e| fail(&e))
}
