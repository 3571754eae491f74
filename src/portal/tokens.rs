//! Client tokens on the account page: minted with a fresh UV assertion made
//! for that purpose, shown once, listed and revoked.
//!
//! - `POST /.stepgate/api/tokens/begin` `{label, rules, days?}`: the signed-in
//!   user asks for a token for some rules (each must take tokens and let the
//!   user in). An assertion ceremony begins that offers only the user's
//!   passkeys fitting every chosen rule's `step_up` model and binding.
//! - `POST /.stepgate/api/tokens/finish` `{ceremony, credential}`: the
//!   assertion is verified ([`assertion::verify`], as for a sign-in), the rules
//!   are checked again against it, and the token is minted from it — its
//!   time, credential and the chosen rules — and stored by hash. The answer
//!   holds the secret: the only time it is ever shown.
//! - `POST /.stepgate/account/revoke-token` `{csrf, id}`.
//!
//! Minting never touches the browser's session: the ceremony is the token's.
//! The lifetime is what was asked (default 30 days), at most
//! `session.token_max_lifetime`.

use std::fmt::Write;
use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

use super::account::{authorised, field, form};
use super::assertion::{self, Asserted, Seen};
use super::login::{core_credential, satisfies};
use super::pages::escape;
use super::pending::{self, Pending};
use super::{Failure, Result, human_time, json, limit_client, require_same_origin, sessions};
use crate::audit::{self, CeremonyKind};
use crate::config::{Rule, Runtime};
use crate::gateway::{Facts, Gateway, Reply};
use crate::session::{Credential, PortalSession};
use crate::token::{self, TokenRequest};

/// Lifetimes offered, in days (those above the operator's maximum are not).
const DAYS: [u64; 5] = [1, 7, 30, 90, 365];

#[derive(Deserialize)]
struct BeginRequest {
    label: String,
    rules: Vec<String>,
    #[serde(default)]
    days: Option<u64>,
}

/// The rules a user may mint tokens for: passkey rules with `tokens:` whose `allow` lets them in.
fn mintable<'a>(rt: &'a Runtime, user: &str) -> Vec<&'a Rule> {
    let Some(cfg) = rt.users.get(user) else {
        return Vec::new();
    };
    rt.rules
        .iter()
        .filter(|r| r.tokens.is_some() && r.allows(user, cfg))
        .collect()
}

/// The named rules, each one `user` may mint for, or why not.
fn chosen<'a>(rt: &'a Runtime, user: &str, names: &[String]) -> Result<Vec<&'a Rule>> {
    if names.is_empty() {
        return Err(Failure::Bad(
            "Choose at least one address for the token.".into(),
        ));
    }
    let allowed = mintable(rt, user);
    let mut out: Vec<&Rule> = Vec::new();
    for name in names {
        let Some(rule) = allowed.iter().find(|r| &r.name == name) else {
            return Err(Failure::Bad(format!(
                "\"{name}\" does not take tokens, or your account may not use it."
            )));
        };
        if !out.iter().any(|r| r.name == rule.name) {
            out.push(rule);
        }
    }
    Ok(out)
}

/// A label as given: trimmed, without control characters, at most 64 characters.
fn clean_label(raw: &str) -> Result<String> {
    let label: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    if label.is_empty() {
        return Err(Failure::Bad("Please give the token a name.".into()));
    }
    Ok(label)
}

/// The signed-in user's usable passkeys that fit every rule in `rules`.
async fn fitting(
    gw: &Gateway,
    rt: &Runtime,
    user: &str,
    rules: &[&Rule],
) -> Result<Vec<Credential>> {
    let now = gw.now();
    Ok(gw
        .store
        .credentials(Some(user))
        .await?
        .into_iter()
        .filter(|c| c.is_usable(now))
        .filter(|c| {
            rules
                .iter()
                .all(|r| satisfies(rt, c, r.step_up.as_ref(), now))
        })
        .collect())
}

