//! The store traits: every durable or short-lived record the gateway keeps,
//! one trait per aggregate ([`CredentialStore`], [`SessionStore`],
//! [`TokenStore`], [`EphemeralStore`]) and [`Store`], their union.
//!
//! Rules about stored records are decided here and in `model`, once (the sign
//! counter: [`CredentialStore::record_use`]); a backend offers only atomic
//! primitives. Every list comes in the one order `order.rs` defines.
//!
//! Two backends implement them and pass one conformance suite: `sqlite`
//! (embedded default) and `redis` (several gateway instances). Any backend
//! failure surfaces as [`StoreError::Unavailable`], which the gateway turns into
//! 503: a store in doubt never lets a request through.

mod codec;
mod order;
pub mod redis;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::config::StoreSettings;

use crate::client_token::ClientToken;
use crate::model::{
    AppSession, AppView, Credential, Grant, Invite, PortalSession, Timestamp, Verification,
};

/// The longest a single-read item lives, whatever `put_once` is asked: ceremony
/// states live at most 5 minutes; callback codes should ask for ≤ 60 s.
pub const MAX_ONCE_TTL: Duration = Duration::from_secs(300);

/// What can go wrong talking to a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend did not answer (down, timed out, I/O error): fail closed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A unique key is taken (e.g. a credential id already registered).
    #[error("already exists")]
    Conflict,
    /// A stored record could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// Result of [`Store::set_counter_if`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterSwap {
    /// The stored counter was the expected one and is now the new one.
    Set,
    /// The stored counter had moved on to this value: nothing was written.
    Moved(u32),
    /// No such credential.
    Missing,
}

/// How often [`Store::record_use`] re-reads a counter that moved under it
/// before it gives up (fail closed); each retry sees a higher counter.
const RECORD_USE_TRIES: usize = 8;

/// Result of recording a credential's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterCheck {
    /// Stored counter moved forward (or both are 0, for authenticators without counters).
    Accepted,
    /// The new counter is not above the stored one: the credential is now flagged.
    Regressed,
    /// No such credential.
    Missing,
}

/// A counter kept in the store for every gateway instance to share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedCount {
    /// The count in the current window, this call's addition included.
    pub count: u64,
    /// When the window ends.
    pub resets_in: Duration,
}

/// Registered passkeys (durable), their sign counters and flags.
///
/// Credentials come by user, creation time and id.
#[async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    /// Add a credential; `Conflict` when its id is registered anywhere.
    async fn add_credential(&self, cred: &Credential) -> Result<(), StoreError>;

    async fn credential(&self, id: &str) -> Result<Option<Credential>, StoreError>;

    /// All credentials, or one user's, by user, creation time and id.
    async fn credentials(&self, user: Option<&str>) -> Result<Vec<Credential>, StoreError>;

    async fn count_credentials(&self) -> Result<u64, StoreError>;

    /// Record a ceremony's sign counter and backup state. The rule is
    /// [`Credential::counter_moves_forward`]; the write is a compare-and-set
    /// ([`Self::set_counter_if`]), so of concurrent uses with one counter only
    /// one is accepted. A counter that does not move forward flags the
    /// credential and ends every session it touched ([`Self::flag_credential`]).
    async fn record_use(
        &self,
        id: &str,
        counter: u32,
        backup_state: bool,
        now: Timestamp,
    ) -> Result<CounterCheck, StoreError> {
        let Some(mut stored) = self.credential(id).await?.map(|c| c.counter) else {
            return Ok(CounterCheck::Missing);
        };
        for _ in 0..RECORD_USE_TRIES {
            if !Credential::counter_moves_forward(stored, counter) {
                return Ok(if self.flag_credential(id).await? {
                    CounterCheck::Regressed
                } else {
                    CounterCheck::Missing
                });
            }
            match self
                .set_counter_if(id, stored, counter, backup_state, now)
                .await?
            {
                CounterSwap::Set => return Ok(CounterCheck::Accepted),
                CounterSwap::Moved(current) => stored = current,
                CounterSwap::Missing => return Ok(CounterCheck::Missing),
            }
        }
        Err(StoreError::Unavailable(
            "the sign counter kept moving under this ceremony".into(),
        ))
    }

    /// Primitive: if credential `id`'s stored counter is still `expected`, store
    /// `counter`, `backup_state` and `last_used_at = now`, atomically.
    async fn set_counter_if(
        &self,
        id: &str,
        expected: u32,
        counter: u32,
        backup_state: bool,
        now: Timestamp,
    ) -> Result<CounterSwap, StoreError>;

    /// Primitive: flag credential `id` (a possible clone) and end every portal
    /// session (with its app sessions) indexed under it, in one step; `false`
    /// if there is no such credential.
    async fn flag_credential(&self, id: &str) -> Result<bool, StoreError>;

    async fn rename_credential(&self, id: &str, label: &str) -> Result<bool, StoreError>;

    /// Remove a credential and end every portal session (with its app sessions)
    /// that any ceremony with it touched: its sign-in, a later step-up (`last_uv`,
    /// even if since superseded) or a grant of one of its app sessions. Client
    /// tokens minted with it end too.
    async fn revoke_credential(&self, id: &str) -> Result<bool, StoreError>;
}

