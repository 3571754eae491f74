//! Signing out: `/.stepgate/logout`, on the portal host and on every app host.
//!
//! Signing out ends the portal session, and with it every app session minted
//! from it, on every instance (the store ends them; each instance's session
//! cache forgets within its 500 ms). A `GET` shows a page with one button (so
//! an app's own "log out" link can point at `https://APP/.stepgate/logout` or
//! the portal's); the `POST` behind it needs a same-origin request and the CSRF
//! token of the page — derived from the portal cookie on the portal host, and
//! from the app cookie on an app host, where the portal cookie never goes.

use http::StatusCode;

use super::sessions::{self, SIGNED_OUT, portal_signed_out, signed_out};
use super::{PortalRequest, Refusal, Result, guard, html, pages};
use crate::audit;
use crate::model::{AppView, token_hash};
use crate::reply::Reply;
use crate::session::cookie::CookieKind;

/// `GET /.stepgate/logout` on the portal host: a confirm button.
pub async fn portal_page(req: &PortalRequest<'_>) -> Result<Reply> {
    let Some(lookup) = sessions::current(req).await? else {
        return Ok(portal_signed_out(req));
    };
    let csrf = guard::csrf_token(&lookup.token_hash);
    Ok(html(
        StatusCode::OK,
        pages::confirm_logout(&lookup.session.user, &csrf),
    ))
}

/// `POST /.stepgate/logout` on the portal host.
pub async fn portal_submit(req: &PortalRequest<'_>) -> Result<Reply> {
    req.require_same_origin()?;
    if let Some(lookup) = sessions::current(req).await? {
        if !guard::csrf_ok(&lookup.token_hash, req.form().field("csrf")) {
            return Err(Refusal::StaleForm);
        }
        let s = lookup.session;
        let ok = req.store().revoke_session(&s.id).await?;
        audit::revocation("logout", Some(&s.user), "session", &s.id, ok);
    }
    Ok(portal_signed_out(req))
}

/// The app session of this request on this host: (its cookie token's hash, its view).
async fn app_session(req: &PortalRequest<'_>) -> Result<Option<(String, AppView)>> {
    let facts = req.facts;
    let Some(token) = req
        .keys
        .token_from_headers(&facts.headers, CookieKind::App, facts.https)
    else {
        return Ok(None);
    };
    let hash = token_hash(&token);
    Ok(req
        .store()
        .app_session(&hash)
        .await?
        .filter(|v| v.app.host == facts.host)
        .map(|v| (hash, v)))
}

/// `GET /.stepgate/logout` on an app host: a confirm button.
pub async fn app_page(req: &PortalRequest<'_>) -> Result<Reply> {
    let Some((hash, view)) = app_session(req).await? else {
        return Ok(signed_out(
            req,
            CookieKind::App,
            req.facts.https,
            SIGNED_OUT,
        ));
    };
    Ok(html(
        StatusCode::OK,
        pages::confirm_logout(&view.app.user, &guard::csrf_token(&hash)),
    ))
}

/// `POST /.stepgate/logout` on an app host: ends the portal session this app
/// session came from, and so every app session of it.
pub async fn app_submit(req: &PortalRequest<'_>) -> Result<Reply> {
    if !guard::same_origin(req.facts, &req.facts.origin()) {
        return Err(Refusal::NotFromSite);
    }
    if let Some((hash, view)) = app_session(req).await? {
        if !guard::csrf_ok(&hash, req.form().field("csrf")) {
            return Err(Refusal::StaleForm);
        }
        let id = &view.portal.id;
        let ok = req.store().revoke_session(id).await?;
        audit::revocation("logout", Some(&view.app.user), "session", id, ok);
    }
    Ok(signed_out(
        req,
        CookieKind::App,
        req.facts.https,
        SIGNED_OUT,
    ))
}
