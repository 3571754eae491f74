//! `/.stepgate/account`: the user's passkeys and sessions, and the form
//! actions behind it (rename, revoke, end a session, sign out everywhere) plus
//! `POST /.stepgate/logout`. Every action checks `Origin`/`Sec-Fetch-Site`
//! and the session's CSRF token; revoking a passkey needs a ceremony at most
//! five minutes old.

use crate::audit;
use http::StatusCode;
use http::header::SET_COOKIE;

use super::cookies::{CookieKind, clear_cookie};
use super::{
    Failure, Result, guard, html, human_time, pages, require_same_origin, sessions, tokens,
};
use crate::gateway::{Facts, Gateway, Reply};
use crate::session::PortalSession;

/// How fresh the ceremony must be to revoke a passkey.
pub const REVOKE_MAX_AGE: i64 = 300;

fn login_url(gw: &Gateway) -> String {
    let rt = gw.config.load();
    let account = rt.portal.url("/.stepgate/account");
    rt.portal.url(&format!(
        "/.stepgate/login?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("rd", &account)
            .finish()
    ))
}

fn fresh(s: &PortalSession, now: i64) -> bool {
    s.last_uv
        .as_ref()
        .is_some_and(|v| v.at <= now && now - v.at <= REVOKE_MAX_AGE)
}

/// `GET /.stepgate/account`
pub async fn page(gw: &Gateway, facts: &Facts) -> Result<Reply> {
    let Some(lookup) = sessions::current(gw, facts).await? else {
        return Ok(Reply::redirect(StatusCode::SEE_OTHER, &login_url(gw)));
    };
    let session = lookup.session;
    let rt = gw.config.load();
    let now = gw.now();
    let passkeys = gw
        .store
        .credentials(Some(&session.user))
        .await?
        .into_iter()
        .map(|c| {
            let sets = rt.trust.sets_of(c.attestation.as_ref(), now);
            let claimed = rt.trust.sets_listing(c.aaguid);
            let model = if !sets.is_empty() {
                Some(format!(
                    "{} (attested)",
                    rt.authenticator_names(&sets).join(", ")
                ))
            } else if !claimed.is_empty() {
                Some(format!(
                    "says it is {} (not proven)",
                    rt.authenticator_names(&claimed).join(", ")
                ))
            } else {
                None
            };
            pages::PasskeyRow {
                id: c.id.clone(),
                label: c.label.clone(),
                model,
                created: human_time(c.created_at),
                last_used: c.last_used_at.map_or("never".into(), human_time),
                synced: c.backup_eligible,
                expires: c.expires_at.map(human_time),
                flagged: c.flagged,
            }
        })
        .collect();
    let mut rows = Vec::new();
    for s in gw.store.portal_sessions(Some(&session.user)).await? {
        if s.expires_at <= now {
            continue;
        }
        let apps = gw
            .store
            .app_sessions(&s.id)
            .await?
            .into_iter()
            .map(|a| a.host)
            .collect();
        rows.push(pages::SessionRow {
            current: s.id == session.id,
            id: s.id,
            created: human_time(s.created_at),
            last_seen: human_time(s.last_seen_at),
            apps,
        });
    }
    let notice = notice(facts);
    let csrf = guard::csrf_token(&lookup.token_hash);
    let tokens = tokens::section(gw, &session, &csrf).await?;
    let user_cfg = rt.users.get(&session.user);
    let body = pages::account(&pages::Account {
        user: &session.user,
        display: user_cfg.and_then(|u| u.name.as_deref()),
        csrf: &csrf,
        passkeys,
        sessions: rows,
        tokens: &tokens,
        notice,
        reverify: login_url(gw),
        can_revoke: fresh(&session, now),
    });
    Ok(html(StatusCode::OK, body))
}

/// The line the page shows after an action (`?done=…`).
fn notice(facts: &Facts) -> Option<&'static str> {
    match facts.query_param("done").as_deref() {
        Some("renamed") => Some("Passkey renamed."),
        Some("revoked") => Some("Passkey removed."),
        Some("ended") => Some("Session ended."),
        Some("token-revoked") => Some("Token revoked."),
        _ => None,
    }
}