/// `POST /.stepgate/api/tokens/begin`
pub async fn begin(gw: &Gateway, facts: &Facts, body: &[u8]) -> Result<Reply> {
    require_same_origin(gw, facts)?;
    limit_client(gw, facts).await?;
    let Some(current) = sessions::current(gw, facts).await? else {
        return Err(Failure::Forbidden("Sign in first.".into()));
    };
    let req: BeginRequest = super::parse_json(body)?;
    let rt = gw.config.load();
    let user = current.session.user.clone();
    let label = clean_label(&req.label)?;
    let rules = chosen(&rt, &user, &req.rules)?;
    if req.days == Some(0) {
        return Err(Failure::Bad("A token must live at least one day.".into()));
    }
    let creds = fitting(gw, &rt, &user, &rules).await?;
    if creds.is_empty() {
        return Err(Failure::Bad(
            "None of your passkeys is accepted by every address you chose; mint separate tokens."
                .into(),
        ));
    }
    let allow = creds.iter().filter_map(core_credential).collect();
    let (options, state) = gw.portal.rp.load().begin_login(allow)?;
    let pending = Pending::Mint {
        user,
        session: current.session.id,
        label,
        rules: rules.iter().map(|r| r.name.clone()).collect(),
        lifetime: req.days.map(|d| d.saturating_mul(86_400)),
        state,
    };
    pending::begin_reply(gw, facts, pending, options).await
}

/// `POST /.stepgate/api/tokens/finish`: the ceremony, then one audit event.
pub async fn finish(gw: &Gateway, facts: &Facts, body: &[u8]) -> Result<Reply> {
    let mut seen = Seen::default();
    let mut rules = None;
    let result = mint(gw, facts, body, &mut seen, &mut rules).await;
    let outcome = result.as_ref().map_or_else(Failure::code, |_| "ok");
    audit::ceremony(
        CeremonyKind::MintToken,
        seen.user.as_deref(),
        rules.as_deref(),
        seen.credential.as_deref(),
        outcome,
        facts.client_ip,
    );
    result
}

async fn mint(
    gw: &Gateway,
    facts: &Facts,
    body: &[u8],
    seen: &mut Seen,
    audited_rules: &mut Option<String>,
) -> Result<Reply> {
    let (taken, rsp) = assertion::finish_request(gw, facts, body).await?;
    let Some(Pending::Mint {
        user,
        session,
        label,
        rules,
        lifetime,
        state,
    }) = taken
    else {
        return Err(pending::expired());
    };
    *audited_rules = Some(rules.join(","));
    // Still the same browser session that began it.
    let current = sessions::current(gw, facts).await?;
    if current.is_none_or(|c| c.session.id != session || c.session.user != user) {
        return Err(Failure::Forbidden(
            "Sign in again, then mint the token.".into(),
        ));
    }
    let Asserted {
        credential,
        verification,
    } = assertion::verify(gw, facts, &rsp, &state, Some(&user), seen).await?;
    // The config may have changed since begin: the rules are asked again.
    let rt = gw.config.load();
    let now = gw.now();
    let rules = chosen(&rt, &user, &rules)?;
    if !rules
        .iter()
        .all(|r| satisfies(&rt, &credential, r.step_up.as_ref(), now))
    {
        return Err(Failure::Forbidden(
            "This passkey is not accepted by every address you chose.".into(),
        ));
    }
    let request = TokenRequest {
        user,
        label,
        rules: rules.iter().map(|r| r.name.clone()).collect(),
        lifetime: lifetime.map(Duration::from_secs),
    };
    let minted = token::mint(request, verification, now, rt.token_max_lifetime);
    gw.store
        .add_token(&minted.token_hash, &minted.record)
        .await?;
    Ok(json(&serde_json::json!({
        "id": minted.record.id,
        "token": minted.secret.expose(),
        "expires": human_time(minted.record.expires_at),
    })))
}

/// `POST /.stepgate/account/revoke-token` `{csrf, id}`: end one of the user's own tokens.
pub async fn revoke(gw: &Gateway, facts: &Facts, body: &[u8]) -> Result<Reply> {
    let f = form(body);
    let rt = gw.config.load();
    let Some(session) = authorised(gw, facts, &f).await? else {
        return Ok(Reply::redirect(
            StatusCode::SEE_OTHER,
            &rt.portal.url("/.stepgate/account"),
        ));
    };
    let id = field(&f, "id").unwrap_or("");
    let mine = gw
        .store
        .tokens(Some(&session.user))
        .await?
        .iter()
        .any(|t| t.id == id);
    if !mine {
        return Err(Failure::NotFound);
    }
    let ok = gw.store.revoke_token(id).await?;
    audit::revocation("account", Some(&session.user), "token", id, ok);
    Ok(Reply::redirect(
        StatusCode::SEE_OTHER,
        &rt.portal.url("/.stepgate/account?done=token-revoked"),
    ))
}

