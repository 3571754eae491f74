//! Client tokens: secrets for native clients that cannot do WebAuthn (git,
//! WebDAV and CalDAV clients, scripts), each minted by a passkey ceremony.
//!
//! A token carries the facts of the UV ceremony that minted it (its
//! [`Verification`]: when, with which credential), the rules it was minted for
//! and an absolute expiry, so a rule's `step_up` judges it exactly as it judges
//! a session's grant: a token never beats freshness, and revoking the passkey
//! that minted it ends it.
//!
//! The secret is `sgt_` followed by 43 base64url characters (256 random bits).
//! It is shown once, at minting; the store keeps only its SHA-256
//! ([`crate::model::token_hash`]), so a leaked database yields no usable token.
//! This module owns the record, the secret's format and the lifetime rules; it
//! never stores, logs or prints a secret (the secret's `Debug` is redacted).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::config::TokenFrom;
use crate::model::{CredentialStanding, Timestamp, Verification, new_public_id, token_hash};

/// What every token secret starts with, so it is recognisable (in a config
/// diff, a shell history, a secret scanner) and never confused with a password.
pub const PREFIX: &str = "sgt_";

/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;

/// Characters after [`PREFIX`]: 32 bytes in base64url without padding.
const SECRET_CHARS: usize = 43;

/// A token's lifetime when the user asks for none.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// A token as the store keeps it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientToken {
    /// Public id, for listing and revoking; not a secret.
    pub id: String,
    pub user: String,
    /// The name the user gave it ("laptop git", "phone calendar").
    pub label: String,
    /// Names of the rules it was minted for; it is accepted by no other rule.
    pub rules: Vec<String>,
    pub created_at: Timestamp,
    /// Absolute end; a token never lives past it.
    pub expires_at: Timestamp,
    /// The UV ceremony that minted it: its time is the token's verification
    /// time, its credential the token's credential.
    pub verification: Verification,
}

impl ClientToken {
    /// Is the token within its lifetime at `now`?
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }

    /// Was the token minted for the rule named `rule`?
    pub fn covers(&self, rule: &str) -> bool {
        self.rules.iter().any(|r| r == rule)
    }
}

/// A token's secret: shown to the user once, never stored. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// The secret itself, for the one page or response that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSecret({PREFIX}<redacted>)")
    }
}

/// A freshly minted token: store `record` under `token_hash`, show `secret` once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedToken {
    pub token_hash: String,
    pub secret: TokenSecret,
    pub record: ClientToken,
}

/// What a user asks for when minting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub user: String,
    pub label: String,
    pub rules: Vec<String>,
    /// `None`: [`DEFAULT_LIFETIME`].
    pub lifetime: Option<Duration>,
}

/// Mint a token for `request` from the ceremony `verification`, at `now`. The
/// lifetime is what was asked (default [`DEFAULT_LIFETIME`]), at most `max_lifetime`.
pub fn mint(
    request: TokenRequest,
    verification: Verification,
    now: Timestamp,
    max_lifetime: Duration,
) -> MintedToken {
    let raw: [u8; SECRET_BYTES] = rand::random();
    let secret = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
    let lifetime = clamp_lifetime(request.lifetime, max_lifetime);
    let record = ClientToken {
        id: new_public_id(),
        user: request.user,
        label: request.label,
        rules: request.rules,
        created_at: now,
        expires_at: now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX)),
        verification,
    };
    MintedToken {
        token_hash: token_hash(&secret),
        secret: TokenSecret(secret),
        record,
    }
}

/// The lifetime a token gets: `requested` (default [`DEFAULT_LIFETIME`]), at most `max`.
pub fn clamp_lifetime(requested: Option<Duration>, max: Duration) -> Duration {
    requested.unwrap_or(DEFAULT_LIFETIME).min(max)
}

/// Does `presented` have the shape of a token secret (prefix, length, alphabet)?
/// Anything else is refused without asking the store.
pub fn is_well_formed(presented: &str) -> bool {
    presented.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == SECRET_CHARS
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// The key the store looks a presented secret up by, if it is well formed.
pub fn lookup_key(presented: &str) -> Option<String> {
    is_well_formed(presented).then(|| token_hash(presented))
}

/// A token as one request's check sees it: the record and the standing, read
/// just now, of the passkey that minted it (`None`: that passkey is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    pub token: ClientToken,
    pub credential: Option<CredentialStanding>,
}

/// What a request carries where a rule's tokens travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// Nothing that starts like a token (no header, another scheme, a password).
    Nothing,
    /// A value starting with [`PREFIX`]: judged as a token (and by nothing else).
    Token(String),
    /// The header came more than once: refused, whatever the copies say.
    Ambiguous,
}

