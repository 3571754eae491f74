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

use crate::audit::{self, CeremonyKind};
use http::StatusCode;
use http::header::SET_COOKIE;
use serde::Deserialize;
use webauthn_rs_core::proto::RegisterPublicKeyCredential;

use super::pending::{self, Pending};
use super::{Failure, Result, html, json, limit_client, pages, require_same_origin, sessions};
use crate::gateway::{Facts, Gateway, Reply};
use crate::session::{Credential, Invite, token_hash};
use crate::store::StoreError;

/// `GET /.stepgate/enroll?token=`
pub async fn page(_gw: &Gateway, facts: &Facts) -> Result<Reply> {
    let token = facts.query_param("token").unwrap_or_default();
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

fn clean_label(label: &str) -> Option<String> {
    let l: String = label.trim().chars().filter(|c| !c.is_control()).collect();
    let l: String = l.chars().take(64).collect();
    (!l.is_empty()).then_some(l)
}

/// `POST /.stepgate/api/enroll/begin` `{token, label}`
pub async fn begin(gw: &Gateway, facts: &Facts, body: &[u8]) -> Result<Reply> {
    require_same_origin(gw, facts)?;
    limit_client(gw, facts).await?;
    let req: BeginRequest = super::parse_json(body)?;
    let Some(label) = clean_label(&req.label) else {
        return Err(Failure::Bad("Please give this passkey a name.".into()));
    };
    let now = gw.now();
    let invite_hash = token_hash(&req.token);
    let Some(invite) = gw.store.take_invite(&invite_hash, now).await? else {
        return Err(Failure::Bad(
            "This invitation link is invalid, expired, or was already used. Ask for a new one."
                .into(),
        ));
    };
    let rt = gw.config.load();
    let Some(user) = rt.users.get(&invite.user).filter(|u| u.is_active(now)) else {
        return Err(Failure::Bad(
            "This invitation is for an account that no longer exists or has expired.".into(),
        ));
    };
    let exclude = gw
        .store
        .credentials(Some(&invite.user))
        .await?
        .iter()
        .filter_map(|c| super::login::core_credential(c).map(|k| k.cred_id.to_vec()))
        .collect();
    let display = user.name.clone().unwrap_or_else(|| invite.user.clone());
    let rp = gw.portal.rp.load();
    let (options, state) = match rp.begin_register(&invite.user, &display, exclude) {
        Ok(x) => x,
        Err(e) => {
            put_back(gw, &invite_hash, &invite).await;
            return Err(e.into());
        }
    };
    let pending = Pending::Enroll {
        user: invite.user.clone(),
        label,
        invite_hash: invite_hash.clone(),
        invite: invite.clone(),
        state,
    };
    let begun = match pending::put(gw, facts, pending).await {
        Ok(b) => b,
        Err(e) => {
            put_back(gw, &invite_hash, &invite).await;
            return Err(e);
        }
    };
    let mut reply = json(&serde_json::json!({
        "ceremony": begun.ceremony,
        "publicKey": options,
        "user": invite.user,
    }));
    if let Some(c) = begun.set_cookie {
        reply = reply.header(SET_COOKIE, c);
    }
    Ok(reply)
}

/// Return an invite after a failed ceremony (if it has not expired meanwhile).
async fn put_back(gw: &Gateway, hash: &str, invite: &Invite) {
    if invite.expires_at > gw.now()
        && let Err(e) = gw.store.add_invite(hash, invite).await
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
pub async fn finish(gw: &Gateway, facts: &Facts, body: &[u8]) -> Result<Reply> {
    require_same_origin(gw, facts)?;
    limit_client(gw, facts).await?;
    let req: FinishRequest = super::parse_json(body)?;
    let Some(Pending::Enroll {
        user,
        label,
        invite_hash,
        invite,
        state,
    }) = pending::take(gw, facts, &req.ceremony).await?
    else {
        return Err(pending::expired());
    };
    let result = register(gw, facts, &user, &label, &invite, &state, req.credential).await;
    if result.is_err() {
        put_back(gw, &invite_hash, &invite).await;
    }
    let outcome = result.as_ref().map_or_else(Failure::code, |_| "ok");
    audit::ceremony(
        CeremonyKind::Enroll,
        Some(&user),
        None,
        Some(&label),
        outcome,
        facts.client_ip,
    );
    result
}

async fn register(
    gw: &Gateway,
    facts: &Facts,
    user: &str,
    label: &str,
    invite: &Invite,
    state: &webauthn_rs_core::proto::RegistrationState,
    credential: serde_json::Value,
) -> Result<Reply> {
    let reg: RegisterPublicKeyCredential = serde_json::from_value(credential)
        .map_err(|_| Failure::Bad("The authenticator's answer was malformed.".into()))?;
    let rp = gw.portal.rp.load();
    let rt = gw.config.load();
    let registered = rp.finish_register(&reg, state, &rt.trust)?;
    let now = gw.now();
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
    match gw.store.add_credential(&cred).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(Failure::Bad(
                "This passkey is already registered. Use it to sign in, or register another authenticator."
                    .into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let sets = rt.trust.sets_of(cred.attestation.as_ref(), now);
    tracing::info!(user = %user, credential = %cred.id, aaguid = %cred.aaguid,
        attestation = ?cred.attestation.as_ref().map(|a| &a.format), sets = ?sets, "passkey registered");
    let (cookie_value, portal) = sessions::after_ceremony(gw, facts, &cred, None).await?;
    Ok(json(&serde_json::json!({
        "redirect": rt.portal.url("/.stepgate/account"),
        "credential": cred.id,
    }))
    .header(SET_COOKIE, sessions::cookie(gw, &cookie_value, &portal)))
}

#[derive(Deserialize)]
struct CancelRequest {
    ceremony: String,
}

/// `POST /.stepgate/api/enroll/cancel` `{ceremony}`: give the invite back.
pub async fn cancel(gw: &Gateway, facts: &Facts, body: &[u8]) -> Result<Reply> {
    require_same_origin(gw, facts)?;
    let req: CancelRequest = super::parse_json(body)?;
    if let Some(Pending::Enroll {
        invite_hash,
        invite,
        ..
    }) = pending::take(gw, facts, &req.ceremony).await?
    {
        put_back(gw, &invite_hash, &invite).await;
    }
    Ok(json(&serde_json::json!({ "ok": true })))
}
