//! Verifying one passkey assertion against its stored credential: the part
//! every assertion ceremony shares (sign-in, step-up, minting a client token).
//!
//! The credential id the client names must be 1 to 1023 bytes long (else it
//! is refused before any lookup). The credential must exist, belong to the expected user (if one is named)
//! and to the user the authenticator names, stand (not flagged, not expired)
//! and belong to an active configured user; the signature, challenge, origin
//! and UV flag are checked by the relying party; the sign counter and backup
//! state are stored atomically (a counter that went backwards flags the
//! credential). Failed signatures count against the user's failure limit (per
//! user and client network); a finish is not counted against the network's
//! ceremony limit, so nobody else's failures refuse a correct assertion.
//! What the assertion is *for* is the caller's business.

use serde::Deserialize;
use webauthn_rs_core::proto::{AuthenticationState, PublicKeyCredential};

use super::core_credential;
use super::pending::{self, Pending};
use crate::model::{Credential, Verification};
use crate::policy;
use crate::portal::{PortalRequest, Refusal, Result};
use crate::store::CounterCheck;
use crate::webauthn::{self, CeremonyError};

/// What the audit log learns about an assertion as it is checked.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub user: Option<String>,
    /// The credential's label.
    pub credential: Option<String>,
}

/// A verified assertion: the credential as stored, and the assertion's facts.
#[derive(Debug)]
pub(crate) struct Asserted {
    pub credential: Credential,
    pub verification: Verification,
}

/// The body of every assertion ceremony's finish.
#[derive(Deserialize)]
struct FinishRequest {
    ceremony: String,
    credential: serde_json::Value,
}

/// A ceremony's finish request, after the origin check: the ceremony state it
/// names (taken, so used up whatever follows; `None` when there is none for
/// this browser) and the authenticator's answer.
///
/// A finish is not counted against the client's network: the begin that made
/// its ceremony was, and each ceremony is finished once. So a correct
/// assertion is never refused for what others on the network did; only its
/// own user's failures from that network ([`verify`]) can hold it back.
pub(crate) async fn finish_request(
    req: &PortalRequest<'_>,
) -> Result<(Option<Pending>, PublicKeyCredential)> {
    req.require_same_origin()?;
    let body: FinishRequest = req.json()?;
    let taken = pending::take(req, &body.ceremony).await?;
    let rsp = serde_json::from_value(body.credential).map_err(|_| Refusal::MalformedCredential)?;
    Ok((taken, rsp))
}

/// Verify `rsp` for the ceremony `state`; `expected` names the user it must
/// belong to (the signed-in or named user), if any.
pub(crate) async fn verify(
    req: &PortalRequest<'_>,
    rsp: &PublicKeyCredential,
    state: &AuthenticationState,
    expected: Option<&str>,
    seen: &mut Seen,
) -> Result<Asserted> {
    let now = req.now;
    webauthn::check_credential_id(&rsp.raw_id)?;
    let cred_id = webauthn::b64url(&rsp.raw_id);
    let Some(stored) = req.store().credential(&cred_id).await? else {
        return Err(Refusal::UnknownPasskey);
    };
    seen.user = Some(stored.user.clone());
    seen.credential = Some(stored.label.clone());
    req.failures_allowed(&stored.user).await?;
    if expected.is_some_and(|u| u != stored.user) {
        return Err(Refusal::OtherUsersPasskey);
    }
    match rsp.response.user_handle.as_deref() {
        Some(h) if h != webauthn::user_handle(&stored.user).as_slice() => {
            return Err(Refusal::OtherUsersPasskey);
        }
        None if expected.is_none() => return Err(Refusal::NoUserHandle),
        _ => {}
    }
    policy::admit(req.rt, &stored.user, None, now)
        .map_err(|why| Refusal::unadmitted(why, &stored.user))?;
    if stored.flagged {
        return Err(Refusal::PasskeyBlocked);
    }
    if !stored.is_usable(now) {
        return Err(Refusal::PasskeyExpired);
    }
    let backup_eligible = check_signature(req, rsp, state, &stored).await?;
    // What the credential is (model, standing) is read afresh at each request;
    // the assertion records only itself, with its signed backup-eligible flag.
    let verification = Verification {
        at: now,
        credential_id: stored.id.clone(),
        credential_label: stored.label.clone(),
        aaguid: stored.aaguid,
        backup_eligible,
    };
    Ok(Asserted {
        credential: stored,
        verification,
    })
}

/// The relying party's check of the signature (with UV), then the counter and
/// backup state stored; returns the assertion's signed backup-eligible flag.
async fn check_signature(
    req: &PortalRequest<'_>,
    rsp: &PublicKeyCredential,
    state: &AuthenticationState,
    stored: &Credential,
) -> Result<bool> {
    let (store, now) = (req.store(), req.now);
    let Some(core) = core_credential(stored) else {
        return Err(Refusal::DamagedPasskey);
    };
    let asserted = match req.rp.finish_login(rsp, state, &core) {
        Ok(a) => a,
        Err(CeremonyError::CounterRegressed) => {
            // Flag the credential: the store compares and flags atomically.
            let counter =
                webauthn::auth_data_counter(&rsp.response.authenticator_data).unwrap_or(0);
            store
                .record_use(&stored.id, counter, stored.backup_state, now)
                .await?;
            tracing::warn!(credential = %stored.id, user = %stored.user, "sign counter went backwards; credential flagged");
            return Err(CeremonyError::CounterRegressed.into());
        }
        Err(e) => {
            req.count_failure(&stored.user).await;
            return Err(e.into());
        }
    };
    match store
        .record_use(&stored.id, asserted.counter, asserted.backup_state, now)
        .await?
    {
        CounterCheck::Accepted => Ok(asserted.backup_eligible),
        CounterCheck::Regressed => {
            tracing::warn!(credential = %stored.id, user = %stored.user, "sign counter went backwards; credential flagged");
            Err(CeremonyError::CounterRegressed.into())
        }
        CounterCheck::Missing => Err(Refusal::PasskeyRemoved),
    }
}