/// Find a token where `from` says it travels.
///
/// `basic`: `Authorization: Basic` whose password (any user name) starts with
/// [`PREFIX`]; `bearer`: `Authorization: Bearer <token>`; a named header: its
/// whole value. Schemes compare case-insensitively. A token anywhere else (the
/// user name, another header, the query) is not found.
pub fn presented(from: &TokenFrom, headers: &http::HeaderMap) -> Presented {
    let mut values = headers.get_all(from.carrier()).iter();
    let Some(value) = values.next() else {
        return Presented::Nothing;
    };
    if values.next().is_some() {
        return Presented::Ambiguous;
    }
    let Ok(value) = value.to_str() else {
        return Presented::Nothing;
    };
    let candidate = match from {
        TokenFrom::Header(_) => Some(value.trim().to_string()),
        TokenFrom::Bearer => scheme_value(value, "bearer").map(str::to_string),
        TokenFrom::Basic => scheme_value(value, "basic").and_then(basic_password),
    };
    match candidate {
        Some(c) if c.starts_with(PREFIX) => Presented::Token(c),
        _ => Presented::Nothing,
    }
}

/// Does a header value carry a client token, or what looks like one: [`PREFIX`]
/// anywhere in it, or, for `Basic` credentials, anywhere in the decoded
/// `user:password` (so `git:sgt_…` and `sgt_…:x` both do). Hygiene removes
/// such a value before proxying wherever a rule could take a token from.
pub fn carries(value: &http::HeaderValue) -> bool {
    let bytes = value.as_bytes();
    if contains_prefix(bytes) {
        return true;
    }
    let basic = value
        .to_str()
        .ok()
        .and_then(|v| scheme_value(v, "basic"))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
    basic.is_some_and(|raw| contains_prefix(&raw))
}

fn contains_prefix(bytes: &[u8]) -> bool {
    bytes.windows(PREFIX.len()).any(|w| w == PREFIX.as_bytes())
}

/// Is `value` (of `from`'s carrier) in the form `from` takes tokens in: the
/// `Basic` or `Bearer` scheme for those, anything for a named header?
pub fn in_place(from: &TokenFrom, value: &http::HeaderValue) -> bool {
    let scheme = match from {
        TokenFrom::Header(_) => return true,
        TokenFrom::Basic => "basic",
        TokenFrom::Bearer => "bearer",
    };
    value
        .to_str()
        .ok()
        .and_then(|v| scheme_value(v, scheme))
        .is_some()
}

