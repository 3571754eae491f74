//! The portal: every `/.stepgate/…` path except `/.stepgate/authz/*`.
//!
//! [`handle`] takes one `PortalRequest` (config snapshot, facts, time,
//! body), parses its [`PortalRoute`] once (404 for an unknown path, 405 for a
//! known one asked with another method) and dispatches on it; each page or API
//! lives in its own module and answers a [`Refusal`] when it refuses. Pages
//! are served only on the portal host (a login link that lands on an app host
//! is bounced to the portal); the callback, the assets and signing out are
//! served on every host. Every state-changing endpoint checks
//! `Origin`/`Sec-Fetch-Site` ([`guard`]) and forms carry a CSRF token.
//!
//! # Layout
//! - [`route`]: every reserved path, parsed once and used to build every link.
//! - `context`: the `PortalRequest` every handler takes.
//! - `refusal`: every refusal with its message, status and label.
//! - `pages`: the HTML, from compile-time checked templates (maud): one frame,
//!   and one template module per page.
//! - `redirect`: `rd` validation (open-redirect defence).
//! - `ceremony`: what every passkey ceremony shares — its state in the store
//!   bound to one browser (`pending`), verifying one assertion
//!   (`assertion`), the one-time callback code (`code`).
//! - `form`: labels, what an account action did, the session behind a form POST.
//! - `sessions`: this browser's portal session, and the signed-out page.
//! - `login`, `enroll`, `callback`, `account` (with its client-token section,
//!   `account::tokens`), `logout`: the pages and their JSON APIs, one module
//!   each. Pages never import pages: what two pages share lives in one of
//!   the modules above.
//! - [`ratelimit`]: per-IP and per-user limits on ceremony begin/finish.
//! - `sso`: what a portal session already proves for a rule (sign in once).
//! - [`bootstrap`]: the first invite when no credential exists.

mod account;
mod bootstrap;
mod callback;
mod ceremony;
mod context;

mod enroll;
mod form;
pub mod guard;
mod login;
mod logout;
mod pages;
mod redirect;
mod refusal;
mod sessions;
mod sso;

use bytes::Bytes;
use http::StatusCode;
use http::header::{CACHE_CONTROL, RETRY_AFTER};

use crate::gateway::{Gateway, Snapshot};
use crate::reply::Reply;
use crate::request::Facts;

use crate::reserved;
pub use crate::reserved::PortalRoute;
use crate::reserved::Unrouted;
pub use bootstrap::bootstrap;
pub(crate) use context::PortalRequest;
pub use refusal::Refusal;
pub(crate) use refusal::Result;

const JS: &str = include_str!("assets/portal.js");
const CSS: &str = include_str!("assets/portal.css");

/// The answer for a refusal: JSON for the API, a page otherwise.
fn refused(refusal: &Refusal, json: bool) -> Reply {
    if let Refusal::Store(e) = refusal {
        tracing::warn!(error = %e, "portal: store unavailable");
    }
    let status = refusal.status();
    let mut r = if json {
        let body = serde_json::json!({ "error": refusal.label(), "message": refusal.message() });
        Reply::new(status).body("application/json", body.to_string())
    } else {
        Reply::new(status).body(
            "text/html; charset=utf-8",
            pages::message(refusal.title(), &refusal.message(), None),
        )
    };
    r = r.header(CACHE_CONTROL, "no-store");
    if let Refusal::RateLimited(s) = refusal {
        r = r.header(RETRY_AFTER, s.to_string());
    }
    r
}

