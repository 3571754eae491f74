//! Host names: normalising what a client sent, and the patterns rules use.
//!
//! A host is compared lower-cased, without its port and without one trailing
//! dot. `*.home.lab` matches any name below `home.lab` (at any depth) but not
//! `home.lab` itself; `*` matches every host.

use thiserror::Error;

/// Why a `Host` (or authority) cannot be judged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HostError {
    #[error("empty host")]
    Empty,
    #[error("host contains a character that is not allowed")]
    BadCharacter,
    #[error("host has a malformed port")]
    BadPort,
    #[error("host has an empty label")]
    EmptyLabel,
}

/// Normalise a `Host` header value: lower case, no port, no single trailing dot.
pub fn normalize_host(raw: &str) -> Result<String, HostError> {
    normalize_authority(raw).map(|(host, _)| host)
}

/// Normalise an authority (`Host` header, absolute-form target, forwarded
/// host): the host as [`normalize_host`] gives it, and the port if one is written.
pub fn normalize_authority(raw: &str) -> Result<(String, Option<u16>), HostError> {
    let raw = raw.trim_matches([' ', '\t']);
    if raw.is_empty() {
        return Err(HostError::Empty);
    }
    let (name, port) = if let Some(rest) = raw.strip_prefix('[') {
        // IPv6 literal: [::1]:8080
        let end = rest.find(']').ok_or(HostError::BadCharacter)?;
        let inner = &rest[..end];
        if inner.is_empty()
            || !inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(HostError::BadCharacter);
        }
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(HostError::BadPort)?),
        };
        (format!("[{}]", inner.to_ascii_lowercase()), port)
    } else {
        let (name, port) = match raw.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (raw, None),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() {
            return Err(HostError::Empty);
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(HostError::BadCharacter);
        }
        if name.split('.').any(str::is_empty) {
            return Err(HostError::EmptyLabel);
        }
        (name.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(p) if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(HostError::BadPort);
        }
        Some(p) => Some(p.parse::<u16>().map_err(|_| HostError::BadPort)?),
    };
    Ok((name, port))
}

/// One entry of a rule's `hosts:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `git.home.lab`
    Exact(String),
    /// `*.home.lab`, stored as `home.lab`
    Suffix(String),
    /// `*`
    Any,
}

impl HostPattern {
    /// Parse a pattern from the config; the error is a message for the config diagnostics.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw == "*" {
            return Ok(Self::Any);
        }
        if let Some(suffix) = raw.strip_prefix("*.") {
            let s =
                normalize_host(suffix).map_err(|e| format!("bad host pattern \"{raw}\": {e}"))?;
            if s.contains(['*', '[']) {
                return Err(format!(
                    "bad host pattern \"{raw}\": only a leading \"*.\" is allowed"
                ));
            }
            return Ok(Self::Suffix(s));
        }
        if raw.contains('*') {
            return Err(format!(
                "bad host pattern \"{raw}\": use an exact name, \"*.suffix\" or \"*\""
            ));
        }
        if raw.contains(':') && !raw.starts_with('[') {
            return Err(format!(
                "bad host pattern \"{raw}\": ports are ignored in matching; leave the port out"
            ));
        }
        normalize_host(raw)
            .map(Self::Exact)
            .map_err(|e| format!("bad host pattern \"{raw}\": {e}"))
    }

    /// Does this pattern match an already normalised host?
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(h) => h == host,
            Self::Suffix(s) => {
                host.len() > s.len() + 1
                    && host.ends_with(s.as_str())
                    && host.as_bytes()[host.len() - s.len() - 1] == b'.'
            }
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(h) => f.write_str(h),
            Self::Suffix(s) => write!(f, "*.{s}"),
        }
    }
}
