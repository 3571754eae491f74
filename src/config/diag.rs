//! Config diagnostics: every error and warning names `FILE:LINE:COL: yaml.path: message`.

use std::collections::HashMap;
use std::fmt;

/// How bad a diagnostic is: errors stop a start or a reload, warnings never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about the config file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    /// 1-based line and column; 0 when the problem has no place in the file (e.g. a missing key).
    pub line: usize,
    pub col: usize,
    /// The YAML path, e.g. `rules[2].upstream`; empty for the document itself.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            &self.path
        };
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.col, path, self.message
        )
    }
}

/// Where each YAML path starts in the file, so that late checks can still point at a place.
#[derive(Debug, Default, Clone)]
pub struct Positions {
    values: HashMap<String, (usize, usize)>,
    keys: HashMap<String, (usize, usize)>,
}

impl Positions {
    /// Remember the start of the value at `path` and, when it sits under a key, of that key.
    pub fn insert(&mut self, path: String, value: (usize, usize), key: Option<(usize, usize)>) {
        if let Some(k) = key {
            self.keys.insert(path.clone(), k);
        }
        self.values.insert(path, value);
    }

    /// The place of the value at `path`, or of its nearest ancestor that exists.
    pub fn value(&self, path: &str) -> (usize, usize) {
        self.lookup(&self.values, path)
    }

    /// The place of the key that names `path`, falling back to the value's place.
    pub fn key(&self, path: &str) -> (usize, usize) {
        match self.keys.get(path) {
            Some(p) => *p,
            None => self.value(path),
        }
    }

    fn lookup(&self, map: &HashMap<String, (usize, usize)>, path: &str) -> (usize, usize) {
        let mut p = path;
        loop {
            if let Some(pos) = map.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return map.get("").copied().unwrap_or((1, 1)),
            }
        }
    }
}

/// Collects diagnostics for one file.
#[derive(Debug)]
pub struct Diagnostics {
    file: String,
    positions: Positions,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: impl Into<String>, positions: Positions) -> Self {
        Self {
            file: file.into(),
            positions,
            items: Vec::new(),
        }
    }

    /// An error about the value at `path`.
    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.positions.value(path);
        self.push(Severity::Error, pos, path, message.into());
    }

    /// An error about the key that names `path` (unknown or misplaced keys).
    pub fn key_error(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.positions.key(path);
        self.push(Severity::Error, pos, path, message.into());
    }

    /// A warning about the value at `path`.
    pub fn warn(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.positions.value(path);
        self.push(Severity::Warning, pos, path, message.into());
    }

    /// An error at an explicit place (syntax errors, where no path is known).
    pub fn error_at(&mut self, line: usize, col: usize, message: impl Into<String>) {
        self.push(Severity::Error, (line, col), "", message.into());
    }

    fn push(
        &mut self,
        severity: Severity,
        (line, col): (usize, usize),
        path: &str,
        message: String,
    ) {
        self.items.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line,
            col,
            path: path.to_string(),
            message,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn positions(&self) -> &Positions {
        &self.positions
    }
}