/// Portal sessions, their app sessions and grants, and the index of the
/// credentials each portal session rests on (kept by the backend: every
/// session a ceremony with a credential touched ends when that credential is
/// revoked or flagged).
///
/// Portal sessions come by user, creation time and id; app sessions by
/// creation time and id; grants in the order they were given; the credential
/// standings of an [`AppView`] by credential id.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn add_portal_session(
        &self,
        token_hash: &str,
        session: &PortalSession,
    ) -> Result<(), StoreError>;

    /// The session for a cookie token; `None` if unknown (expiry is judged by the caller).
    async fn portal_session(&self, token_hash: &str) -> Result<Option<PortalSession>, StoreError>;

    /// Give a portal session a new token (the old one stops working at once) and
    /// optionally record a new ceremony as its `last_uv`. `None` if the old token is unknown.
    async fn rotate_portal_session(
        &self,
        old_token_hash: &str,
        new_token_hash: &str,
        last_uv: Option<&Verification>,
    ) -> Result<Option<PortalSession>, StoreError>;

    async fn touch_portal_session(&self, id: &str, now: Timestamp) -> Result<(), StoreError>;

    /// Add an app session with its grants. If its portal session is already
    /// gone, nothing is stored (a lookup would find nothing anyway).
    async fn add_app_session(
        &self,
        token_hash: &str,
        session: &AppSession,
        grants: &[Grant],
    ) -> Result<(), StoreError>;

    /// The app session for a cookie token with its portal session, its grants
    /// (in the order given) and the standing of the credentials it rests on (by
    /// id); `None` if either session is gone.
    async fn app_session(&self, token_hash: &str) -> Result<Option<AppView>, StoreError>;

    async fn touch_app_session(&self, id: &str, now: Timestamp) -> Result<(), StoreError>;

    /// End one app session (e.g. replaced by a newer one on the same host).
    async fn remove_app_session(&self, id: &str) -> Result<(), StoreError>;

    /// The grants an app session (by public id) holds, oldest first.
    async fn grants_of(&self, app_id: &str) -> Result<Vec<Grant>, StoreError>;

    /// Live portal sessions, all or one user's, by user, creation time and id.
    async fn portal_sessions(&self, user: Option<&str>) -> Result<Vec<PortalSession>, StoreError>;

    /// The live app sessions of a portal session, by creation time and id.
    async fn app_sessions(&self, portal_id: &str) -> Result<Vec<AppSession>, StoreError>;

    /// End a portal session (by public id) and all its app sessions.
    async fn revoke_session(&self, id: &str) -> Result<bool, StoreError>;

    /// End every session of a user; returns how many portal sessions ended.
    async fn revoke_user_sessions(&self, user: &str) -> Result<u64, StoreError>;
}