pub(super) fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub(super) fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The session of a form POST, after the origin and CSRF checks.
pub(super) async fn authorised(
    gw: &Gateway,
    facts: &Facts,
    f: &[(String, String)],
) -> Result<Option<PortalSession>> {
    require_same_origin(gw, facts)?;
    let Some(lookup) = sessions::current(gw, facts).await? else {
        return Ok(None);
    };
    if !guard::csrf_ok(&lookup.token_hash, field(f, "csrf").unwrap_or("")) {
        return Err(Failure::Forbidden(
            "This form is out of date. Reload the page and try again.".into(),
        ));
    }
    Ok(Some(lookup.session))
}

fn signed_out(gw: &Gateway) -> Reply {
    let rt = gw.config.load();
    html(
        StatusCode::OK,
        pages::message(
            "Signed out",
            "You are signed out of the portal.",
            Some((&rt.portal.url("/.stepgate/account"), "Sign in again")),
        ),
    )
    .header(
        SET_COOKIE,
        clear_cookie(CookieKind::Portal, rt.portal.secure),
    )
}

/// `POST /.stepgate/logout`
pub async fn logout(gw: &Gateway, facts: &Facts, body: &[u8]) -> Result<Reply> {
    let f = form(body);
    if let Some(s) = authorised(gw, facts, &f).await? {
        let ok = gw.store.revoke_session(&s.id).await?;
        audit::revocation("logout", Some(&s.user), "session", &s.id, ok);
    }
    Ok(signed_out(gw))
}

/// `POST /.stepgate/account/{rename,revoke,end-session,end-all}`
pub async fn action(gw: &Gateway, facts: &Facts, which: &str, body: &[u8]) -> Result<Reply> {
    let f = form(body);
    let Some(session) = authorised(gw, facts, &f).await? else {
        return Ok(Reply::redirect(StatusCode::SEE_OTHER, &login_url(gw)));
    };
    let rt = gw.config.load();
    let back = |done: &str| {
        Ok(Reply::redirect(
            StatusCode::SEE_OTHER,
            &rt.portal.url(&format!("/.stepgate/account?done={done}")),
        ))
    };
    let id = field(&f, "id").unwrap_or("");
    let own_credential = async {
        Ok::<_, Failure>(
            gw.store
                .credential(id)
                .await?
                .is_some_and(|c| c.user == session.user),
        )
    };
    match which {
        "account/rename" => {
            let label: String = field(&f, "label")
                .unwrap_or("")
                .trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect();
            if label.is_empty() {
                return Err(Failure::Bad("Please give the passkey a name.".into()));
            }
            if !own_credential.await? {
                return Err(Failure::NotFound);
            }
            gw.store.rename_credential(id, &label).await?;
            back("renamed")
        }
        "account/revoke" => {
            if !fresh(&session, gw.now()) {
                return Ok(Reply::redirect(StatusCode::SEE_OTHER, &login_url(gw)));
            }
            if !own_credential.await? {
                return Err(Failure::NotFound);
            }
            let ok = gw.store.revoke_credential(id).await?;
            audit::revocation("account", Some(&session.user), "credential", id, ok);
            // Revoking may end this very session (if it rests on the passkey).
            back("revoked")
        }
        "account/end-session" => {
            let mine = gw
                .store
                .portal_sessions(Some(&session.user))
                .await?
                .iter()
                .any(|s| s.id == id);
            if !mine {
                return Err(Failure::NotFound);
            }
            let ok = gw.store.revoke_session(id).await?;
            audit::revocation("account", Some(&session.user), "session", id, ok);
            if id == session.id {
                return Ok(signed_out(gw));
            }
            back("ended")
        }
        "account/end-all" => {
            let n = gw.store.revoke_user_sessions(&session.user).await?;
            audit::revocation(
                "account",
                Some(&session.user),
                "all-sessions",
                &format!("{n} session(s)"),
                true,
            );
            Ok(signed_out(gw))
        }
        _ => Err(Failure::NotFound),
    }
}
