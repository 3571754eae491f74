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

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

use crate::audit::{self, CeremonyKind};
use crate::client_token::{self, ClientToken, TokenRequest};
use crate::config::{Rule, Runtime};
use crate::model::{Credential, PortalSession, Timestamp};
use crate::policy;
use crate::portal::ceremony::assertion::{self, Asserted, Seen};
use crate::portal::ceremony::pending::{self, Pending};
use crate::portal::ceremony::{core_credential, satisfies};
use crate::portal::form::{Done, authorised, clean_label};
use crate::portal::{PortalRequest, Refusal, Result, human_time, json, pages, sessions};
use crate::reply::Reply;
use crate::reserved::PortalRoute;

/// Lifetimes offered, in days (those above the operator's maximum are not).
const DAYS: [u64; 5] = [1, 7, 30, 90, 365];
/// Seconds in a day.
const DAY: u64 = 86_400;

#[derive(Deserialize)]
struct BeginRequest {
    label: String,
    rules: Vec<String>,
    #[serde(default)]
    days: Option<u64>,
}

/// The rules a user may mint tokens for: passkey rules with `tokens:` that admit them.
fn mintable<'a>(rt: &'a Runtime, user: &str, now: Timestamp) -> Vec<&'a Rule> {
    rt.rules
        .iter()
        .filter(|r| r.tokens.is_some() && policy::admit(rt, user, Some(r), now).is_ok())
        .collect()
}

/// The named rules, each one `user` may mint for, or why not.
fn chosen<'a>(
    rt: &'a Runtime,
    user: &str,
    names: &[String],
    now: Timestamp,
) -> Result<Vec<&'a Rule>> {
    if names.is_empty() {
        return Err(Refusal::NoRuleChosen);
    }
    let allowed = mintable(rt, user, now);
    let mut out: Vec<&Rule> = Vec::new();
    for name in names {
        let Some(rule) = allowed.iter().find(|r| &r.name == name) else {
            return Err(Refusal::RuleNotMintable(name.clone()));
        };
        if !out.iter().any(|r| r.name == rule.name) {
            out.push(rule);
        }
    }
    Ok(out)
}

/// The signed-in user's usable passkeys that fit every rule in `rules`.
async fn fitting(req: &PortalRequest<'_>, user: &str, rules: &[&Rule]) -> Result<Vec<Credential>> {
    let now = req.now;
    Ok(req
        .store()
        .credentials(Some(user))
        .await?
        .into_iter()
        .filter(|c| c.is_usable(now))
        .filter(|c| fits_all(req.rt, c, rules, now))
        .collect())
}

/// Does `c` fit the `step_up` of every rule in `rules`?
fn fits_all(rt: &Runtime, c: &Credential, rules: &[&Rule], now: Timestamp) -> bool {
    rules
        .iter()
        .all(|r| satisfies(rt, c, r.step_up.as_ref(), now))
}

/// `POST /.stepgate/api/tokens/begin`
pub async fn begin(req: &PortalRequest<'_>) -> Result<Reply> {
    req.require_same_origin()?;
    req.limit_client().await?;
    let Some(current) = sessions::current(req).await? else {
        return Err(Refusal::NotSignedIn);
    };
    let body: BeginRequest = req.json()?;
    let user = current.session.user.clone();
    let label = clean_label(&body.label, "the token")?;
    let rules = chosen(req.rt, &user, &body.rules, req.now)?;
    if body.days == Some(0) {
        return Err(Refusal::ZeroLifetime);
    }
    let creds = fitting(req, &user, &rules).await?;
    if creds.is_empty() {
        return Err(Refusal::NoPasskeyFitsAll);
    }
    let allow = creds.iter().filter_map(core_credential).collect();
    let (options, state) = req.rp.begin_login(allow)?;
    let pending = Pending::Mint {
        user,
        session: current.session.id,
        label,
        rules: rules.iter().map(|r| r.name.clone()).collect(),
        lifetime: body.days.map(|d| d.saturating_mul(DAY)),
        state,
    };
    pending::begin_reply(req, pending, options, &[]).await
}

/// `POST /.stepgate/api/tokens/finish`: the ceremony, then one audit event.
pub async fn finish(req: &PortalRequest<'_>) -> Result<Reply> {
    let mut seen = Seen::default();
    let mut rules = None;
    let result = mint(req, &mut seen, &mut rules).await;
    let outcome = result.as_ref().map_or_else(Refusal::label, |_| "ok");
    audit::ceremony(
        CeremonyKind::MintToken,
        seen.user.as_deref(),
        rules.as_deref(),
        seen.credential.as_deref(),
        outcome,
        req.facts.client_ip,
    );
    result
}

