//! Portal sessions as the portal pages see them: read from the signed portal
//! cookie, started or rotated after a ceremony (via the session lifecycle).

use super::Result;
use super::cookies::{CookieKind, set_cookie};
use crate::gateway::{Facts, Gateway};
use crate::session::lifecycle::{PortalLookup, new_portal_session, resolve_portal};
use crate::session::{ClientInfo, Credential, PortalSession, Verification};

/// The live portal session of this request (its user still configured and active).
pub async fn current(gw: &Gateway, facts: &Facts) -> Result<Option<PortalLookup>> {
    let config = gw.config.load();
    let keys = gw.cookie_keys.load();
    let now = gw.now();
    let Some(lookup) = resolve_portal(
        gw.store.as_ref(),
        &keys,
        &config.session,
        &facts.headers,
        config.portal.secure,
        now,
    )
    .await?
    else {
        return Ok(None);
    };
    match config.users.get(&lookup.session.user) {
        Some(u) if u.is_active(now) => Ok(Some(lookup)),
        _ => Ok(None),
    }
}

/// After a ceremony with `cred`: rotate the current session of the same user
/// (new token; `uv`, an assertion, becomes its `last_uv`) or start a new one
/// (never outliving `cred`). A registration passes no `uv`: its session is
/// signed in but holds no assertion any `step_up` accepts.
/// Returns the new cookie value and the session.
pub async fn after_ceremony(
    gw: &Gateway,
    facts: &Facts,
    cred: &Credential,
    uv: Option<&Verification>,
) -> Result<(String, PortalSession)> {
    let config = gw.config.load();
    let keys = gw.cookie_keys.load();
    let now = gw.now();
    let minted = keys.mint(CookieKind::Portal);
    if let Some(old) = current(gw, facts).await? {
        if old.session.user == cred.user {
            if let Some(s) = gw
                .store
                .rotate_portal_session(&old.token_hash, &minted.token_hash, uv)
                .await?
            {
                return Ok((minted.cookie_value, s));
            }
        } else {
            gw.store.revoke_session(&old.session.id).await?;
        }
    }
    let mut s = new_portal_session(
        &cred.user,
        uv.cloned(),
        cred.expires_at,
        &config.session,
        now,
    );
    s.signed_in_with = Some(cred.id.clone());
    s.client = Some(ClientInfo {
        address: facts.client_ip.to_string(),
        user_agent: facts
            .header("user-agent")
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(256)
            .collect(),
    });
    gw.store.add_portal_session(&minted.token_hash, &s).await?;
    Ok((minted.cookie_value, s))
}

/// The `Set-Cookie` for a portal session cookie value.
pub fn cookie(gw: &Gateway, value: &str, session: &PortalSession) -> String {
    let config = gw.config.load();
    set_cookie(
        CookieKind::Portal,
        config.portal.secure,
        value,
        session.expires_at,
        gw.now(),
    )
}
