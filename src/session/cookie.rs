//! Cookie codec: signed random session tokens, the `Set-Cookie` lines that carry
//! them, and finding or stripping our cookies in a request's `Cookie` headers.
//!
//! A cookie value is `base64url(token ‖ tag)`: a 128-bit random token (what
//! [`crate::model::new_secret`] makes) and `HMAC-SHA256(key, context ‖ cookie name ‖ token)`,
//! 64 characters in all. The store only knows the token's hash, so the cookie
//! carries nothing but a random id. Keys come from `secrets.cookie_keys`: the
//! first signs, every key verifies, so keys rotate without signing anyone out.
//! Tags are compared in constant time.
//!
//! Anything malformed (wrong length, bad base64, bad tag, the same cookie twice)
//! decodes to `None`, "no session", never to an error.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use http::header::COOKIE;
use sha2::Sha256;

use crate::model::Timestamp;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the random token.
pub const TOKEN_LEN: usize = 16;
const TAG_LEN: usize = 32;
/// Characters of an encoded cookie value (48 bytes, base64url without padding).
pub const VALUE_LEN: usize = 64;
/// The least key material accepted from a key file.
pub const MIN_KEY_LEN: usize = 32;
/// Domain separation for the tag, so these keys sign nothing else by accident.
const CONTEXT: &[u8] = b"stepgate-cookie-v1\0";

/// Which of our two cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieKind {
    /// `stepgate_portal`: the portal session, on the portal host.
    Portal,
    /// `stepgate_app`: an app session, host-only on one app host.
    App,
}

impl CookieKind {
    /// The name without prefix (what the tag is bound to).
    pub fn base_name(self) -> &'static str {
        match self {
            CookieKind::Portal => "stepgate_portal",
            CookieKind::App => "stepgate_app",
        }
    }

    /// The cookie's name: `__Host-` prefixed when served over https.
    pub fn name(self, secure: bool) -> &'static str {
        match (self, secure) {
            (CookieKind::Portal, true) => "__Host-stepgate_portal",
            (CookieKind::Portal, false) => "stepgate_portal",
            (CookieKind::App, true) => "__Host-stepgate_app",
            (CookieKind::App, false) => "stepgate_app",
        }
    }
}

/// The browser-state cookie an app host sets when it sends a browser to the
/// portal: a random value that binds the sign-in's callback code to this
/// browser (see [`CookieKeys::browser_binding`]). `__Host-` prefixed over https.
pub fn state_name(secure: bool) -> &'static str {
    if secure {
        "__Host-stepgate_state"
    } else {
        "stepgate_state"
    }
}

/// How long a browser-state cookie lives (a sign-in takes at most this long).
pub const STATE_MAX_AGE: i64 = 600;

/// `Set-Cookie` for a browser-state value.
pub fn set_state_cookie(secure: bool, value: &str) -> String {
    let mut s = format!(
        "{}={value}; Max-Age={STATE_MAX_AGE}; Path=/; HttpOnly; SameSite=Lax",
        state_name(secure)
    );
    if secure {
        s.push_str("; Secure");
    }
    s
}

/// The browser-state value of a request, if exactly one well-formed one is present.
pub fn state_from_headers(headers: &HeaderMap, secure: bool) -> Option<&str> {
    let v = find_cookie(headers, state_name(secure))?;
    let v = std::str::from_utf8(v).ok()?;
    let well_formed = v.len() == 22
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then_some(v)
}

/// Domain separation for browser bindings.
const BINDING_CONTEXT: &[u8] = b"stepgate-browser-binding-v1\0";

/// Why cookie keys cannot be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no cookie key files are configured (secrets.cookie_keys); make one with `stepgate gen-key > FILE`"
    )]
    NoKeys,
    #[error("cannot read cookie key file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cookie key file {path} is not one line of base64; make one with `stepgate gen-key > FILE`"
    )]
    NotBase64 { path: PathBuf },
    #[error(
        "cookie key file {path} holds {len} bytes, fewer than {MIN_KEY_LEN}; make one with `stepgate gen-key > FILE`"
    )]
    TooShort { path: PathBuf, len: usize },
}

/// A token that is not what [`crate::model::new_secret`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a session token must be {TOKEN_LEN} random bytes, base64url")]
pub struct BadToken;

/// The cookie signing keys: the first signs, all verify.
#[derive(Clone)]
pub struct CookieKeys {
    /// Keyed HMAC states, ready to clone; the first one signs.
    signer: HmacSha256,
    verifiers: Vec<HmacSha256>,
}

impl std::fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CookieKeys({} keys)", self.verifiers.len())
    }
}

fn decode_key(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if t.is_empty() || t.contains(char::is_whitespace) {
        return None;
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(t).ok())
}