/// An HTML page answer.
pub(crate) fn html(status: StatusCode, body: String) -> Reply {
    Reply::new(status)
        .body("text/html; charset=utf-8", body)
        .header(CACHE_CONTROL, "no-store")
        .header(
            http::HeaderName::from_static("content-security-policy"),
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        .header(
            http::HeaderName::from_static("x-content-type-options"),
            "nosniff",
        )
        // Not `no-referrer`: browsers then send `Origin: null` on the pages'
        // own form posts, which the same-origin check must refuse. URLs (an
        // invite token) still never leave for another origin.
        .header(
            http::HeaderName::from_static("referrer-policy"),
            "same-origin",
        )
}

/// A JSON answer.
pub(crate) fn json(value: &serde_json::Value) -> Reply {
    Reply::new(StatusCode::OK)
        .body("application/json", value.to_string())
        .header(CACHE_CONTROL, "no-store")
}

fn asset(ct: &str, body: &'static str) -> Reply {
    Reply::new(StatusCode::OK)
        .body(ct, Bytes::from_static(body.as_bytes()))
        .header(CACHE_CONTROL, "public, max-age=300")
        .header(
            http::HeaderName::from_static("x-content-type-options"),
            "nosniff",
        )
}

/// Answer one `/.stepgate/…` request (not `/.stepgate/authz/*`).
pub async fn handle(gw: &Gateway, snapshot: &Snapshot, facts: &Facts, body: Bytes) -> Reply {
    let req = PortalRequest::new(gw, snapshot, facts, body);
    let route = PortalRoute::parse(facts.method.as_str(), &facts.path);
    let reply = answer(&req, route)
        .await
        .unwrap_or_else(|e| refused(&e, reserved::is_api(&facts.path)));
    if !reserved::is_read(facts.method.as_str()) || route == Ok(PortalRoute::Callback) {
        // Sign-in, step-up, callback, sign-out, revocations: sessions may have
        // ended or been replaced; the access check must not reuse an old
        // answer. Pages that only read (and 404s) leave the cache alone.
        gw.sessions.clear();
    }
    reply
}

/// Answer a parsed route: the assets, the callback and signing out on every
/// host; the rest on the portal host only (an app host bounces a portal page
/// there and knows nothing else).
async fn answer(req: &PortalRequest<'_>, route: Result<PortalRoute, Unrouted>) -> Result<Reply> {
    let on_portal = req.facts.host == req.rt.boot.portal.host;
    let route = match route {
        Ok(route) => route,
        Err(Unrouted::Method) if on_portal => return Err(Refusal::Method),
        Err(_) => return Err(Refusal::NotFound),
    };
    if on_portal || route.is_on_every_host() {
        return serve(req, route).await;
    }
    let reading = reserved::is_read(req.facts.method.as_str());
    match route {
        PortalRoute::Logout if reading => logout::app_page(req).await,
        PortalRoute::Logout => logout::app_submit(req).await,
        page if page.is_portal_page() && reading => {
            let mut url = req.rt.boot.portal.url(&req.facts.path);
            if let Some(q) = &req.facts.query {
                url.push('?');
                url.push_str(q);
            }
            Ok(Reply::redirect(StatusCode::FOUND, &url))
        }
        _ => Err(Refusal::NotFound),
    }
}

/// Serve `route` (on the portal host, or one served on every host).
async fn serve(req: &PortalRequest<'_>, route: PortalRoute) -> Result<Reply> {
    use PortalRoute::*;
    let reading = reserved::is_read(req.facts.method.as_str());
    match route {
        Script => Ok(asset("text/javascript; charset=utf-8", JS)),
        Stylesheet => Ok(asset("text/css; charset=utf-8", CSS)),
        Callback => callback::handle(req).await,
        Login => login::page(req).await,
        Enroll => enroll::page(req).await,
        Account => account::page(req).await,
        Logout if reading => logout::portal_page(req).await,
        Logout => logout::portal_submit(req).await,
        RenamePasskey | RevokePasskey | EndSession | EndOtherSessions | EndAllSessions => {
            account::action(req, route).await
        }
        RevokeToken => account::tokens::revoke(req).await,
        TokensBegin => account::tokens::begin(req).await,
        TokensFinish => account::tokens::finish(req).await,
        LoginBegin => login::begin(req).await,
        LoginFinish => login::finish(req).await,
        EnrollBegin => enroll::begin(req).await,
        EnrollFinish => enroll::finish(req).await,
        EnrollCancel => enroll::cancel(req).await,
    }
}

/// A human date (UTC) for unix seconds.
pub(crate) fn human_time(t: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(t) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute()
        ),
        Err(_) => t.to_string(),
    }
}
