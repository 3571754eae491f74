//! Portal sessions as the portal pages see them: read from the cookie, start
//! or rotate after a ceremony.

use super::Result;
use super::cookies::{self, Kind};
use crate::gateway::{Facts, Gateway};
use crate::session::{
    PortalSession, Verification, is_live, needs_touch, new_public_id, new_token, token_hash,
};

/// The live portal session of this request, with its cookie token.
pub async fn current(gw: &Gateway, facts: &Facts) -> Result<Option<(String, PortalSession)>> {
    let config = gw.config.load();
    let Some(token) = cookies::get(facts, Kind::Portal, config.portal.secure) else {
        return Ok(None);
    };
    let Some(s) = gw.store.portal_session(&token_hash(&token)).await? else {
        return Ok(None);
    };
    let now = gw.now();
    if !is_live(
        s.created_at,
        s.last_seen_at,
        s.expires_at,
        &config.session,
        now,
    ) {
        return Ok(None);
    }
    match config.users.get(&s.user) {
        Some(u) if u.is_active(now) => {}
        _ => return Ok(None),
    }
    if needs_touch(s.last_seen_at, now) {
        gw.store.touch_portal_session(&s.id, now).await?;
    }
    Ok(Some((token, s)))
}

/// After a ceremony: rotate the current session of the same user (new token,
/// new `last_uv`) or start a new one. Returns the new token and the session.
pub async fn after_ceremony(
    gw: &Gateway,
    facts: &Facts,
    user: &str,
    v: &Verification,
) -> Result<(String, PortalSession)> {
    let config = gw.config.load();
    let now = gw.now();
    let token = new_token();
    if let Some((old, s)) = current(gw, facts).await? {
        if s.user == user {
            if let Some(s) = gw
                .store
                .rotate_portal_session(&token_hash(&old), &token_hash(&token), Some(v))
                .await?
            {
                return Ok((token, s));
            }
        } else {
            gw.store.revoke_session(&s.id).await?;
        }
    }
    let s = PortalSession {
        id: new_public_id(),
        user: user.to_string(),
        created_at: now,
        last_seen_at: now,
        expires_at: now.saturating_add(config.session.max_lifetime.as_secs() as i64),
        last_uv: Some(v.clone()),
    };
    gw.store.add_portal_session(&token_hash(&token), &s).await?;
    Ok((token, s))
}

/// The `Set-Cookie` for a portal session token.
pub fn cookie(gw: &Gateway, token: &str) -> String {
    let config = gw.config.load();
    cookies::set(
        Kind::Portal,
        config.portal.secure,
        token,
        Some(config.session.max_lifetime.as_secs() as i64),
    )
}
