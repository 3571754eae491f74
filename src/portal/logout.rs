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
use http::header::SET_COOKIE;

use super::cookies::{CookieKind, clear_cookie};
use super::{Failure, Result, guard, html, pages, require_same_origin, sessions};
use crate::audit;
use crate::gateway::{Facts, Gateway, Reply};
use crate::session::token_hash;

/// The page after signing out, clearing `kind`'s cookie on this host.
fn signed_out(gw: &Gateway, kind: CookieKind, secure: bool) -> Reply {
    let rt = gw.config.load();
    html(
        StatusCode::OK,
        pages::message(
            "Signed out",
            "You are signed out: this browser's sign-in and every app it opened with it have ended.",
            Some((&rt.portal.url("/.stepgate/account"), "Sign in again")),
        ),
    )
    .header(SET_COOKIE, clear_cookie(kind, secure))
}

/// The portal page after signing out of the portal.
pub fn portal_signed_out(gw: &Gateway) -> Reply {
    signed_out(gw, CookieKind::Portal, gw.config.load().portal.secure)
}

fn field(body: &[u8], name: &str) -> String {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn stale_form() -> Failure {
    Failure::Forbidden("This form is out of date. Reload the page and try again.".into())
}

/// `GET /.stepgate/logout` on the portal host: a confirm button.
pub async fn portal_page(gw: &Gateway, facts: &Facts) -> Result<Reply> {
    let Some(lookup) = sessions::current(gw, facts).await? else {
        return Ok(portal_signed_out(gw));
    };
    let csrf = guard::csrf_token(&lookup.token_hash);
    Ok(html(
        StatusCode::OK,
        pages::confirm_logout(&lookup.session.user, &csrf),
    ))
}

/// `POST /.stepgate/logout` on the portal host.
pub async fn portal_submit(gw: &Gateway, facts: &Facts, body: &[u8]) -> Result<Reply> {
    require_same_origin(gw, facts)?;
    if let Some(lookup) = sessions::current(gw, facts).await? {
        if !guard::csrf_ok(&lookup.token_hash, &field(body, "csrf")) {
            return Err(stale_form());
        }
        let s = lookup.session;
        let ok = gw.store.revoke_session(&s.id).await?;
        audit::revocation("logout", Some(&s.user), "session", &s.id, ok);
    }
    Ok(portal_signed_out(gw))
}

/// The app session of this request on this host: (its cookie token's hash, its view).
async fn app_session(
    gw: &Gateway,
    facts: &Facts,
) -> Result<Option<(String, crate::session::AppView)>> {
    let keys = gw.cookie_keys.load();
    let Some(token) = keys.token_from_headers(&facts.headers, CookieKind::App, facts.https) else {
        return Ok(None);
    };
    let hash = token_hash(&token);
    Ok(gw
        .store
        .app_session(&hash)
        .await?
        .filter(|v| v.app.host == facts.host)
        .map(|v| (hash, v)))
}

/// `GET /.stepgate/logout` on an app host: a confirm button.
pub async fn app_page(gw: &Gateway, facts: &Facts) -> Result<Reply> {
    let Some((hash, view)) = app_session(gw, facts).await? else {
        return Ok(signed_out(gw, CookieKind::App, facts.https));
    };
    Ok(html(
        StatusCode::OK,
        pages::confirm_logout(&view.app.user, &guard::csrf_token(&hash)),
    ))
}

/// `POST /.stepgate/logout` on an app host: ends the portal session this app
/// session came from, and so every app session of it.
pub async fn app_submit(gw: &Gateway, facts: &Facts, body: &[u8]) -> Result<Reply> {
    if !guard::same_origin(facts, &facts.origin()) {
        return Err(Failure::Forbidden(
            "This request did not come from this site's own page, so it was refused.".into(),
        ));
    }
    if let Some((hash, view)) = app_session(gw, facts).await? {
        if !guard::csrf_ok(&hash, &field(body, "csrf")) {
            return Err(stale_form());
        }
        let id = &view.portal.id;
        let ok = gw.store.revoke_session(id).await?;
        audit::revocation("logout", Some(&view.app.user), "session", id, ok);
    }
    Ok(signed_out(gw, CookieKind::App, facts.https))
}