/// The account page's "Client tokens" part: the user's live tokens with a
/// revoke button each, and the mint form (when some rule takes tokens).
pub async fn section(gw: &Gateway, session: &PortalSession, csrf: &str) -> Result<String> {
    let rt = gw.config.load();
    let now = gw.now();
    let tokens = gw.store.tokens(Some(&session.user)).await?;
    let mut m = String::from(
        "<h2>Client tokens</h2><p class=\"small\">For apps that cannot use a passkey: git, \
calendar, contacts and WebDAV apps, scripts. A token works only for the addresses it was \
made for, and no longer than they allow: one that asks for a check at most N minutes old \
refuses a token minted longer ago. Making one asks for your passkey.</p><ul class=\"cards\">",
    );
    for t in tokens.iter().filter(|t| t.is_live(now)) {
        let _ = write!(
            m,
            "<li class=\"card\"><h3>{label}</h3><dl><dt>For</dt><dd>{rules}</dd>\
<dt>Made</dt><dd>{made} with {cred}</dd><dt>Expires</dt><dd>{exp}</dd></dl>\
<form method=\"post\" action=\"/.stepgate/account/revoke-token\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
<button type=\"submit\" class=\"danger\">Revoke {label}</button></form></li>",
            label = escape(&t.label),
            rules = escape(&t.rules.join(", ")),
            made = escape(&human_time(t.created_at)),
            cred = escape(&t.verification.credential_label),
            exp = escape(&human_time(t.expires_at)),
            csrf = escape(csrf),
            id = escape(&t.id),
        );
    }
    m.push_str("</ul>");
    let rules = mintable(&rt, &session.user);
    if !rules.is_empty() {
        m.push_str(&mint_form(&rt, &rules));
    }
    Ok(m)
}

/// The form that mints a token (driven by the portal script).
fn mint_form(rt: &Runtime, rules: &[&Rule]) -> String {
    let mut m = String::from(
        "<form id=\"mint\"><h3>New token</h3><label for=\"token-label\">Name</label>\
<input id=\"token-label\" name=\"label\" maxlength=\"64\" placeholder=\"laptop git, phone calendar\" required>\
<fieldset><legend>For</legend>",
    );
    for r in rules {
        let hosts: Vec<String> = r.hosts.iter().map(|h| h.to_string()).collect();
        let note = r
            .step_up
            .as_ref()
            .and_then(|s| s.max_age)
            .map_or(String::new(), |age| {
                format!(
                    " — works only for {} after it is made",
                    humantime::format_duration(age)
                )
            });
        let _ = write!(
            m,
            "<label class=\"check\"><input type=\"checkbox\" name=\"rule\" value=\"{name}\"> {name} ({hosts}){note}</label>",
            name = escape(&r.name),
            hosts = escape(&hosts.join(", ")),
            note = escape(&note),
        );
    }
    let max_days = (rt.token_max_lifetime.as_secs() / 86_400).max(1);
    let default = token::clamp_lifetime(None, rt.token_max_lifetime).as_secs() / 86_400;
    let mut days: Vec<u64> = DAYS.iter().copied().filter(|d| *d <= max_days).collect();
    if !days.contains(&max_days) {
        days.push(max_days);
    }
    m.push_str("</fieldset><label for=\"token-days\">Valid for</label><select id=\"token-days\" name=\"days\">");
    for d in days {
        let selected = if d == default.max(1) { " selected" } else { "" };
        let unit = if d == 1 { "day" } else { "days" };
        let _ = write!(m, "<option value=\"{d}\"{selected}>{d} {unit}</option>");
    }
    m.push_str(
        "</select><button type=\"submit\">Make token</button></form>\
<div id=\"status\" role=\"status\" aria-live=\"polite\"></div>\
<div id=\"minted\" hidden><p>Your new token. Copy it now: it is not shown again.</p>\
<input id=\"minted-secret\" readonly aria-label=\"New token\"></div>",
    );
    m
}