impl CookieKeys {
    /// Read the key files named by `secrets.cookie_keys` (written by `stepgate gen-key`).
    /// A missing, unreadable, malformed or short file is an error: keys are never made up.
    pub fn load(paths: &[PathBuf]) -> Result<Self, KeyError> {
        let mut keys = Vec::with_capacity(paths.len());
        for path in paths {
            keys.push(Self::load_one(path)?);
        }
        Self::from_keys(keys).ok_or(KeyError::NoKeys)
    }

    fn load_one(path: &Path) -> Result<Vec<u8>, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let key = decode_key(&text).ok_or_else(|| KeyError::NotBase64 {
            path: path.to_path_buf(),
        })?;
        if key.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort {
                path: path.to_path_buf(),
                len: key.len(),
            });
        }
        Ok(key)
    }

    /// Keys from raw bytes (tests, benches); `None` if empty or any key is shorter than 32 bytes.
    pub fn from_keys(keys: Vec<Vec<u8>>) -> Option<Self> {
        if keys.iter().any(|k| k.len() < MIN_KEY_LEN) {
            return None;
        }
        let verifiers = keys
            .iter()
            .map(|k| HmacSha256::new_from_slice(k).ok())
            .collect::<Option<Vec<_>>>()?;
        let signer = verifiers.first()?.clone();
        Some(CookieKeys { signer, verifiers })
    }

    fn mac(base: &HmacSha256, kind: CookieKind, token: &[u8]) -> HmacSha256 {
        let mut mac = base.clone();
        mac.update(CONTEXT);
        mac.update(kind.base_name().as_bytes());
        mac.update(b"\0");
        mac.update(token);
        mac
    }

    fn seal_raw(&self, kind: CookieKind, raw: &[u8; TOKEN_LEN]) -> String {
        let tag = Self::mac(&self.signer, kind, raw).finalize().into_bytes();
        let mut out = Vec::with_capacity(TOKEN_LEN + TAG_LEN);
        out.extend_from_slice(raw);
        out.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The cookie value for `token` (a [`crate::model::new_secret`]), signed with the first key.
    pub fn seal(&self, kind: CookieKind, token: &str) -> Result<String, BadToken> {
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| BadToken)?;
        let raw: [u8; TOKEN_LEN] = raw.try_into().map_err(|_| BadToken)?;
        Ok(self.seal_raw(kind, &raw))
    }

    /// A fresh random token for a new session: the hash the store keys it by and
    /// the signed cookie value. The token itself is not kept anywhere else.
    pub fn mint(&self, kind: CookieKind) -> Minted {
        let raw: [u8; TOKEN_LEN] = rand::random();
        let token = URL_SAFE_NO_PAD.encode(raw);
        Minted {
            token_hash: crate::model::token_hash(&token),
            cookie_value: self.seal_raw(kind, &raw),
        }
    }

    /// The token inside a cookie value, if any key signed it for this kind of cookie.
    pub fn open(&self, kind: CookieKind, value: &str) -> Option<String> {
        self.open_bytes(kind, value.as_bytes())
    }

    /// [`CookieKeys::open`] on raw header bytes.
    pub fn open_bytes(&self, kind: CookieKind, value: &[u8]) -> Option<String> {
        if value.len() != VALUE_LEN {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(value).ok()?;
        if raw.len() != TOKEN_LEN + TAG_LEN {
            return None;
        }
        let (token, tag) = raw.split_at(TOKEN_LEN);
        // Try every key, without stopping early, so timing says nothing about which one matched.
        let mut ok = false;
        for key in &self.verifiers {
            ok |= Self::mac(key, kind, token).verify_slice(tag).is_ok();
        }
        ok.then(|| URL_SAFE_NO_PAD.encode(token))
    }

    fn binding_mac(base: &HmacSha256, state: &str, origin: &str) -> HmacSha256 {
        let mut mac = base.clone();
        mac.update(BINDING_CONTEXT);
        mac.update(origin.as_bytes());
        mac.update(b"\0");
        mac.update(state.as_bytes());
        mac
    }

    /// What a callback code for `origin` is bound to, given the browser-state
    /// cookie value the app host set: keyed, so nobody who sees the cookie (a
    /// service on another port of the same host sees it too: cookies ignore
    /// ports) can bind a code to another origin.
    pub fn browser_binding(&self, state: &str, origin: &str) -> String {
        let tag = Self::binding_mac(&self.signer, state, origin)
            .finalize()
            .into_bytes();
        URL_SAFE_NO_PAD.encode(&tag[..24])
    }

    /// A stand-in credential id for a user name with no usable passkey, so a
    /// named sign-in begin looks the same for every name: stable for a name
    /// (across requests and instances sharing the keys), 16 to 64 bytes long.
    pub fn decoy_credential_id(&self, name: &str) -> Vec<u8> {
        let mut mac = self.signer.clone();
        mac.update(b"stepgate-decoy-credential-v1\0");
        mac.update(name.as_bytes());
        let a = mac.finalize().into_bytes();
        let mut mac = self.signer.clone();
        mac.update(b"stepgate-decoy-credential-v1-more\0");
        mac.update(name.as_bytes());
        let b = mac.finalize().into_bytes();
        let len = [16, 32, 48, 64][usize::from(a[0] % 4)];
        a.iter().chain(b.iter()).take(len).copied().collect()
    }

    /// Does `given` bind a code to this browser's `state` at `origin` (under any key)?
    pub fn binding_ok(&self, state: &str, origin: &str, given: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(given) else {
            return false;
        };
        if given.len() != 24 {
            return false;
        }
        let mut ok = false;
        for key in &self.verifiers {
            ok |= Self::binding_mac(key, state, origin)
                .verify_truncated_left(&given)
                .is_ok();
        }
        ok
    }

    /// The session token carried by a request's cookie of `kind`, if exactly one
    /// such cookie is present and it verifies.
    pub fn token_from_headers(
        &self,
        headers: &HeaderMap,
        kind: CookieKind,
        secure: bool,
    ) -> Option<String> {
        let value = find_cookie(headers, kind.name(secure))?;
        self.open_bytes(kind, value)
    }
}

