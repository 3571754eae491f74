//! Portal sessions as the portal pages see them: read from the signed portal
//! cookie, started or rotated after a ceremony (via the session lifecycle),
//! and the page that says a browser's sessions ended.

use http::StatusCode;
use http::header::SET_COOKIE;

use super::{PortalRequest, Result, html, pages};
use crate::model::{ClientInfo, Credential, PortalSession, Verification};
use crate::policy;
use crate::reply::Reply;
use crate::reserved::PortalRoute;
use crate::session::cookie::{CookieKind, clear_cookie, set_cookie};
use crate::session::lifecycle::{PortalLookup, new_portal_session, resolve_portal};

/// The live portal session of this request (its user still configured and active).
pub async fn current(req: &PortalRequest<'_>) -> Result<Option<PortalLookup>> {
    let rt = &req.rt;
    let found = resolve_portal(
        req.store(),
        req.keys,
        &rt.session,
        &req.facts.headers,
        rt.boot.portal.secure,
        req.now,
    )
    .await?;
    Ok(found.filter(|l| policy::admit(rt, &l.session.user, None, req.now).is_ok()))
}

/// After a ceremony with `cred`: rotate the current session of the same user
/// (new token; `uv`, an assertion, becomes its `last_uv`) or start a new one
/// (never outliving `cred`). A registration passes no `uv`: its session is
/// signed in but holds no assertion any `step_up` accepts.
/// Returns the new cookie value and the session.
pub async fn after_ceremony(
    req: &PortalRequest<'_>,
    cred: &Credential,
    uv: Option<&Verification>,
) -> Result<(String, PortalSession)> {
    let store = req.store();
    let minted = req.keys.mint(CookieKind::Portal);
    if let Some(old) = current(req).await? {
        if old.session.user == cred.user {
            if let Some(s) = store
                .rotate_portal_session(&old.token_hash, &minted.token_hash, uv)
                .await?
            {
                return Ok((minted.cookie_value, s));
            }
        } else {
            store.revoke_session(&old.session.id).await?;
        }
    }
    let mut s = new_portal_session(
        &cred.user,
        uv.cloned(),
        cred.expires_at,
        &req.rt.session,
        req.now,
    );
    s.signed_in_with = Some(cred.id.clone());
    s.client = Some(ClientInfo {
        address: req.facts.client_ip.to_string(),
        user_agent: req
            .facts
            .header("user-agent")
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(256)
            .collect(),
    });
    store.add_portal_session(&minted.token_hash, &s).await?;
    Ok((minted.cookie_value, s))
}

/// The `Set-Cookie` for a portal session cookie value.
pub fn cookie(req: &PortalRequest<'_>, value: &str, session: &PortalSession) -> String {
    set_cookie(
        CookieKind::Portal,
        req.rt.boot.portal.secure,
        value,
        session.expires_at,
        req.now,
    )
}

/// What the page after signing out this browser says.
pub const SIGNED_OUT: &str =
    "You are signed out: this browser's sign-in and every app it opened with it have ended.";

/// The page after signing out saying `text`, clearing `kind`'s cookie on this host.
pub fn signed_out(req: &PortalRequest<'_>, kind: CookieKind, secure: bool, text: &str) -> Reply {
    html(
        StatusCode::OK,
        pages::message(
            "Signed out",
            text,
            Some((&req.url(PortalRoute::Account), "Sign in again")),
        ),
    )
    .header(SET_COOKIE, clear_cookie(kind, secure))
}

/// The portal page after signing out of the portal.
pub fn portal_signed_out(req: &PortalRequest<'_>) -> Reply {
    portal_signed_out_saying(req, SIGNED_OUT)
}

/// The portal page after signing out of the portal, saying `text`.
pub fn portal_signed_out_saying(req: &PortalRequest<'_>, text: &str) -> Reply {
    signed_out(req, CookieKind::Portal, req.rt.boot.portal.secure, text)
}
