//! `/.stepgate/callback?code=…&rd=…` on any app host: trade a one-time code
//! for a host-only app session cookie, then 303 to `rd`.
//!
//! A code is redeemed only at the origin (scheme, host, port) it was made for,
//! by the browser that origin sent to the portal (its browser-state cookie must
//! match the binding the code carries), within a minute, while its portal
//! session is alive. The new app session replaces the one this browser held on
//! the host and keeps that session's grants only when both come from the same
//! portal session (the renewed rule's grant is replaced).

use crate::audit;
use http::StatusCode;
use http::header::SET_COOKIE;

use super::cookies::{CookieKind, set_cookie};
use super::login::{CODE_TTL, CodeRecord, code_key};
use super::{Failure, Result, html, pages, redirect};
use crate::gateway::{Facts, Gateway, Reply};
use crate::session::cookie::state_from_headers;
use crate::session::lifecycle::new_app_session;
use crate::session::{Grant, is_live, token_hash};

pub async fn handle(gw: &Gateway, facts: &Facts) -> Result<Reply> {
    let rt = gw.config.load();
    let now = gw.now();
    let origin = facts.origin();
    // Only ever back to this origin; starting over there signs in afresh.
    let back = facts
        .query_param("rd")
        .and_then(|r| redirect::validate(&rt, &r))
        .filter(|t| t.origin() == origin)
        .map_or_else(|| "/".to_string(), |t| t.url.to_string());
    let retry = back.clone();
    let expired = || {
        Ok(html(
            StatusCode::BAD_REQUEST,
            pages::message(
                "Sign-in link expired",
                "This sign-in link has expired or was already used. Please sign in again.",
                Some((&retry, "Sign in again")),
            ),
        ))
    };
    let Some(code) = facts
        .query_param("code")
        .filter(|c| !c.is_empty() && c.len() <= 64)
    else {
        return expired();
    };
    let Some(bytes) = gw.store.take_once(&code_key(&code)).await? else {
        return expired();
    };
    let record: CodeRecord = serde_json::from_slice(&bytes)
        .map_err(|_| Failure::Bad("The sign-in link was damaged.".into()))?;
    let age = now - record.at;
    if !(0..=CODE_TTL.as_secs() as i64).contains(&age) {
        return expired();
    }
    // Only at the origin it was made for, and only in the browser that origin
    // sent to the portal (its browser-state cookie, bound with our keys).
    let keys = gw.cookie_keys.load();
    let bound = state_from_headers(&facts.headers, facts.https)
        .is_some_and(|state| keys.binding_ok(state, &origin, &record.binding));
    if origin != record.origin || !bound {
        tracing::info!(%origin, "callback code presented at another origin or by another browser");
        return expired();
    }
    // The portal session the code came from must still be alive (idle limit
    // included) and its user still allowed in.
    let Some(portal) = gw
        .store
        .portal_sessions(Some(&record.user))
        .await?
        .into_iter()
        .find(|p| {
            p.id == record.portal_id
                && is_live(p.created_at, p.last_seen_at, p.expires_at, &rt.session, now)
        })
    else {
        return expired();
    };
    if !rt.users.get(&record.user).is_some_and(|u| u.is_active(now)) {
        return expired();
    }
    let secure = facts.https;
    let mut grants: Vec<Grant> = Vec::new();
    if let Some(old) = keys.token_from_headers(&facts.headers, CookieKind::App, secure)
        && let Some(view) = gw.store.app_session(&token_hash(&old)).await?
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
        gw.store.remove_app_session(&view.app.id).await?;
    }
    if let (Some(rule), Some(v)) = (&record.rule, &record.verification) {
        grants.push(Grant {
            rule: rule.clone(),
            verification: v.clone(),
        });
    }
    let app = new_app_session(&portal, &facts.host, &rt.session, now);
    let minted = keys.mint(CookieKind::App);
    gw.store
        .add_app_session(&minted.token_hash, &app, &grants)
        .await?;
    if let (Some(rule), Some(v)) = (&record.rule, &record.verification) {
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
    Ok(Reply::redirect(StatusCode::SEE_OTHER, &back).header(SET_COOKIE, cookie))
}
