//! Configuration: the YAML file, its checks, and the runtime type built from it.
//!
//! `load` reads text into the [`file`] model, `compile` turns that into a
//! [`Runtime`]; both report into one [`Diagnostics`] so a user sees every
//! problem at once. `reload` swaps a new runtime in while the gateway runs.

pub mod compile;
pub mod diag;
pub mod duration;
pub mod file;
mod lint;
mod load;
pub mod runtime;

use std::path::Path;

pub use diag::{Diagnostic, Severity};
pub use runtime::*;

/// A config that compiled, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Checked {
    pub runtime: Runtime,
    pub warnings: Vec<Diagnostic>,
}

/// Why a config could not be used: every diagnostic (errors and warnings).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render(.0))]
pub struct ConfigError(pub Vec<Diagnostic>);

impl ConfigError {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }
}

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The runtime of a config text that must compile: unit tests build theirs here.
#[cfg(test)]
pub(crate) fn test_runtime(yaml: &str) -> Runtime {
    match check_str("t.yaml", yaml, 0) {
        Ok(c) => c.runtime,
        Err(e) => panic!("test config does not compile: {e}"),
    }
}

/// The smallest config that compiles: unit tests add what they are about.
#[cfg(test)]
pub(crate) const TEST_BASE: &str =
    "portal: { url: https://auth.home.lab }\nsecrets: { cookie_keys: [k] }\n";

/// The warnings of `extra` under [`TEST_BASE`], as `path: message`.
#[cfg(test)]
pub(crate) fn test_warnings(extra: &str) -> Vec<String> {
    match check_str("t.yaml", &format!("{TEST_BASE}{extra}"), 1_000_000) {
        Ok(c) => c
            .warnings
            .iter()
            .map(|w| format!("{}: {}", w.path, w.message))
            .collect(),
        Err(e) => panic!("{e}"),
    }
}

/// Check config text; `file` is the name used in messages.
pub fn check_str(file: &str, text: &str, now: i64) -> Result<Checked, ConfigError> {
    let (model, mut diags) = load::load(file, text);
    let runtime = if model.unreadable {
        None
    } else {
        compile::compile(model, &mut diags, now)
    };
    match runtime {
        Some(runtime) => Ok(Checked {
            runtime,
            warnings: diags
                .items
                .into_iter()
                .filter(|d| d.severity == Severity::Warning)
                .collect(),
        }),
        None => Err(ConfigError(diags.items)),
    }
}

/// Read and check a config file.
pub fn check_file(path: &Path, now: i64) -> Result<Checked, ConfigError> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => check_str(&name, &text, now),
        Err(e) => Err(ConfigError(vec![Diagnostic {
            severity: Severity::Error,
            file: name,
            line: 0,
            col: 0,
            path: String::new(),
            message: format!("cannot read the config file: {e}"),
        }])),
    }
}

#[cfg(test)]
mod tests;
