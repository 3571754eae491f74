//! First start: when no credential exists at all, make one invite for the
//! first configured user (alphabetical order of `users:`) and log its URL, so
//! the operator can enroll without the CLI.

use std::time::Duration;

use crate::gateway::Gateway;
use crate::model::{Invite, new_secret, token_hash};
use crate::store::StoreError;

/// How long the bootstrap invite lives.
pub const BOOTSTRAP_TTL: Duration = Duration::from_secs(24 * 3600);

/// Create the bootstrap invite if no credential exists; returns its URL.
///
/// The gateway calls this once at start. The URL is logged once (it is the
/// operator's way in); it is single-use and expires after 24 hours.
pub async fn bootstrap(gw: &Gateway) -> Result<Option<String>, StoreError> {
    if gw.store.count_credentials().await? > 0 {
        return Ok(None);
    }
    let snapshot = gw.snapshot();
    let rt = &snapshot.config;
    let now = gw.now();
    let Some((user, _)) = rt.users.iter().find(|(_, u)| u.is_active(now)) else {
        tracing::warn!("no credential exists and no active user is configured: nobody can sign in");
        return Ok(None);
    };
    let token = new_secret();
    let invite = Invite {
        user: user.clone(),
        credential_ttl: None,
        expires_at: now + BOOTSTRAP_TTL.as_secs() as i64,
    };
    gw.store.add_invite(&token_hash(&token), &invite).await?;
    let url = super::PortalRoute::Enroll.url_with(&rt.boot.portal, &[("token", &token)]);
    // The link is a secret: it goes to the operator's terminal (standard
    // output, see `commands::serve`), never into the log.
    tracing::warn!(user = %user,
        "no passkey is registered yet: a one-time enrollment link (valid 24h) was printed on standard output; `stepgate invite USER` makes another");
    Ok(Some(url))
}