/// Client tokens, stored by the secret's hash until `expires_at`.
///
/// Tokens come by user, creation time and id.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Add a client token; `Conflict` when its id or hash is taken. A token
    /// already past its expiry is not stored.
    async fn add_token(&self, token_hash: &str, token: &ClientToken) -> Result<(), StoreError>;

    /// The token for a presented secret's hash; `None` if unknown, revoked or expired.
    /// Never cached by the store: a revocation anywhere is seen by the next lookup.
    async fn token(&self, token_hash: &str) -> Result<Option<ClientToken>, StoreError>;

    /// Live tokens, all or one user's, ordered by user, creation time and id.
    async fn tokens(&self, user: Option<&str>) -> Result<Vec<ClientToken>, StoreError>;

    /// End one token by public id.
    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError>;

    /// End every token of a user; returns how many ended.
    async fn revoke_user_tokens(&self, user: &str) -> Result<u64, StoreError>;
}

/// Short-lived state: invites (single use), single-read items (ceremony
/// states ≤ 5 min, callback codes ≤ 60 s) and the shared rate counters.
#[async_trait]
pub trait EphemeralStore: Send + Sync + 'static {
    async fn add_invite(&self, token_hash: &str, invite: &Invite) -> Result<(), StoreError>;

    /// Take an invite: a second take, or one after `expires_at`, gets `None`.
    async fn take_invite(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Invite>, StoreError>;

    /// Store a single-read item for `ttl` (capped at [`MAX_ONCE_TTL`]); an existing
    /// item under `key` is replaced.
    async fn put_once(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;

    /// Read and delete in one step; of many concurrent takers exactly one gets the value.
    async fn take_once(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Add `by` to the counter `key` (a hash, never a raw name) in a fixed
    /// window of `window` shared by every gateway instance, atomically, and
    /// return it; `Ok(None)` when this backend keeps no shared counters (one
    /// instance per store: the caller counts in process).
    async fn count_shared(
        &self,
        _key: &str,
        _by: u32,
        _window: Duration,
    ) -> Result<Option<SharedCount>, StoreError> {
        Ok(None)
    }
}

/// Everything stepgate stores: the union of the four aggregates, so one
/// `Arc<dyn Store>` serves them all. All methods are atomic on their own;
/// rules (the sign counter, what a possible clone ends) are decided in Rust
/// above the backends, which offer named atomic primitives.
///
/// Every list comes in one order on every backend (strings compare bytewise):
/// credentials, portal sessions and client tokens by user, creation time, id;
/// app sessions by creation time, id; grants in the order they were given;
/// the credential standings of an [`AppView`] by credential id.
#[async_trait]
pub trait Store: CredentialStore + SessionStore + TokenStore + EphemeralStore {
    /// Is the backend answering? (One round trip that reads.)
    async fn ping(&self) -> Result<(), StoreError> {
        self.count_credentials().await.map(|_| ())
    }
}

#[async_trait]
impl<T: CredentialStore + SessionStore + TokenStore + EphemeralStore> Store for T {}

/// Open the configured store: the SQLite file (created with its directory if
/// missing, schema migrated) or a Redis handle, on one URL or through Sentinel.
/// Redis connects lazily, so a Redis (or every sentinel) that is down at start-up
/// shows as `Unavailable` on the first call (and in `/readyz`), not here; a
/// malformed URL or an unusable SQLite file is an error here.
/// Every wall-clock read of the store goes through `clock`.
pub fn open(settings: &StoreSettings, clock: Arc<dyn Clock>) -> Result<Arc<dyn Store>, StoreError> {
    match settings {
        StoreSettings::Sqlite { path } => {
            Ok(Arc::new(sqlite::SqliteStore::open_with(path, clock)?))
        }
        StoreSettings::Redis { target, prefix } => Ok(Arc::new(redis::RedisStore::connect_with(
            target, prefix, clock,
        )?)),
    }
}
