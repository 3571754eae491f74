//! `/.stepgate/callback?code=…&rd=…` on any app host: trade a one-time code
//! for a host-only app session cookie, then 303 to `rd`.
//!
//! A code is redeemed only at the origin (scheme, host, port) it was made for,
//! by the browser that origin sent to the portal (its browser-state cookie must
//! match the binding the code carries), within a minute, while its portal
//! session is alive. The new app session replaces the one this browser held on
//! the host and keeps that session's grants only when both come from the same
//! portal session (the renewed rule's grant is replaced).

use http::StatusCode;
use http::header::SET_COOKIE;

use super::ceremony::code::{CODE_TTL, CodeRecord, code_key};
use super::{PortalRequest, Refusal, Result, html, pages, redirect};
use crate::audit;
use crate::model::{Grant, PortalSession, token_hash};
use crate::policy;
use crate::reply::Reply;
use crate::session::cookie::state_from_headers;
use crate::session::cookie::{CookieKind, set_cookie};
use crate::session::is_live;
use crate::session::lifecycle::new_app_session;

/// `GET /.stepgate/callback?code=&rd=`: the app session for a valid code, or a
/// page that says the link expired (with a link to start over).
pub async fn handle(req: &PortalRequest<'_>) -> Result<Reply> {
    let origin = req.facts.origin();
    // Only ever back to this origin; starting over there signs in afresh.
    let back = req
        .param("rd")
        .and_then(|r| redirect::validate(req.rt, &r))
        .filter(|t| t.origin() == origin)
        .map_or_else(|| "/".to_string(), |t| t.url.to_string());
    match redeem(req, &origin).await? {
        Some((record, portal)) => open_app_session(req, &record, &portal, &back).await,
        None => Ok(html(
            StatusCode::BAD_REQUEST,
            pages::message(
                "Sign-in link expired",
                "This sign-in link has expired or was already used. Please sign in again.",
                Some((&back, "Sign in again")),
            ),
        )),
    }
}

/// Take the request's code and check it: made within [`CODE_TTL`] for this
/// origin and this browser, its portal session alive and its user admitted.
/// `None`: expired, used, or not this browser's.
async fn redeem(
    req: &PortalRequest<'_>,
    origin: &str,
) -> Result<Option<(CodeRecord, PortalSession)>> {
    let (rt, now) = (&req.rt, req.now);
    let Some(code) = req.param("code").filter(|c| !c.is_empty() && c.len() <= 64) else {
        return Ok(None);
    };
    let Some(bytes) = req.store().take_once(&code_key(&code)).await? else {
        return Ok(None);
    };
    let record: CodeRecord = serde_json::from_slice(&bytes).map_err(|_| Refusal::DamagedLink)?;
    let age = now - record.at;
    if !(0..=CODE_TTL.as_secs() as i64).contains(&age) {
        return Ok(None);
    }
    // Only at the origin it was made for, and only in the browser that origin
    // sent to the portal (its browser-state cookie, bound with our keys).
    let bound = state_from_headers(&req.facts.headers, req.facts.https)
        .is_some_and(|state| req.keys.binding_ok(state, origin, &record.binding));
    if origin != record.origin || !bound {
        tracing::info!(%origin, "callback code presented at another origin or by another browser");
        return Ok(None);
    }
    // The portal session the code came from must still be alive (idle limit
    // included) and its user still allowed in.
    let portal = req
        .store()
        .portal_sessions(Some(&record.user))
        .await?
        .into_iter()
        .find(|p| {
            p.id == record.portal_id
                && is_live(p.created_at, p.last_seen_at, p.expires_at, &rt.session, now)
        });
    let admitted = policy::admit(rt, &record.user, None, now).is_ok();
    Ok(portal.filter(|_| admitted).map(|p| (record, p)))
}

/// Replace this browser's app session on the host with one from `portal`
/// carrying the code's grant, and send the browser to `back` with its cookie.
async fn open_app_session(
    req: &PortalRequest<'_>,
    record: &CodeRecord,
    portal: &PortalSession,
    back: &str,
) -> Result<Reply> {
    let (store, facts, now) = (req.store(), req.facts, req.now);
    let secure = facts.https;
    let mut grants: Vec<Grant> = Vec::new();
    if let Some(old) = req
        .keys
        .token_from_headers(&facts.headers, CookieKind::App, secure)
        && let Some(view) = store.app_session(&token_hash(&old)).await?
    {
        // Grants earned in this same portal session on this host stay; nothing
        // crosses from another portal session.
        if view.app.host == facts.host && view.app.portal_id == portal.id {
            grants.extend(
                view.grants
                    .into_iter()
                    .filter(|g| Some(&g.rule) != record.rule.as_ref()),
            );
        }
        store.remove_app_session(&view.app.id).await?;
    }
    let granted = record.rule.as_ref().zip(record.verification.as_ref());
    if let Some((rule, v)) = granted {
        grants.push(Grant {
            rule: rule.clone(),
            verification: v.clone(),
        });
    }
    let app = new_app_session(portal, &facts.host, &req.rt.session, now);
    let minted = req.keys.mint(CookieKind::App);
    store
        .add_app_session(&minted.token_hash, &app, &grants)
        .await?;
    if let Some((rule, v)) = granted {
        audit::grant(
            &app.user,
            rule,
            &app.host,
            &v.credential_label,
            facts.client_ip,
        );
    }
    let cookie = set_cookie(
        CookieKind::App,
        secure,
        &minted.cookie_value,
        app.expires_at,
        now,
    );
    Ok(Reply::redirect(StatusCode::SEE_OTHER, back).header(SET_COOKIE, cookie))
}
