//! The records stepgate keeps and passes between layers: passkeys and what
//! an attestation proved, invites, assertions, portal and app sessions,
//! grants, and the view of an app session a request resolves to; and the
//! random ids and secrets they are keyed by.
//!
//! Plain data with no behaviour beyond reading itself: the store saves these,
//! the session layer decides their lifetimes, `policy::decide` judges them.
//! Cookies carry only a random token; the store is keyed by the token's
//! SHA-256 ([`token_hash`]), so a leaked database yields no usable cookie.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

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
    /// The AAGUID the authenticator data named at registration. Alone it proves
    /// nothing (any client can write any AAGUID there); see [`Self::attestation`].
    pub aaguid: Uuid,
    /// What a signed attestation proved at registration; `None` when nothing
    /// was proven (`none`, self or `fido-u2f` attestation, or no configured root).
    #[serde(default)]
    pub attestation: Option<AttestationProof>,
    /// Backup eligible (a synced passkey) as registered; an assertion that says
    /// otherwise is refused.
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
        usable(self.flagged, self.expires_at, now)
    }

    /// The sign-counter rule: may an assertion that reports `presented` follow
    /// one that left `stored`? Only if the counter moved forward, or both are 0
    /// (an authenticator that keeps no counter). Anything else is a possible
    /// clone: the credential is flagged and every session it touched ends.
    pub fn counter_moves_forward(stored: u32, presented: u32) -> bool {
        presented > stored || (presented == 0 && stored == 0)
    }

    /// What sessions resting on this credential need to know of it.
    pub fn standing(&self) -> CredentialStanding {
        CredentialStanding {
            id: self.id.clone(),
            flagged: self.flagged,
            expires_at: self.expires_at,
            backup_eligible: self.backup_eligible,
            attestation: self.attestation.clone(),
        }
    }
}

fn usable(flagged: bool, expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    !flagged && expires_at.is_none_or(|e| now < e)
}

/// What a registration's attestation proved: an attestation signature over
/// the authenticator data (so over its AAGUID and flags too), by a key whose
/// certificate chains to a root the config trusted at registration.
///
/// Which authenticator sets this puts the credential in is worked out from
/// these facts and the *current* config at every request, so removing a root
/// or an AAGUID from a set takes effect on live sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationProof {
    /// The statement format (`packed`, `tpm`, `android-key`, `android-safetynet`, `apple`).
    pub format: String,
    /// SHA-256 (hex) of the DER of the configured root the certificate chain verified against.
    pub root: String,
    /// The AAGUID the signature covered (equal to the certificate's AAGUID extension, where present).
    pub aaguid: Uuid,
}

/// A credential's current standing, as a session lookup returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialStanding {
    pub id: String,
    pub flagged: bool,
    pub expires_at: Option<Timestamp>,
    pub backup_eligible: bool,
    pub attestation: Option<AttestationProof>,
}

impl CredentialStanding {
    /// May ceremonies with this credential count at `now`?
    pub fn is_usable(&self, now: Timestamp) -> bool {
        usable(self.flagged, self.expires_at, now)
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

/// The facts of one UV assertion (a registration is never one).
///
/// What the credential *is* (its attested model, whether it still exists, is
/// flagged or expired) is not copied here: it is read afresh with every
/// session lookup ([`AppView::credentials`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub at: Timestamp,
    pub credential_id: String,
    pub credential_label: String,
    pub aaguid: Uuid,
    /// The backup-eligible flag of the assertion's signed authenticator data.
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
    /// The newest assertion of this session (what `scope: session` looks at);
    /// `None` for a session made by registering a passkey.
    pub last_uv: Option<Verification>,
    /// The credential whose ceremony (sign-in or registration) started this session.
    #[serde(default)]
    pub signed_in_with: Option<String>,
    /// Where the session was started from, for the account page.
    #[serde(default)]
    pub client: Option<ClientInfo>,
}

/// The browser a session was started from, as it introduced itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The client address (after trusted proxies).
    pub address: String,
    /// The `User-Agent` it sent (at most 256 characters).
    pub user_agent: String,
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
    /// The standing, read in the same store call, of the credentials the
    /// sessions rest on (at least those of `grants`, `portal.last_uv` and
    /// `portal.signed_in_with`). A credential missing here no longer exists.
    pub credentials: Vec<CredentialStanding>,
}

impl AppView {
    /// The standing of credential `id`; `None`: it no longer exists.
    pub fn standing(&self, id: &str) -> Option<&CredentialStanding> {
        self.credentials.iter().find(|c| c.id == id)
    }
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
pub fn new_secret() -> String {
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
    #[test]
    fn counters_move_forward_or_stay_at_zero() {
        use super::Credential;
        assert!(Credential::counter_moves_forward(5, 6));
        assert!(Credential::counter_moves_forward(0, 0));
        assert!(Credential::counter_moves_forward(0, 1));
        assert!(!Credential::counter_moves_forward(5, 5));
        assert!(!Credential::counter_moves_forward(5, 4));
        assert!(!Credential::counter_moves_forward(3, 0));
    }

    use super::*;

    #[test]
    fn token_hash_is_lower_hex_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

/// Who the upstream is told the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Unix seconds of the UV ceremony that counted for this request.
    pub verified_at: Option<Timestamp>,
    pub rule: String,
}
