//! Enrollment from an invite: `/.stepgate/enroll?token=` and its JSON API.
//!
//! Begin takes the invite (single use) into the ceremony state; a failed or
//! cancelled ceremony puts it back (same token, same expiry) so the person
//! can retry, a successful one uses it up. UV is required; attestation is
//! asked for (`direct`) and proven against the configured roots when offered.
//!
//! A registration signs the person in but is not an assertion: its portal
//! session has no `last_uv` and no grant, so the first page with a `step_up`
//! asks for the new passkey again. (With `none` or `fido-u2f` attestation
//! nothing signs the registration's UV flag, so it could not count anyway.)

use http::StatusCode;
use http::header::SET_COOKIE;
use serde::Deserialize;
use webauthn_rs_core::proto::{RegisterPublicKeyCredential, RegistrationState};

use super::ceremony::core_credential;
use super::ceremony::pending::{self, Pending};
use super::form::clean_label;
use super::{PortalRequest, Refusal, Result, html, json, pages, sessions};
use crate::audit::{self, CeremonyKind};
use crate::model::{Credential, Invite, token_hash};
use crate::policy;
use crate::reply::Reply;
use crate::reserved::PortalRoute;
use crate::store::StoreError;

/// `GET /.stepgate/enroll?token=`
pub async fn page(req: &PortalRequest<'_>) -> Result<Reply> {
    let token = req.param("token").unwrap_or_default();
    if token.is_empty() || token.len() > 128 {
        return Ok(html(
            StatusCode::BAD_REQUEST,
            pages::message(
                "Invitation needed",
                "To register a passkey you need an invitation link from the administrator.",
                None,
            ),
        ));
    }
    Ok(html(StatusCode::OK, pages::enroll(&token, None)))
}

#[derive(Deserialize)]
struct BeginRequest {
    token: String,
    #[serde(default)]
    label: String,
}

/// `POST /.stepgate/api/enroll/begin` `{token, label}`
pub async fn begin(req: &PortalRequest<'_>) -> Result<Reply> {
    req.require_same_origin()?;
    req.limit_client().await?;
    let body: BeginRequest = req.json()?;
    let label = clean_label(&body.label, "this passkey")?;
    let invite_hash = token_hash(&body.token);
    let Some(invite) = req.store().take_invite(&invite_hash, req.now).await? else {
        return Err(Refusal::InviteInvalid);
    };
    let Ok(user) = policy::admit(req.rt, &invite.user, None, req.now) else {
        return Err(Refusal::InviteUserGone);
    };
    let display = user.name.clone().unwrap_or_else(|| invite.user.clone());
    let begun = begin_with(req, label, &display, &invite_hash, &invite).await;
    if begun.is_err() {
        put_back(req, &invite_hash, &invite).await;
    }
    begun
}

/// Begin the registration for a taken invite (the caller gives it back on error).
async fn begin_with(
    req: &PortalRequest<'_>,
    label: String,
    display: &str,
    invite_hash: &str,
    invite: &Invite,
) -> Result<Reply> {
    let exclude = req
        .store()
        .credentials(Some(&invite.user))
        .await?
        .iter()
        .filter_map(|c| core_credential(c).map(|k| k.cred_id.to_vec()))
        .collect();
    let (options, state) = req.rp.begin_register(&invite.user, display, exclude)?;
    let pending = Pending::Enroll {
        user: invite.user.clone(),
        label,
        invite_hash: invite_hash.to_string(),
        invite: invite.clone(),
        state,
    };
    pending::begin_reply(req, pending, options, &[("user", &invite.user)]).await
}

/// Return an invite after a failed ceremony (if it has not expired meanwhile).
async fn put_back(req: &PortalRequest<'_>, hash: &str, invite: &Invite) {
    if invite.expires_at > req.now
        && let Err(e) = req.store().add_invite(hash, invite).await
    {
        tracing::warn!(error = %e, "could not return an invite after a failed enrollment");
    }
}

#[derive(Deserialize)]
struct FinishRequest {
    ceremony: String,
    credential: serde_json::Value,
}

/// `POST /.stepgate/api/enroll/finish` `{ceremony, credential}`
pub async fn finish(req: &PortalRequest<'_>) -> Result<Reply> {
    req.require_same_origin()?;
    req.limit_client().await?;
    let body: FinishRequest = req.json()?;
    let Some(Pending::Enroll {
        user,
        label,
        invite_hash,
        invite,
        state,
    }) = pending::take(req, &body.ceremony).await?
    else {
        return Err(Refusal::CeremonyExpired);
    };
    let result = register(req, &user, &label, &invite, &state, body.credential).await;
    if result.is_err() {
        put_back(req, &invite_hash, &invite).await;
    }
    let outcome = result.as_ref().map_or_else(Refusal::label, |_| "ok");
    audit::ceremony(
        CeremonyKind::Enroll,
        Some(&user),
        None,
        Some(&label),
        outcome,
        req.facts.client_ip,
    );
    result
}

async fn register(
    req: &PortalRequest<'_>,
    user: &str,
    label: &str,
    invite: &Invite,
    state: &RegistrationState,
    credential: serde_json::Value,
) -> Result<Reply> {
    let reg: RegisterPublicKeyCredential =
        serde_json::from_value(credential).map_err(|_| Refusal::MalformedCredential)?;
    let (rt, now) = (&req.rt, req.now);
    let registered = req.rp.finish_register(&reg, state, &rt.trust)?;
    let cred = Credential {
        id: registered.id.clone(),
        user: user.to_string(),
        label: label.to_string(),
        passkey: registered.passkey,
        counter: registered.counter,
        aaguid: registered.aaguid,
        attestation: registered.attestation.clone(),
        backup_eligible: registered.backup_eligible,
        backup_state: registered.backup_state,
        created_at: now,
        last_used_at: Some(now),
        expires_at: invite
            .credential_ttl
            .map(|ttl| now.saturating_add(ttl as i64)),
        flagged: false,
    };
    match req.store().add_credential(&cred).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(Refusal::AlreadyRegistered),
        Err(e) => return Err(e.into()),
    }
    let sets = rt.trust.sets_of(cred.attestation.as_ref(), now);
    tracing::info!(user = %user, credential = %cred.id, aaguid = %cred.aaguid,
        attestation = ?cred.attestation.as_ref().map(|a| &a.format), sets = ?sets, "passkey registered");
    let (cookie_value, portal) = sessions::after_ceremony(req, &cred, None).await?;
    Ok(json(&serde_json::json!({
        "redirect": req.url(PortalRoute::Account),
        "credential": cred.id,
    }))
    .header(SET_COOKIE, sessions::cookie(req, &cookie_value, &portal)))
}

#[derive(Deserialize)]
struct CancelRequest {
    ceremony: String,
}

/// `POST /.stepgate/api/enroll/cancel` `{ceremony}`: give the invite back.
pub async fn cancel(req: &PortalRequest<'_>) -> Result<Reply> {
    req.require_same_origin()?;
    let body: CancelRequest = req.json()?;
    if let Some(Pending::Enroll {
        invite_hash,
        invite,
        ..
    }) = pending::take(req, &body.ceremony).await?
    {
        put_back(req, &invite_hash, &invite).await;
    }
    Ok(json(&serde_json::json!({ "ok": true })))
}
