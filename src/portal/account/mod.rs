//! `/.stepgate/account`: the user's passkeys and sessions (where each was
//! started, the apps it opened and the grants they hold), and the form actions
//! behind it (rename, revoke, end a session, end all others, sign out
//! everywhere, which keeps the user's client tokens unless the form asks to
//! end them too). Every action checks `Origin`/`Sec-Fetch-Site` and the
//! session's CSRF token; revoking a passkey needs a ceremony at most
//! [`REVOKE_MAX_AGE`] seconds old. Signing out lives in [`super::logout`].

use http::StatusCode;

pub(super) mod tokens;

use super::form::{Done, authorised, clean_label};
use super::{PortalRequest, Refusal, Result, guard, html, human_time, pages, sessions};

use crate::audit;
use crate::config::Runtime;
use crate::model::{Credential, PortalSession};
use crate::reply::Reply;
use crate::reserved::PortalRoute;

/// How fresh the ceremony must be to revoke a passkey, in seconds.
pub const REVOKE_MAX_AGE: i64 = 300;

/// The login page that refreshes the ceremony and comes back here.
fn login_url(req: &PortalRequest<'_>) -> String {
    let account = req.url(PortalRoute::Account);
    PortalRoute::Login.url_with(&req.rt.boot.portal, &[("rd", &account)])
}

fn fresh(s: &PortalSession, now: i64) -> bool {
    s.last_uv
        .as_ref()
        .is_some_and(|v| v.at <= now && now - v.at <= REVOKE_MAX_AGE)
}

/// `GET /.stepgate/account`
pub async fn page(req: &PortalRequest<'_>) -> Result<Reply> {
    let Some(lookup) = sessions::current(req).await? else {
        return Ok(Reply::redirect(StatusCode::SEE_OTHER, &login_url(req)));
    };
    let (rt, now) = (&req.rt, req.now);
    let session = lookup.session;
    let passkeys = req
        .store()
        .credentials(Some(&session.user))
        .await?
        .iter()
        .map(|c| passkey_row(rt, c, now))
        .collect();
    let mut rows = Vec::new();
    for s in req.store().portal_sessions(Some(&session.user)).await? {
        if s.expires_at <= now {
            continue;
        }
        rows.push(session_row(req, s, &session.id).await?);
    }
    let csrf = guard::csrf_token(&lookup.token_hash);
    let tokens = tokens::section(req, &session, &csrf).await?;
    let user_cfg = rt.users.get(&session.user);
    let body = pages::account(&pages::Account {
        user: &session.user,
        display: user_cfg.and_then(|u| u.name.as_deref()),
        csrf: &csrf,
        passkeys,
        sessions: rows,
        tokens,
        notice: notice(req),
        reverify: login_url(req),
        can_revoke: fresh(&session, now),
        revoke_max_age: REVOKE_MAX_AGE,
    });
    Ok(html(StatusCode::OK, body))
}

/// One passkey as the account page shows it, with what it is proven (or
/// claims) to be.
fn passkey_row(rt: &Runtime, c: &Credential, now: i64) -> pages::PasskeyRow {
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
}

/// "Firefox 133.0 on Linux", from a User-Agent; "unknown browser" when it says nothing known.
fn browser_of(user_agent: &str) -> String {
    match woothee::parser::Parser::new().parse(user_agent) {
        Some(r) if r.name != "UNKNOWN" => {
            let os = if r.os == "UNKNOWN" {
                "an unknown system"
            } else {
                r.os
            };
            if r.version.is_empty() || r.version == "UNKNOWN" {
                format!("{} on {os}", r.name)
            } else {
                format!("{} {} on {os}", r.name, r.version)
            }
        }
        _ => "unknown browser".to_string(),
    }
}

/// One portal session as the account page shows it: where it was started,
/// and each app it opened with the grants that app session holds now.
async fn session_row(
    req: &PortalRequest<'_>,
    s: PortalSession,
    current: &str,
) -> Result<pages::SessionRow> {
    let store = req.store();
    let mut apps = Vec::new();
    for a in store.app_sessions(&s.id).await? {
        let grants = store
            .grants_of(&a.id)
            .await?
            .into_iter()
            .map(|g| {
                let max_age = req
                    .rt
                    .rules
                    .iter()
                    .find(|r| r.name == g.rule)
                    .and_then(|r| r.step_up.as_ref())
                    .and_then(|st| st.max_age);
                pages::GrantRow {
                    verified: human_time(g.verification.at),
                    valid_until: max_age.map_or_else(
                        || "while this session lasts".to_string(),
                        |age| human_time(g.verification.at.saturating_add(age.as_secs() as i64)),
                    ),
                    rule: g.rule,
                }
            })
            .collect();
        apps.push(pages::AppRow {
            host: a.host,
            grants,
        });
    }
    let (address, browser) = s.client.as_ref().map_or_else(
        || ("unknown".to_string(), "unknown browser".to_string()),
        |c| (c.address.clone(), browser_of(&c.user_agent)),
    );
    Ok(pages::SessionRow {
        current: s.id == current,
        created: human_time(s.created_at),
        last_seen: human_time(s.last_seen_at),
        id: s.id,
        browser,
        address,
        apps,
    })
}

