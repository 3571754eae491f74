//! Sessions, credentials and grants: the records the store keeps, and their lifetimes.
//!
//! A *portal session* is made by a ceremony at the portal; an *app session* is
//! minted on one app host from a portal session and dies with it. A *grant*
//! records that a UV ceremony was done for a rule of an app session. Cookies
//! carry only a random token; the store is keyed by the token's SHA-256
//! ([`token_hash`]), so a leaked database yields no usable cookie.

pub mod cache;
pub mod cookie;
pub mod lifecycle;

pub use cache::SessionCache;
pub use cookie::{CookieKeys, CookieKind, Minted};
pub use lifecycle::{
    PortalLookup, new_app_session, new_portal_session, resolve_app, resolve_app_cached,
    resolve_portal,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::SessionLimits;

/// Unix seconds.
pub type Timestamp = i64;

/// A registered passkey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The WebAuthn credential id, base64url without padding.
    pub id: String,
    pub user: String,
    /// The name the user gave it ("laptop", "yubikey").
    pub label: String,
    /// The webauthn-rs credential (public key and the rest), serialized as JSON.
    pub passkey: String,
    pub counter: u32,
    pub aaguid: Uuid,
    /// SHA-256 (hex) of the trusted root the attestation chained to; `None`: not attested.
    pub attestation_root: Option<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    /// Set when a sign counter went backwards: a possible clone. A flagged credential grants nothing.
    pub flagged: bool,
}

impl Credential {
    /// May this credential be used at `now`?
    pub fn is_usable(&self, now: Timestamp) -> bool {
        !self.flagged && self.expires_at.is_none_or(|e| now < e)
    }
}

/// An enrollment invitation; the token itself is only ever in the URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub user: String,
    /// Lifetime of the credential enrolled with it, in seconds.
    pub credential_ttl: Option<u64>,
    pub expires_at: Timestamp,
}

/// The facts of one UV ceremony.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub at: Timestamp,
    pub credential_id: String,
    pub credential_label: String,
    pub aaguid: Uuid,
    /// Authenticator sets the credential was proven to belong to at ceremony time
    /// (attestation chained to one of the set's roots and the AAGUID is listed).
    pub attested_sets: Vec<String>,
    pub backup_eligible: bool,
}

/// A portal session (cookie on the portal host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalSession {
    /// Public id, shown in the CLI and on the account page; not a secret.
    pub id: String,
    pub user: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// Absolute end (created + max_lifetime).
    pub expires_at: Timestamp,
    /// The newest ceremony of this session (what `scope: session` looks at).
    pub last_uv: Option<Verification>,
}

/// An app session (host-only cookie on one app host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSession {
    pub id: String,
    pub portal_id: String,
    pub user: String,
    pub host: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A ceremony done for one rule, held by one app session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub rule: String,
    pub verification: Verification,
}

/// What a request's app cookie resolves to: everything `policy::decide` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppView {
    pub app: AppSession,
    pub portal: PortalSession,
    pub grants: Vec<Grant>,
}

/// Is a session with these times alive at `now`?
pub fn is_live(
    created_at: Timestamp,
    last_seen_at: Timestamp,
    expires_at: Timestamp,
    limits: &SessionLimits,
    now: Timestamp,
) -> bool {
    let idle = limits.idle_timeout.as_secs() as i64;
    let max = limits.max_lifetime.as_secs() as i64;
    now < expires_at
        && now < created_at.saturating_add(max)
        && now < last_seen_at.saturating_add(idle)
}

/// Should the idle clock be written back? At most once a minute per session.
pub fn needs_touch(last_seen_at: Timestamp, now: Timestamp) -> bool {
    now - last_seen_at >= 60
}

/// The key under which the store keeps a cookie token's record.
///
/// Runs on every request to a `passkey` rule: the hex is written from a table
/// (a `format!` per byte cost about ten times the SHA-256 itself).
pub fn token_hash(token: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(2 * digest.len());
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// A fresh random token (128 bits), base64url.
pub fn new_token() -> String {
    use base64::Engine;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh public id (64 bits), hex: for listing and revoking, never for authenticating.
pub fn new_public_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_lower_hex_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
