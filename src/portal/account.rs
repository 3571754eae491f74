//! `/.stepgate/account`: the user's passkeys and sessions (where each was
//! started, the apps it opened and the grants they hold), and the form actions
//! behind it (rename, revoke, end a session, end all others, sign out
//! everywhere). Every action checks `Origin`/`Sec-Fetch-Site` and the
//! session's CSRF token; revoking a passkey needs a ceremony at most five
//! minutes old. Signing out lives in [`super::logout`].

use crate::audit;
use http::StatusCode;

use super::{
    Failure, Result, guard, html, human_time, logout, pages, require_same_origin, sessions, tokens,
};
use crate::config::Runtime;
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
        rows.push(session_row(gw, &rt, s, &session.id).await?);
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
    gw: &Gateway,
    rt: &Runtime,
    s: PortalSession,
    current: &str,
) -> Result<pages::SessionRow> {
    let mut apps = Vec::new();
    for a in gw.store.app_sessions(&s.id).await? {
        let grants = gw
            .store
            .grants_of(&a.id)
            .await?
            .into_iter()
            .map(|g| {
                let max_age = rt
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
fn notice(facts: &Facts) -> Option<&'static str> {
    match facts.query_param("done").as_deref() {
        Some("renamed") => Some("Passkey renamed."),
        Some("revoked") => Some("Passkey removed."),
        Some("ended") => Some("Session ended."),
        Some("ended-others") => Some("Every other session ended."),
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
                return Ok(logout::portal_signed_out(gw));
            }
            back("ended")
        }
        "account/end-others" => {
            let mut n = 0u64;
            for s in gw.store.portal_sessions(Some(&session.user)).await? {
                if s.id != session.id && gw.store.revoke_session(&s.id).await? {
                    n += 1;
                }
            }
            audit::revocation(
                "account",
                Some(&session.user),
                "other-sessions",
                &format!("{n} session(s)"),
                true,
            );
            back("ended-others")
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
            Ok(logout::portal_signed_out(gw))
        }
        _ => Err(Failure::NotFound),
    }
}