/// The line the page shows after an action (`?done=…`).
fn notice(req: &PortalRequest<'_>) -> Option<&'static str> {
    Done::ALL
        .into_iter()
        .find(|d| req.param("done").as_deref() == Some(d.as_str()))
        .map(Done::notice)
}

/// `POST /.stepgate/account/{rename,revoke,end-session,end-others,end-all}`
pub async fn action(req: &PortalRequest<'_>, route: PortalRoute) -> Result<Reply> {
    let Some(session) = authorised(req).await? else {
        return Ok(Reply::redirect(StatusCode::SEE_OTHER, &login_url(req)));
    };
    let form = req.form();
    let id = form.field("id");
    match route {
        PortalRoute::RenamePasskey => {
            let label = clean_label(form.field("label"), "the passkey")?;
            own_credential(req, &session, id).await?;
            req.store().rename_credential(id, &label).await?;
            Ok(Done::Renamed.back(req))
        }
        PortalRoute::RevokePasskey => {
            if !fresh(&session, req.now) {
                return Ok(Reply::redirect(StatusCode::SEE_OTHER, &login_url(req)));
            }
            own_credential(req, &session, id).await?;
            let ok = req.store().revoke_credential(id).await?;
            audit::revocation("account", Some(&session.user), "credential", id, ok);
            // Revoking may end this very session (if it rests on the passkey).
            Ok(Done::Revoked.back(req))
        }
        PortalRoute::EndSession => end_session(req, &session, id).await,
        PortalRoute::EndOtherSessions => end_others(req, &session).await,
        PortalRoute::EndAllSessions => end_all(req, &session).await,
        _ => Err(Refusal::NotFound),
    }
}

/// Sign out everywhere: end every session of the user (and every app session
/// of them), and every client token too when the form's `tokens` box says
/// `end`; otherwise the tokens stay valid, and the audit event and the page
/// say how many.
async fn end_all(req: &PortalRequest<'_>, session: &PortalSession) -> Result<Reply> {
    let store = req.store();
    let user = &session.user;
    let end_tokens = req.form().field("tokens") == "end";
    let tokens = if end_tokens {
        store.revoke_user_tokens(user).await?
    } else {
        tokens::live(req, user).await?.len() as u64
    };
    let sessions = store.revoke_user_sessions(user).await?;
    let (what, target, text) = if end_tokens {
        (
            "all_sessions_and_tokens",
            format!("{sessions} session(s), {tokens} token(s)"),
            format!(
                "You are signed out everywhere: every session of yours, every app they \
                 opened, and your client tokens ({tokens}) have ended."
            ),
        )
    } else {
        let still = match tokens {
            0 => String::new(),
            1 => " Your 1 client token still works: it was not ended. Sign in again to \
                  revoke it on your account page."
                .to_string(),
            n => format!(
                " Your {n} client tokens still work: they were not ended. Sign in again \
                 to revoke them on your account page."
            ),
        };
        (
            "all_sessions",
            format!("{sessions} session(s); {tokens} token(s) kept"),
            format!(
                "You are signed out everywhere: every session of yours and every app they \
                 opened have ended.{still}"
            ),
        )
    };
    audit::revocation("account", Some(user), what, &target, true);
    Ok(sessions::portal_signed_out_saying(req, &text))
}

/// Refuse (404) a credential id that is not one of the session user's.
async fn own_credential(req: &PortalRequest<'_>, session: &PortalSession, id: &str) -> Result<()> {
    let credential = req.store().credential(id).await?;
    if credential.is_some_and(|c| c.user == session.user) {
        Ok(())
    } else {
        Err(Refusal::NotFound)
    }
}

/// End one of the user's sessions (this one signs the browser out).
async fn end_session(req: &PortalRequest<'_>, session: &PortalSession, id: &str) -> Result<Reply> {
    let store = req.store();
    let mine = store
        .portal_sessions(Some(&session.user))
        .await?
        .iter()
        .any(|s| s.id == id);
    if !mine {
        return Err(Refusal::NotFound);
    }
    let ok = store.revoke_session(id).await?;
    audit::revocation("account", Some(&session.user), "session", id, ok);
    if id == session.id {
        return Ok(sessions::portal_signed_out(req));
    }
    Ok(Done::Ended.back(req))
}

/// End every session of the user but this one.
async fn end_others(req: &PortalRequest<'_>, session: &PortalSession) -> Result<Reply> {
    let store = req.store();
    let mut n = 0u64;
    for s in store.portal_sessions(Some(&session.user)).await? {
        if s.id != session.id && store.revoke_session(&s.id).await? {
            n += 1;
        }
    }
    let ended = format!("{n} session(s)");
    audit::revocation(
        "account",
        Some(&session.user),
        "other_sessions",
        &ended,
        true,
    );
    Ok(Done::EndedOthers.back(req))
}
