//! Sign-in and step-up: `/.stepgate/login?rd=` and its JSON API.
//!
//! What the ceremony must prove is learnt by routing `rd` (never from a client
//! parameter). Only credentials that satisfy the rule's `step_up` are offered;
//! when the signed-in user has none, the page says so. A successful ceremony
//! rotates the portal session, records the verification, and sends the
//! browser through the app host's `/.stepgate/callback` with a one-time code.

use crate::audit::{self, CeremonyKind};
use std::time::Duration;

use http::StatusCode;
use http::header::SET_COOKIE;
use serde::{Deserialize, Serialize};
use webauthn_rs_core::proto::{AuthenticationState, Credential as CoreCredential};

use super::assertion::{self, Asserted, Seen};
use super::pending::{self, Pending};
use super::redirect::{self, Target};
use super::sso;
use super::{Failure, Result, html, json, limit_client, pages, require_same_origin, sessions};
use crate::config::{Rule, Runtime, StepUp};
use crate::gateway::{Facts, Gateway, Reply};
use crate::routing::{RouteRequest, normalize_path};
use crate::session::{Credential, Verification, new_token, token_hash};
use crate::telemetry::metrics;
use crate::webauthn::{self, RelyingParty};

/// Lifetime of a callback code.
pub const CODE_TTL: Duration = Duration::from_secs(60);

/// What the callback code stands for.
#[derive(Debug, Serialize, Deserialize)]
pub struct CodeRecord {
    /// When the code was made (gateway clock).
    pub at: i64,
    pub portal_id: String,
    pub user: String,
    /// The app origin (`scheme://host[:port]`) the code may be redeemed at.
    pub origin: String,
    /// The browser binding ([`CookieKeys::browser_binding`]) the app host gave
    /// the browser it sent here: only that browser can redeem the code.
    pub binding: String,
    /// The rule the ceremony was done for.
    pub rule: Option<String>,
    /// The assertion the app session's grant for `rule` carries; `None` when
    /// a portal session opens a rule that asks for no fresh proof.
    pub verification: Option<Verification>,
}

/// Store `code` (single use, [`CODE_TTL`]) and return the app host's callback
/// URL that redeems it and lands on `target`.
async fn callback_url(gw: &Gateway, target: &Target, code: &CodeRecord) -> Result<String> {
    let secret = new_token();
    let bytes = serde_json::to_vec(code)
        .map_err(|_| Failure::Bad("Could not finish signing in.".into()))?;
    gw.store
        .put_once(&code_key(&secret), &bytes, CODE_TTL)
        .await?;
    let mut url = format!("{}/.stepgate/callback?", target.origin());
    url.push_str(
        &url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &secret)
            .append_pair("rd", target.url.as_str())
            .finish(),
    );
    Ok(url)
}

/// The store key of a callback code.
pub fn code_key(code: &str) -> String {
    format!("code:{}", token_hash(code))
}