/// The credentials after `scheme` (case-insensitive) in an `Authorization` value.
fn scheme_value<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.trim().split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// The password of `Basic` credentials (`base64(user:password)`).
fn basic_password(encoded: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verification() -> Verification {
        Verification {
            at: 1_000,
            credential_id: "cred".into(),
            credential_label: "laptop".into(),
            aaguid: uuid::Uuid::nil(),
            backup_eligible: true,
        }
    }

    fn request(lifetime: Option<Duration>) -> TokenRequest {
        TokenRequest {
            user: "alice".into(),
            label: "git on laptop".into(),
            rules: vec!["git".into(), "dav".into()],
            lifetime,
        }
    }

    #[test]
    fn minted_secrets_are_well_formed_unique_and_hashed() {
        let a = mint(request(None), verification(), 1_000, Duration::MAX);
        let b = mint(request(None), verification(), 1_000, Duration::MAX);
        let secret = a.secret.expose();
        assert!(secret.starts_with(PREFIX));
        assert_eq!(secret.len(), PREFIX.len() + SECRET_CHARS);
        assert!(is_well_formed(secret));
        assert_ne!(secret, b.secret.expose());
        assert_ne!(a.record.id, b.record.id);
        assert_eq!(a.token_hash, token_hash(secret));
        assert_eq!(lookup_key(secret), Some(a.token_hash.clone()));
        assert!(!format!("{a:?}").contains(&secret[PREFIX.len()..]));
    }

    #[test]
    fn minting_keeps_the_ceremony_and_the_rules() {
        let m = mint(request(None), verification(), 5_000, Duration::MAX);
        assert_eq!(m.record.verification, verification());
        assert_eq!(
            (m.record.user.as_str(), m.record.created_at),
            ("alice", 5_000)
        );
        assert!(m.record.covers("git") && m.record.covers("dav"));
        assert!(!m.record.covers("gitea-admin") && !m.record.covers("gi"));
    }

    #[test]
    fn lifetimes_default_to_30_days_and_never_pass_the_maximum() {
        let day = Duration::from_secs(86_400);
        let cases = [
            (None, Duration::MAX, 30 * 86_400),
            (Some(day), Duration::MAX, 86_400),
            (None, 7 * day, 7 * 86_400),
            (Some(90 * day), 60 * day, 60 * 86_400),
        ];
        for (asked, max, want) in cases {
            let m = mint(request(asked), verification(), 1_000, max);
            assert_eq!(m.record.expires_at, 1_000 + want, "{asked:?} max {max:?}");
            assert!(m.record.is_live(1_000 + want - 1));
            assert!(!m.record.is_live(1_000 + want));
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                h.append(k, v);
            }
        }
        h
    }

    #[test]
    fn tokens_are_found_only_where_the_rule_says() {
        let token = format!("{PREFIX}{}", "A".repeat(SECRET_CHARS));
        let basic = |cred: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(cred)
            )
        };
        let custom = TokenFrom::Header(http::HeaderName::from_static("x-stepgate-token"));
        let found = Presented::Token(token.clone());
        /// Where the rule looks, what the request carries, what is found.
        type Case<'a> = (TokenFrom, Vec<(&'a str, String)>, Presented);
        let cases: Vec<Case> = vec![
            (
                TokenFrom::Basic,
                vec![("authorization", basic(&format!("git:{token}")))],
                found.clone(),
            ),
            (
                TokenFrom::Basic,
                vec![("authorization", basic(&format!(":{token}")))],
                found.clone(),
            ),
            (
                TokenFrom::Basic,
                vec![("authorization", basic(&format!("{token}:x")))],
                Presented::Nothing,
            ),
            (
                TokenFrom::Basic,
                vec![("authorization", format!("Bearer {token}"))],
                Presented::Nothing,
            ),
            (
                TokenFrom::Basic,
                vec![("authorization", basic("alice:hunter2"))],
                Presented::Nothing,
            ),
            (
                TokenFrom::Basic,
                vec![("authorization", "Basic !!!".into())],
                Presented::Nothing,
            ),
            (
                TokenFrom::Bearer,
                vec![("authorization", format!("bearer  {token}"))],
                found.clone(),
            ),
            (
                TokenFrom::Bearer,
                vec![("authorization", basic(&format!("git:{token}")))],
                Presented::Nothing,
            ),
            (
                TokenFrom::Bearer,
                vec![("x-stepgate-token", token.clone())],
                Presented::Nothing,
            ),
            (
                TokenFrom::Bearer,
                vec![
                    ("authorization", format!("Bearer {token}")),
                    ("authorization", format!("Bearer {token}")),
                ],
                Presented::Ambiguous,
            ),
            (
                custom.clone(),
                vec![("x-stepgate-token", token.clone())],
                found.clone(),
            ),
            (
                custom.clone(),
                vec![("authorization", format!("Bearer {token}"))],
                Presented::Nothing,
            ),
            (TokenFrom::Bearer, vec![], Presented::Nothing),
        ];
        for (from, given, want) in cases {
            let pairs: Vec<(&str, &str)> = given.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(
                presented(&from, &headers(&pairs)),
                want,
                "{from:?} {given:?}"
            );
        }
    }

    #[test]
    fn values_that_carry_a_token_are_recognised_in_any_scheme() {
        let token = format!("{PREFIX}{}", "A".repeat(SECRET_CHARS));
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let value = |s: &str| http::HeaderValue::from_str(s).expect("value");
        for carrying in [
            format!("Basic {}", b64(&format!("git:{token}"))),
            format!("basic  {}", b64(&format!("{token}:x"))),
            format!("Bearer {token}"),
            format!("Token {token}"),
            token.clone(),
            format!("x {PREFIX}short"),
        ] {
            assert!(carries(&value(&carrying)), "{carrying}");
        }
        for clean in [
            format!("Basic {}", b64("alice:hunter2")),
            "Basic !!!".to_string(),
            "Bearer eyJhbGciOi.x.y".to_string(),
            format!("SGT_{}", "A".repeat(SECRET_CHARS)),
        ] {
            assert!(!carries(&value(&clean)), "{clean}");
        }
        let bearer = value(&format!("Bearer {token}"));
        assert!(in_place(&TokenFrom::Bearer, &bearer));
        assert!(!in_place(&TokenFrom::Basic, &bearer));
        let custom = TokenFrom::Header(http::HeaderName::from_static("x-stepgate-token"));
        assert!(in_place(&custom, &value(&token)));
    }

    #[test]
    fn only_the_token_shape_is_looked_up() {
        let good = format!("{PREFIX}{}", "A".repeat(SECRET_CHARS));
        assert!(is_well_formed(&good));
        let bad = [
            String::new(),
            PREFIX.to_string(),
            "A".repeat(SECRET_CHARS + PREFIX.len()),
            format!("SGT_{}", "A".repeat(SECRET_CHARS)),
            format!("{PREFIX}{}", "A".repeat(SECRET_CHARS - 1)),
            format!("{PREFIX}{}", "A".repeat(SECRET_CHARS + 1)),
            format!("{PREFIX}{}=", "A".repeat(SECRET_CHARS - 1)),
            format!("{PREFIX}{}+", "A".repeat(SECRET_CHARS - 1)),
            format!("{PREFIX}{}é", "A".repeat(SECRET_CHARS - 2)),
            format!(" {good}"),
        ];
        for b in &bad {
            assert!(!is_well_formed(b), "{b:?}");
            assert_eq!(lookup_key(b), None);
        }
    }
}