async fn mint(
    req: &PortalRequest<'_>,
    seen: &mut Seen,
    audited_rules: &mut Option<String>,
) -> Result<Reply> {
    let (taken, rsp) = assertion::finish_request(req).await?;
    let Some(Pending::Mint {
        user,
        session,
        label,
        rules,
        lifetime,
        state,
    }) = taken
    else {
        return Err(Refusal::CeremonyExpired);
    };
    *audited_rules = Some(rules.join(","));
    // Still the same browser session that began it.
    let current = sessions::current(req).await?;
    if current.is_none_or(|c| c.session.id != session || c.session.user != user) {
        return Err(Refusal::SessionChanged);
    }
    let Asserted {
        credential,
        verification,
    } = assertion::verify(req, &rsp, &state, Some(&user), seen).await?;
    // The rules are asked again, against this request's config.
    let (rt, now) = (&req.rt, req.now);
    let rules = chosen(rt, &user, &rules, now)?;
    if !fits_all(rt, &credential, &rules, now) {
        return Err(Refusal::PasskeyMisfits);
    }
    let request = TokenRequest {
        user,
        label,
        rules: rules.iter().map(|r| r.name.clone()).collect(),
        lifetime: lifetime.map(Duration::from_secs),
    };
    let minted = client_token::mint(request, verification, now, rt.token_max_lifetime);
    req.store()
        .add_token(&minted.token_hash, &minted.record)
        .await?;
    Ok(json(&serde_json::json!({
        "id": minted.record.id,
        "token": minted.secret.expose(),
        "expires": human_time(minted.record.expires_at),
    })))
}

/// `POST /.stepgate/account/revoke-token` `{csrf, id}`: end one of the user's own tokens.
pub async fn revoke(req: &PortalRequest<'_>) -> Result<Reply> {
    let Some(session) = authorised(req).await? else {
        return Ok(Reply::redirect(
            StatusCode::SEE_OTHER,
            &req.url(PortalRoute::Account),
        ));
    };
    let form = req.form();
    let id = form.field("id");
    let mine = req
        .store()
        .tokens(Some(&session.user))
        .await?
        .iter()
        .any(|t| t.id == id);
    if !mine {
        return Err(Refusal::NotFound);
    }
    let ok = req.store().revoke_token(id).await?;
    audit::revocation("account", Some(&session.user), "token", id, ok);
    Ok(Done::TokenRevoked.back(req))
}

/// The account page's "Client tokens" part: the user's live tokens, and the
/// mint form's choices (when some rule takes tokens).
pub async fn section(
    req: &PortalRequest<'_>,
    session: &PortalSession,
    csrf: &str,
) -> Result<pages::Tokens> {
    let (rt, now) = (&req.rt, req.now);
    let rows = live(req, &session.user)
        .await?
        .iter()
        .map(|t| pages::TokenRow {
            id: t.id.clone(),
            label: t.label.clone(),
            rules: t.rules.join(", "),
            made: human_time(t.created_at),
            credential: t.verification.credential_label.clone(),
            expires: human_time(t.expires_at),
        })
        .collect();
    let rules = mintable(rt, &session.user, now);
    let mint = (!rules.is_empty()).then(|| mint_form(rt, &rules));
    Ok(pages::Tokens {
        csrf: csrf.to_string(),
        rows,
        mint,
    })
}

/// The user's client tokens that still work now.
pub(super) async fn live(req: &PortalRequest<'_>, user: &str) -> Result<Vec<ClientToken>> {
    let mut tokens = req.store().tokens(Some(user)).await?;
    tokens.retain(|t| t.is_live(req.now));
    Ok(tokens)
}

/// What the mint form offers: the rules, and lifetimes up to the maximum.
fn mint_form(rt: &Runtime, rules: &[&Rule]) -> pages::MintForm {
    let rules = rules
        .iter()
        .map(|r| pages::MintRule {
            name: r.name.clone(),
            hosts: r
                .hosts
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            max_age: r
                .step_up
                .as_ref()
                .and_then(|s| s.max_age)
                .map(crate::config::duration::format),
        })
        .collect();
    let max_days = (rt.token_max_lifetime.as_secs() / DAY).max(1);
    let default =
        (client_token::clamp_lifetime(None, rt.token_max_lifetime).as_secs() / DAY).max(1);
    let mut days: Vec<u64> = DAYS.iter().copied().filter(|d| *d <= max_days).collect();
    if !days.contains(&max_days) {
        days.push(max_days);
    }
    pages::MintForm {
        rules,
        days,
        default_days: default,
    }
}
