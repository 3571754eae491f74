//! `/.stepgate/callback?code=…&rd=…` on any app host: trade a one-time code
//! for a host-only app session cookie, then 303 to `rd`.
//!
//! The new app session replaces the one this browser held on the host, and
//! carries over that session's grants (same user) except the one the new
//! ceremony renews.

use crate::audit;
use http::StatusCode;
use http::header::SET_COOKIE;

use super::cookies::{CookieKind, set_cookie};
use super::login::{CODE_TTL, CodeRecord, code_key};
use super::{Failure, Result, html, pages, redirect};
use crate::gateway::{Facts, Gateway, Reply};
use crate::session::lifecycle::new_app_session;
use crate::session::{Grant, token_hash};

pub async fn handle(gw: &Gateway, facts: &Facts) -> Result<Reply> {
    let rt = gw.config.load();
    let now = gw.now();
    let rd = facts.query_param("rd");
    let retry = rt.portal.url(&format!(
        "/.stepgate/login?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("rd", rd.as_deref().unwrap_or(""))
            .finish()
    ));
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
    if record.host != facts.host || !(0..=CODE_TTL.as_secs() as i64).contains(&age) {
        return expired();
    }
    // The portal session the code came from must still be alive.
    let Some(portal) = gw
        .store
        .portal_sessions(Some(&record.user))
        .await?
        .into_iter()
        .find(|p| p.id == record.portal_id && now < p.expires_at)
    else {
        return expired();
    };
    let secure = facts.https;
    let mut grants: Vec<Grant> = Vec::new();
    let keys = gw.cookie_keys.load();
    if let Some(old) = keys.token_from_headers(&facts.headers, CookieKind::App, secure)
        && let Some(view) = gw.store.app_session(&token_hash(&old)).await?
    {
        if view.app.host == record.host && view.app.user == record.user {
            grants.extend(
                view.grants
                    .into_iter()
                    .filter(|g| Some(&g.rule) != record.rule.as_ref()),
            );
        }
        gw.store.remove_app_session(&view.app.id).await?;
    }
    if let Some(rule) = &record.rule {
        grants.push(Grant {
            rule: rule.clone(),
            verification: record.verification.clone(),
        });
    }
    let app = new_app_session(&portal, &record.host, &rt.session, now);
    let minted = keys.mint(CookieKind::App);
    gw.store
        .add_app_session(&minted.token_hash, &app, &grants)
        .await?;
    if let Some(rule) = &record.rule {
        audit::grant(
            &app.user,
            rule,
            &app.host,
            &record.verification.credential_label,
            facts.client_ip,
        );
    }
    // Only ever back to this host.
    let location = rd
        .as_deref()
        .and_then(|r| redirect::validate(&rt, r))
        .filter(|t| t.host == facts.host)
        .map_or_else(|| "/".to_string(), |t| t.url.to_string());
    let cookie = set_cookie(
        CookieKind::App,
        secure,
        &minted.cookie_value,
        app.expires_at,
        now,
    );
    Ok(Reply::redirect(StatusCode::SEE_OTHER, &location).header(SET_COOKIE, cookie))
}