/// A new session's cookie: store the session under `token_hash`, send
/// `cookie_value` in [`set_cookie`]. `Debug` does not show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Minted {
    pub token_hash: String,
    pub cookie_value: String,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("token_hash", &self.token_hash)
            .field("cookie_value", &"<redacted>")
            .finish()
    }
}

/// `Set-Cookie` for a session cookie; `Max-Age` runs to the session's absolute
/// expiry and never past it.
pub fn set_cookie(
    kind: CookieKind,
    secure: bool,
    value: &str,
    expires_at: Timestamp,
    now: Timestamp,
) -> String {
    cookie_line(kind, secure, value, expires_at.saturating_sub(now).max(0))
}

/// `Set-Cookie` that removes the cookie.
pub fn clear_cookie(kind: CookieKind, secure: bool) -> String {
    cookie_line(kind, secure, "", 0)
}

fn cookie_line(kind: CookieKind, secure: bool, value: &str, max_age: i64) -> String {
    let mut s = format!(
        "{}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax",
        kind.name(secure)
    );
    if secure {
        s.push_str("; Secure");
    }
    s
}

/// The pairs `name=value` of `Cookie` header values, as bytes.
fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            Some((pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()))
        })
}

/// The value of the cookie `name` across all `Cookie` headers; `None` when it is
/// missing or present more than once (ambiguous: an attacker may have planted one).
pub fn find_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    let mut found = None;
    for (n, v) in pairs(headers) {
        if n == name.as_bytes() {
            if found.is_some() {
                return None;
            }
            found = Some(v);
        }
    }
    found
}

/// Is `name` one of our cookie names (sessions, browser state, ceremony
/// binding), with or without the `__Host-` prefix, in any case?
pub fn is_our_cookie(name: &[u8]) -> bool {
    const OURS: [&str; 4] = [
        "stepgate_portal",
        "stepgate_app",
        "stepgate_state",
        "stepgate_ceremony",
    ];
    let base = match name.get(..7) {
        Some(p) if p.eq_ignore_ascii_case(b"__Host-") => &name[7..],
        _ => name,
    };
    OURS.iter().any(|n| base.eq_ignore_ascii_case(n.as_bytes()))
}

/// A `Cookie` header value without our cookies; `None` when nothing is left.
pub fn strip_cookie_value(value: &[u8]) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(value.len());
    for pair in value.split(|&b| b == b';') {
        let pair = pair.trim_ascii();
        if pair.is_empty() {
            continue;
        }
        let name = pair
            .iter()
            .position(|&b| b == b'=')
            .map_or(pair, |eq| pair[..eq].trim_ascii());
        if is_our_cookie(name) {
            continue;
        }
        if !out.is_empty() {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(pair);
    }
    (!out.is_empty()).then_some(out)
}

/// The `Cookie` header values a request keeps once our cookies are removed
/// (headers left empty are dropped): what goes upstream in their place.
pub fn cookies_without_ours(headers: &HeaderMap) -> Vec<http::HeaderValue> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| strip_cookie_value(v.as_bytes()))
        .filter_map(|v| http::HeaderValue::from_bytes(&v).ok())
        .collect()
}

#[cfg(test)]
mod tests;