/// The rule `target` routes to (a GET from this client), if any.
pub fn rule_for<'a>(rt: &'a Runtime, target: &Target, facts: &Facts) -> Option<&'a Rule> {
    if target.host == rt.portal.host {
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

/// Does `cred` satisfy `step_up` under `rt`'s trust anchors at `now` (model
/// and binding; age is the ceremony's own)?
pub fn satisfies(rt: &Runtime, cred: &Credential, step_up: Option<&StepUp>, now: i64) -> bool {
    let Some(s) = step_up else { return true };
    crate::policy::credential_fits(s, &rt.trust, &cred.standing(), now)
}

/// Sentences describing what a rule's step-up needs.
fn needs_text(rt: &Runtime, s: &StepUp) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(age) = s.max_age {
        out.push(format!(
            "This page asks for a fresh check with your PIN or fingerprint (at most {} old).",
            humantime::format_duration(age)
        ));
    }
    if !s.authenticators.is_empty() {
        out.push(format!(
            "It accepts only these authenticators: {}.",
            rt.authenticator_names(&s.authenticators).join(", ")
        ));
    }
    if s.device_bound {
        out.push("It accepts only device-bound passkeys (not synced ones).".into());
    }
    out
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
    gw: &Gateway,
    user: &str,
    step_up: Option<&StepUp>,
) -> Result<(Vec<Credential>, Vec<Credential>)> {
    let now = gw.now();
    let rt = gw.config.load();
    let all: Vec<Credential> = gw
        .store
        .credentials(Some(user))
        .await?
        .into_iter()
        .filter(|c| c.is_usable(now))
        .collect();
    let ok = all
        .iter()
        .filter(|c| satisfies(&rt, c, step_up, now))
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

/// `GET /.stepgate/login?rd=&state=`
pub async fn page(gw: &Gateway, facts: &Facts) -> Result<Reply> {
    let rt = gw.config.load();
    let rd = facts.query_param("rd");
    let target = rd.as_deref().and_then(|r| redirect::validate(&rt, r));
    let binding = binding_param(facts.query_param("state"));
    if let Some(t) = &target
        && t.host != rt.portal.host
        && binding.is_none()
    {
        // Only the app host can bind a sign-in to this browser: go there
        // first; it sends the browser back here with its binding.
        return Ok(Reply::redirect(StatusCode::FOUND, t.url.as_str()));
    }
    let rule = target.as_ref().and_then(|t| rule_for(&rt, t, facts));
    let step_up = rule.and_then(|r| r.step_up.as_ref());
    let current = sessions::current(gw, facts).await?;
    let user = current.as_ref().map(|l| l.session.user.clone());
    let mut no_match = None;
    if let Some(u) = &user {
        if let (Some(rule), Some(cfg)) = (rule, rt.users.get(u))
            && !rule.allows(u, cfg)
        {
            return Ok(html(
                StatusCode::FORBIDDEN,
                pages::message(
                    "Not allowed",
                    &format!("Your account ({u}) may not open this page."),
                    None,
                ),
            ));
        }
        if let (Some(t), Some(rule), Some(lookup), Some(b)) = (&target, rule, &current, &binding)
            && let Some(proof) =
                sso::already_proven(gw, &rt, &lookup.session, rule, &t.host, gw.now()).await?
        {
            // Signed in once: this session already satisfies the rule.
            metrics().signin(&rule.name, "silent");
            let code = CodeRecord {
                at: gw.now(),
                portal_id: lookup.session.id.clone(),
                user: lookup.session.user.clone(),
                origin: t.origin(),
                binding: b.clone(),
                rule: Some(rule.name.clone()),
                verification: proof.verification,
            };
            return Ok(Reply::redirect(
                StatusCode::FOUND,
                &callback_url(gw, t, &code).await?,
            ));
        }
        let (all, ok) = user_credentials(gw, u, step_up).await?;
        if ok.is_empty() {
            no_match = Some(no_match_text(&rt, step_up, &all));
        }
    }
    let destination = target
        .as_ref()
        .map_or(rt.portal.host.clone(), |t| t.authority.clone());
    let rd_text = target.as_ref().map_or(String::new(), |t| t.url.to_string());
    let body = pages::login(&pages::Login {
        rd: &rd_text,
        state: binding.as_deref().unwrap_or(""),
        destination: &destination,
        needs: step_up.map(|s| needs_text(&rt, s)).unwrap_or_default(),
        user: user.as_deref(),
        no_match,
    });
    Ok(html(StatusCode::OK, body))
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
pub async fn begin(gw: &Gateway, facts: &Facts, body: &[u8]) -> Result<Reply> {
    require_same_origin(gw, facts)?;
    limit_client(gw, facts).await?;
    let req: BeginRequest = super::parse_json(body)?;
    let rt = gw.config.load();
    let target = req.rd.as_deref().and_then(|r| redirect::validate(&rt, r));
    let rule = target.as_ref().and_then(|t| rule_for(&rt, t, facts));
    let step_up = rule.and_then(|r| r.step_up.as_ref());
    let session_user = sessions::current(gw, facts).await?.map(|l| l.session.user);
    let named = req
        .username
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty() && u.len() <= 64);
    let rp = gw.portal.rp.load();
    let (options, state) = match (&session_user, &named) {
        (Some(u), _) => {
            let allow = signed_in_allow(gw, &rt, u, rule, step_up).await?;
            rp.begin_login(allow)?
        }
        (None, Some(name)) => named_options(gw, &rp, name).await?,
        (None, None) => rp.begin_login(Vec::new())?,
    };
    let pending = Pending::Login {
        rd: target.map(|t| t.url.to_string()),
        binding: binding_param(req.state),
        user: session_user.or(named),
        state,
    };
    pending::begin_reply(gw, facts, pending, options).await
}

/// The passkeys a signed-in user may use for `rule`, or why none.
async fn signed_in_allow(
    gw: &Gateway,
    rt: &Runtime,
    user: &str,
    rule: Option<&Rule>,
    step_up: Option<&StepUp>,
) -> Result<Vec<CoreCredential>> {
    if let (Some(rule), Some(cfg)) = (rule, rt.users.get(user))
        && !rule.allows(user, cfg)
    {
        return Err(Failure::Forbidden(format!(
            "Your account ({user}) may not open this page."
        )));
    }
    let (all, ok) = user_credentials(gw, user, step_up).await?;
    if ok.is_empty() {
        return Err(Failure::Bad(no_match_text(rt, step_up, &all)));
    }
    Ok(ok.iter().filter_map(core_credential).collect())
}

/// Options for a named, not signed-in sign-in that say nothing about `name`:
/// the ids of its usable passkeys, or decoys derived from the name (stable
/// across requests and instances, like real ones), each as `{type, id}` only.
async fn named_options(
    gw: &Gateway,
    rp: &RelyingParty,
    name: &str,
) -> Result<(serde_json::Value, AuthenticationState)> {
    let now = gw.now();
    let active = gw
        .config
        .load()
        .users
        .get(name)
        .is_some_and(|u| u.is_active(now));
    let creds: Vec<CoreCredential> = if active {
        gw.store
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
        vec![webauthn::b64url(
            &gw.cookie_keys.load().decoy_credential_id(name),
        )]
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

/// The webauthn-rs credential of a stored one, with the stored counter and flags.
pub fn core_credential(c: &Credential) -> Option<CoreCredential> {
    let mut core = webauthn::decode_passkey(&c.passkey)?;
    core.counter = c.counter;
    core.backup_eligible = c.backup_eligible;
    Some(core)
}

fn refuse(msg: &str) -> Failure {
    Failure::Forbidden(msg.to_string())
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
pub async fn finish(gw: &Gateway, facts: &Facts, body: &[u8]) -> Result<Reply> {
    let mut audited = Audited::default();
    let result = finish_ceremony(gw, facts, body, &mut audited).await;
    let kind = if audited.step_up {
        CeremonyKind::StepUp
    } else {
        CeremonyKind::SignIn
    };
    let outcome = result.as_ref().map_or_else(Failure::code, |_| "ok");
    audit::ceremony(
        kind,
        audited.user.as_deref(),
        audited.rule.as_deref(),
        audited.credential.as_deref(),
        outcome,
        facts.client_ip,
    );
    result
}

async fn finish_ceremony(
    gw: &Gateway,
    facts: &Facts,
    body: &[u8],
    audited: &mut Audited,
) -> Result<Reply> {
    let (taken, rsp) = assertion::finish_request(gw, facts, body).await?;
    let Some(Pending::Login {
        rd,
        binding,
        user,
        state,
    }) = taken
    else {
        return Err(pending::expired());
    };
    let mut seen = Seen::default();
    let asserted = assertion::verify(gw, facts, &rsp, &state, user.as_deref(), &mut seen).await;
    (audited.user, audited.credential) = (seen.user, seen.credential);
    let Asserted {
        credential: stored,
        verification,
    } = asserted?;
    let rt = gw.config.load();
    let now = gw.now();
    let Some(cfg) = rt.users.get(&stored.user) else {
        return Err(refuse("This account no longer exists."));
    };
    // What the rule needs, learnt again from the (already validated) target.
    let target = rd.as_deref().and_then(|r| redirect::validate(&rt, r));
    let rule = target.as_ref().and_then(|t| rule_for(&rt, t, facts));
    if let Some(rule) = rule {
        audited.rule = Some(rule.name.clone());
        audited.step_up = rule.step_up.is_some();
        if !rule.allows(&stored.user, cfg) {
            return Err(refuse(&format!(
                "Your account ({}) may not open this page.",
                stored.user
            )));
        }
        if !satisfies(&rt, &stored, rule.step_up.as_ref(), now) {
            let (all, _) = user_credentials(gw, &stored.user, rule.step_up.as_ref()).await?;
            return Err(refuse(&format!(
                "Wrong authenticator. {}",
                no_match_text(&rt, rule.step_up.as_ref(), &all)
            )));
        }
    }
    let (cookie_value, portal) =
        sessions::after_ceremony(gw, facts, &stored, Some(&verification)).await?;
    let redirect = match &target {
        None => redirect::fallback(&rt),
        Some(t) if t.host == rt.portal.host => t.url.to_string(),
        // Only the browser the app host sent here may redeem a code: without
        // its binding, go back to the app, which starts over with one.
        Some(t) if binding.is_none() => t.url.to_string(),
        Some(t) => {
            if let Some(rule) = rule {
                metrics().signin(&rule.name, "ceremony");
            }
            let code = CodeRecord {
                at: now,
                portal_id: portal.id.clone(),
                user: stored.user.clone(),
                origin: t.origin(),
                binding: binding.unwrap_or_default(),
                rule: rule.map(|r| r.name.clone()),
                verification: Some(verification),
            };
            callback_url(gw, t, &code).await?
        }
    };
    Ok(json(&serde_json::json!({ "redirect": redirect }))
        .header(SET_COOKIE, sessions::cookie(gw, &cookie_value, &portal)))
}
