//! Request paths: normalisation before matching, and the patterns rules use.
//!
//! [`normalize_path`] turns a raw request path into the one canonical form that
//! is both matched and sent upstream, or refuses it (the gateway answers 400)
//! when it could mean two things to two programs.

use globset::{Glob, GlobBuilder, GlobMatcher};
use thiserror::Error;

/// Why a request path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("path must start with \"/\"")]
    NotAbsolute,
    #[error("encoded \"/\" or \"\\\" in path")]
    EncodedSeparator,
    #[error("backslash in path")]
    Backslash,
    #[error("NUL or control character in path")]
    Control,
    #[error("\"..\" climbs above the root")]
    EscapesRoot,
    #[error("\";\" path parameters are not accepted")]
    PathParameter,
    #[error("double-encoded character in path")]
    DoubleEncoded,
    #[error("malformed percent-encoding in path")]
    BadPercent,
    #[error("path is not valid UTF-8")]
    InvalidUtf8,
    #[error("encoded \"#\" in path")]
    EncodedFragment,
    #[error("a path segment ends in \".\" or a space, which some servers drop")]
    TrailingDot,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalise the path part of a request target (no query, no fragment).
///
/// Unreserved characters that were percent-encoded are decoded, other escapes
/// are kept with upper-case hex, `.` and `..` segments are resolved and repeated
/// slashes collapse to one. Anything ambiguous is an error.
pub fn normalize_path(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let text = decode_unreserved(raw)?;
    resolve_dot_segments(&text)
}

/// Pass 1: decode escapes of unreserved characters, refuse what could be read
/// two ways (encoded separators, escapes of escapes, parameters, controls),
/// and check that the decoded bytes are UTF-8.
fn decode_unreserved(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut text = String::with_capacity(raw.len());
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (h, l) = match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => (h, l),
                    _ => return Err(PathError::BadPercent),
                };
                let v = h * 16 + l;
                match v {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    b'#' => return Err(PathError::EncodedFragment),
                    0..=0x1f | 0x7f => return Err(PathError::Control),
                    b';' => return Err(PathError::PathParameter),
                    b'%' => {
                        // %25 followed by two hex digits is an escape of an escape.
                        if bytes.get(i + 3).copied().and_then(hex).is_some()
                            && bytes.get(i + 4).copied().and_then(hex).is_some()
                        {
                            return Err(PathError::DoubleEncoded);
                        }
                        text.push_str("%25");
                    }
                    v if is_unreserved(v) => text.push(v as char),
                    v => {
                        text.push('%');
                        text.push(char::from(b"0123456789ABCDEF"[(v >> 4) as usize]));
                        text.push(char::from(b"0123456789ABCDEF"[(v & 15) as usize]));
                    }
                }
                decoded.push(v);
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::PathParameter),
            0..=0x1f | 0x7f => return Err(PathError::Control),
            b'#' | b'?' => return Err(PathError::BadPercent),
            0x80..=0xff => return Err(PathError::InvalidUtf8),
            b' ' => return Err(PathError::Control),
            _ => {
                text.push(b as char);
                decoded.push(b);
                i += 1;
            }
        }
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(PathError::InvalidUtf8);
    }
    Ok(text)
}

/// Pass 2: resolve dot-segments (never above the root), collapse empty
/// segments, keep one trailing slash, and refuse segments that end in a dot
/// or an encoded space (some servers strip those).
fn resolve_dot_segments(text: &str) -> Result<String, PathError> {
    let trailing = text.len() > 1 && text.ends_with('/');
    let mut segments: Vec<&str> = Vec::new();
    let mut last_was_dot = false;
    for seg in text.split('/') {
        last_was_dot = false;
        match seg {
            "" => {}
            "." => last_was_dot = true,
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::EscapesRoot);
                }
                last_was_dot = true;
            }
            s if s.ends_with('.') || s.ends_with("%20") => return Err(PathError::TrailingDot),
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(text.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || ((trailing || last_was_dot) && !segments.is_empty()) {
        out.push('/');
    }
    Ok(out)
}

/// One entry of a rule's `paths:`.
#[derive(Debug, Clone)]
pub enum PathPattern {
    /// `/admin`: exactly this path.
    Exact(String),
    /// `/admin/**`: everything below `/admin/` (not `/admin` itself), stored as `/admin/`.
    Subtree(String),
    /// Any other glob (`*` stays within one segment, `**` crosses segments),
    /// with a second matcher that ignores ASCII case.
    Glob(String, GlobMatcher, GlobMatcher),
}

impl PathPattern {
    /// Parse a pattern from the config.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if !raw.starts_with('/') {
            return Err(format!("bad path pattern \"{raw}\": must start with \"/\""));
        }
        let has_glob = raw.contains(['*', '?', '[', '{']);
        if let Some(prefix) = raw.strip_suffix("/**")
            && !prefix.contains(['*', '?', '[', '{'])
        {
            let canon = normalize_path(&format!("{prefix}/"))
                .map_err(|e| format!("bad path pattern \"{raw}\": {e}"))?;
            return Ok(Self::Subtree(canon));
        }
        if !has_glob {
            let canon =
                normalize_path(raw).map_err(|e| format!("bad path pattern \"{raw}\": {e}"))?;
            if canon != raw {
                return Err(format!(
                    "bad path pattern \"{raw}\": write it in normal form, \"{canon}\""
                ));
            }
            return Ok(Self::Exact(canon));
        }
        let glob = |fold: bool| -> Result<GlobMatcher, String> {
            let g: Glob = GlobBuilder::new(raw)
                .literal_separator(true)
                .backslash_escape(false)
                .case_insensitive(fold)
                .build()
                .map_err(|e| format!("bad path pattern \"{raw}\": {e}"))?;
            Ok(g.compile_matcher())
        };
        Ok(Self::Glob(raw.to_string(), glob(false)?, glob(true)?))
    }

    /// Does the pattern match a normalised path?
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => p == path,
            Self::Subtree(prefix) => path.starts_with(prefix.as_str()),
            Self::Glob(_, m, _) => m.is_match(path),
        }
    }

    /// Does the pattern match a normalised path when ASCII case is ignored (as
    /// an app that folds case reads it)? Normalised paths are ASCII (anything
    /// else stays percent-encoded), so comparing bytes is exact.
    pub fn matches_folded(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => p.eq_ignore_ascii_case(path),
            Self::Subtree(prefix) => path
                .as_bytes()
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes())),
            Self::Glob(_, _, folded) => folded.is_match(path),
        }
    }

    /// The pattern as written in the config.
    pub fn as_written(&self) -> String {
        match self {
            Self::Exact(p) => p.clone(),
            Self::Subtree(p) => format!("{p}**"),
            Self::Glob(raw, ..) => raw.clone(),
        }
    }
}
