//! Sign-in and step-up: `/.stepgate/login?rd=` and its JSON API.
//!
//! What the ceremony must prove is learnt by routing `rd` (never from a client
//! parameter). Only credentials that satisfy the rule's `step_up` are offered;
//! when the signed-in user has none, the page says so. A successful ceremony
//! rotates the portal session, records the verification, and sends the
//! browser through the app host's `/.stepgate/callback` with a one-time code.

use http::StatusCode;
use http::header::SET_COOKIE;
use serde::Deserialize;
use webauthn_rs_core::proto::{AuthenticationState, Credential as CoreCredential};

use super::ceremony::assertion::{self, Asserted, Seen};
use super::ceremony::code::{CodeRecord, callback_url};
use super::ceremony::pending::{self, Pending};
use super::ceremony::{core_credential, satisfies};
use super::redirect::{self, Target};
use super::sso;
use super::{PortalRequest, Refusal, Result, html, json, pages, sessions};
use crate::audit::{self, CeremonyKind};
use crate::config::{Rule, Runtime, StepUp};
use crate::model::Credential;
use crate::policy::{self, StepUpText};
use crate::reply::Reply;
use crate::request::Facts;
use crate::routing::{RouteRequest, normalize_path};
use crate::telemetry::metrics;
use crate::webauthn::{self, RelyingParty};

/// The rule `target` routes to (a GET from this client), if any.
pub fn rule_for<'a>(rt: &'a Runtime, target: &Target, facts: &Facts) -> Option<&'a Rule> {
    if target.host == rt.boot.portal.host {
        return None;
    }
    let path = normalize_path(target.url.path()).ok()?;
    let req = RouteRequest {
        host: &target.host,
        path: &path,
        method: "GET",
        client_ip: facts.client_ip,
    };
    rt.route(&req).ok().flatten().map(|(_, r)| r)
}

/// "this page needs your YubiKey 5; your passkeys: laptop (synced)".
fn no_match_text(rt: &Runtime, s: Option<&StepUp>, creds: &[Credential]) -> String {
    let what = match s {
        Some(s) if !s.authenticators.is_empty() => {
            let names = rt.authenticator_names(&s.authenticators).join(" or ");
            if s.device_bound {
                format!("a device-bound {names}")
            } else {
                format!("your {names}")
            }
        }
        Some(s) if s.device_bound => "a device-bound passkey (not a synced one)".into(),
        _ => "a passkey".into(),
    };
    let list = if creds.is_empty() {
        "none".to_string()
    } else {
        creds
            .iter()
            .map(|c| {
                format!(
                    "{} ({})",
                    c.label,
                    if c.backup_eligible {
                        "synced"
                    } else {
                        "device-bound"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("This page needs {what}; your passkeys: {list}.")
}

/// The user's usable credentials, and those that satisfy `step_up`.
async fn user_credentials(
    req: &PortalRequest<'_>,
    user: &str,
    step_up: Option<&StepUp>,
) -> Result<(Vec<Credential>, Vec<Credential>)> {
    let now = req.now;
    let all: Vec<Credential> = req
        .store()
        .credentials(Some(user))
        .await?
        .into_iter()
        .filter(|c| c.is_usable(now))
        .collect();
    let ok = all
        .iter()
        .filter(|c| satisfies(req.rt, c, step_up, now))
        .cloned()
        .collect();
    Ok((all, ok))
}

/// A browser binding as an app host writes it into the login URL.
fn binding_param(raw: Option<String>) -> Option<String> {
    raw.filter(|b| {
        b.len() == 32
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    })
}

/// What the login page and its begin learn from `rd`: the validated target
/// and the rule it routes to.
struct Destination<'r> {
    target: Option<Target>,
    rule: Option<&'r Rule>,
}

impl<'r> Destination<'r> {
    fn of(rt: &'r Runtime, rd: Option<&str>, facts: &Facts) -> Self {
        let target = rd.and_then(|r| redirect::validate(rt, r));
        let rule = target.as_ref().and_then(|t| rule_for(rt, t, facts));
        Destination { target, rule }
    }

    fn step_up(&self) -> Option<&'r StepUp> {
        self.rule.and_then(|r| r.step_up.as_ref())
    }
}

/// `GET /.stepgate/login?rd=&state=`
pub async fn page(req: &PortalRequest<'_>) -> Result<Reply> {
    let rt = &req.rt;
    let to = Destination::of(rt, req.param("rd").as_deref(), req.facts);
    let binding = binding_param(req.param("state"));
    if let Some(t) = &to.target
        && t.host != rt.boot.portal.host
        && binding.is_none()
    {
        // Only the app host can bind a sign-in to this browser: go there
        // first; it sends the browser back here with its binding.
        return Ok(Reply::redirect(StatusCode::FOUND, t.url.as_str()));
    }
    let current = sessions::current(req).await?;
    let mut no_match = None;
    if let Some(lookup) = &current {
        let user = &lookup.session.user;
        if let Err(why) = policy::admit(rt, user, to.rule, req.now) {
            let refusal = Refusal::unadmitted(why, user);
            let body = pages::message("Not allowed", &refusal.message(), None);
            return Ok(html(StatusCode::FORBIDDEN, body));
        }
        if let Some(url) = signed_in_once(req, &to, lookup, binding.as_deref()).await? {
            return Ok(Reply::redirect(StatusCode::FOUND, &url));
        }
        let (all, ok) = user_credentials(req, user, to.step_up()).await?;
        if ok.is_empty() {
            no_match = Some(no_match_text(rt, to.step_up(), &all));
        }
    }
    let destination = to
        .target
        .as_ref()
        .map_or(rt.boot.portal.host.clone(), |t| t.authority.clone());
    let rd_text = to
        .target
        .as_ref()
        .map_or(String::new(), |t| t.url.to_string());
    let body = pages::login(&pages::Login {
        rd: &rd_text,
        state: binding.as_deref().unwrap_or(""),
        destination: &destination,
        needs: to
            .step_up()
            .map(|s| format!("This page asks for {}.", StepUpText::new(rt, s))),
        user: current.as_ref().map(|l| l.session.user.as_str()),
        no_match,
    });
    Ok(html(StatusCode::OK, body))
}

/// Signed in once: when this portal session already satisfies the rule, the
/// callback URL that sends the browser on without a ceremony.
async fn signed_in_once(
    req: &PortalRequest<'_>,
    to: &Destination<'_>,
    lookup: &crate::session::lifecycle::PortalLookup,
    binding: Option<&str>,
) -> Result<Option<String>> {
    let (Some(t), Some(rule), Some(b)) = (&to.target, to.rule, binding) else {
        return Ok(None);
    };
    let Some(proof) = sso::already_proven(req, &lookup.session, rule, &t.host).await? else {
        return Ok(None);
    };
    metrics().signin(&rule.name, "silent");
    let code = CodeRecord {
        at: req.now,
        portal_id: lookup.session.id.clone(),
        user: lookup.session.user.clone(),
        origin: t.origin(),
        binding: b.to_string(),
        rule: Some(rule.name.clone()),
        verification: proof.verification,
    };
    Ok(Some(callback_url(req, t, &code).await?))
}

#[derive(Deserialize)]
struct BeginRequest {
    #[serde(default)]
    rd: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

/// `POST /.stepgate/api/login/begin` `{rd, state?, username?}`
///
/// Signed in: the user's passkeys that fit the rule (a user outside `allow`, or
/// without a fitting passkey, is told so: they proved who they are). Not signed
/// in, with a user name: the answer looks the same whether or not the user
/// exists, may open the page or has passkeys (their usable passkeys' ids, or
/// stable decoy ids); what applies is said only after a verified assertion.
/// Without a name: a discoverable-credential ceremony.
pub async fn begin(req: &PortalRequest<'_>) -> Result<Reply> {
    req.require_same_origin()?;
    req.limit_client().await?;
    let body: BeginRequest = req.json()?;
    let to = Destination::of(req.rt, body.rd.as_deref(), req.facts);
    let session_user = sessions::current(req).await?.map(|l| l.session.user);
    let named = body
        .username
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty() && u.len() <= 64);
    let (options, state) = match (&session_user, &named) {
        (Some(u), _) => {
            let allow = signed_in_allow(req, u, &to).await?;
            req.rp.begin_login(allow)?
        }
        (None, Some(name)) => named_options(req, req.rp, name).await?,
        (None, None) => req.rp.begin_login(Vec::new())?,
    };
    let pending = Pending::Login {
        rd: to.target.map(|t| t.url.to_string()),
        binding: binding_param(body.state),
        user: session_user.or(named),
        state,
    };
    pending::begin_reply(req, pending, options, &[]).await
}

/// The passkeys a signed-in user may use for the destination's rule, or why none.
async fn signed_in_allow(
    req: &PortalRequest<'_>,
    user: &str,
    to: &Destination<'_>,
) -> Result<Vec<CoreCredential>> {
    policy::admit(req.rt, user, to.rule, req.now).map_err(|why| Refusal::unadmitted(why, user))?;
    let (all, ok) = user_credentials(req, user, to.step_up()).await?;
    if ok.is_empty() {
        return Err(Refusal::NoFittingPasskey(no_match_text(
            req.rt,
            to.step_up(),
            &all,
        )));
    }
    Ok(ok.iter().filter_map(core_credential).collect())
}

/// Options for a named, not signed-in sign-in that say nothing about `name`:
/// the ids of its usable passkeys, or decoys derived from the name (stable
/// across requests and instances, like real ones), each as `{type, id}` only.
async fn named_options(
    req: &PortalRequest<'_>,
    rp: &RelyingParty,
    name: &str,
) -> Result<(serde_json::Value, AuthenticationState)> {
    let now = req.now;
    let active = policy::admit(req.rt, name, None, now).is_ok();
    let creds: Vec<CoreCredential> = if active {
        req.store()
            .credentials(Some(name))
            .await?
            .iter()
            .filter(|c| c.is_usable(now))
            .filter_map(core_credential)
            .collect()
    } else {
        Vec::new()
    };
    let ids: Vec<String> = if creds.is_empty() {
        vec![webauthn::b64url(&req.keys.decoy_credential_id(name))]
    } else {
        creds
            .iter()
            .map(|c| webauthn::b64url(c.cred_id.as_slice()))
            .collect()
    };
    let (mut options, state) = rp.begin_login(creds)?;
    options["allowCredentials"] = ids
        .into_iter()
        .map(|id| serde_json::json!({ "type": "public-key", "id": id }))
        .collect();
    Ok((options, state))
}

/// What the audit log learns about a sign-in or step-up as it goes.
#[derive(Default)]
struct Audited {
    user: Option<String>,
    credential: Option<String>,
    rule: Option<String>,
    step_up: bool,
}

/// `POST /.stepgate/api/login/finish` `{ceremony, credential}`: the ceremony, then one audit event.
pub async fn finish(req: &PortalRequest<'_>) -> Result<Reply> {
    let mut audited = Audited::default();
    let result = finish_ceremony(req, &mut audited).await;
    let kind = if audited.step_up {
        CeremonyKind::StepUp
    } else {
        CeremonyKind::SignIn
    };
    let outcome = result.as_ref().map_or_else(Refusal::label, |_| "ok");
    audit::ceremony(
        kind,
        audited.user.as_deref(),
        audited.rule.as_deref(),
        audited.credential.as_deref(),
        outcome,
        req.facts.client_ip,
    );
    result
}

async fn finish_ceremony(req: &PortalRequest<'_>, audited: &mut Audited) -> Result<Reply> {
    let (taken, rsp) = assertion::finish_request(req).await?;
    let Some(Pending::Login {
        rd,
        binding,
        user,
        state,
    }) = taken
    else {
        return Err(Refusal::CeremonyExpired);
    };
    let mut seen = Seen::default();
    let asserted = assertion::verify(req, &rsp, &state, user.as_deref(), &mut seen).await;
    (audited.user, audited.credential) = (seen.user, seen.credential);
    let Asserted {
        credential: stored,
        verification,
    } = asserted?;
    let rt = &req.rt;
    // What the rule needs, learnt again from the (already validated) target.
    let to = Destination::of(rt, rd.as_deref(), req.facts);
    if let Some(rule) = to.rule {
        audited.rule = Some(rule.name.clone());
        audited.step_up = rule.step_up.is_some();
    }
    fits_destination(req, &stored, &to).await?;
    let (cookie_value, portal) =
        sessions::after_ceremony(req, &stored, Some(&verification)).await?;
    let redirect = match &to.target {
        None => redirect::fallback(rt),
        Some(t) if t.host == rt.boot.portal.host => t.url.to_string(),
        // Only the browser the app host sent here may redeem a code: without
        // its binding, go back to the app, which starts over with one.
        Some(t) if binding.is_none() => t.url.to_string(),
        Some(t) => {
            if let Some(rule) = to.rule {
                metrics().signin(&rule.name, "ceremony");
            }
            let code = CodeRecord {
                at: req.now,
                portal_id: portal.id.clone(),
                user: stored.user.clone(),
                origin: t.origin(),
                binding: binding.unwrap_or_default(),
                rule: to.rule.map(|r| r.name.clone()),
                verification: Some(verification),
            };
            callback_url(req, t, &code).await?
        }
    };
    Ok(json(&serde_json::json!({ "redirect": redirect }))
        .header(SET_COOKIE, sessions::cookie(req, &cookie_value, &portal)))
}

/// Refuse a verified credential whose user the destination's rule does not
/// admit, or that does not fit the rule's `step_up`.
async fn fits_destination(
    req: &PortalRequest<'_>,
    stored: &Credential,
    to: &Destination<'_>,
) -> Result<()> {
    let rt = &req.rt;
    policy::admit(rt, &stored.user, to.rule, req.now)
        .map_err(|why| Refusal::unadmitted(why, &stored.user))?;
    let step_up = to.step_up();
    if !satisfies(rt, stored, step_up, req.now) {
        let (all, _) = user_credentials(req, &stored.user, step_up).await?;
        return Err(Refusal::WrongAuthenticator(no_match_text(
            rt, step_up, &all,
        )));
    }
    Ok(())
}
