//! Verifying one passkey assertion against its stored credential: the part
//! every assertion ceremony shares (sign-in, step-up, minting a client token).
//!
//! The credential must exist, belong to the expected user (if one is named)
//! and to the user the authenticator names, stand (not flagged, not expired)
//! and belong to an active configured user; the signature, challenge, origin
//! and UV flag are checked by the relying party; the sign counter and backup
//! state are stored atomically (a counter that went backwards flags the
//! credential). Failed signatures count against the user's failure limit.
//! What the assertion is *for* is the caller's business.

use serde::Deserialize;
use webauthn_rs_core::proto::{AuthenticationState, PublicKeyCredential};

use super::login::core_credential;
use super::pending::{self, Pending};
use super::{Failure, Result, count_failure, failures_allowed, limit_client, require_same_origin};
use crate::gateway::{Facts, Gateway};
use crate::session::{Credential, Verification};
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

/// A ceremony's finish request, after the origin check and the client's rate
/// limit: the ceremony state it names (taken, so used up whatever follows;
/// `None` when there is none for this browser) and the authenticator's answer.
pub(crate) async fn finish_request(
    gw: &Gateway,
    facts: &Facts,
    body: &[u8],
) -> Result<(Option<Pending>, PublicKeyCredential)> {
    require_same_origin(gw, facts)?;
    limit_client(gw, facts).await?;
    let req: FinishRequest = super::parse_json(body)?;
    let taken = pending::take(gw, facts, &req.ceremony).await?;
    let rsp = serde_json::from_value(req.credential)
        .map_err(|_| Failure::Bad("The authenticator's answer was malformed.".into()))?;
    Ok((taken, rsp))
}

fn refuse(msg: &str) -> Failure {
    Failure::Forbidden(msg.to_string())
}

/// Verify `rsp` for the ceremony `state`; `expected` names the user it must
/// belong to (the signed-in or named user), if any.
pub(crate) async fn verify(
    gw: &Gateway,
    facts: &Facts,
    rsp: &PublicKeyCredential,
    state: &AuthenticationState,
    expected: Option<&str>,
    seen: &mut Seen,
) -> Result<Asserted> {
    let rt = gw.config.load();
    let now = gw.now();
    let cred_id = webauthn::b64url(&rsp.raw_id);
    let Some(stored) = gw.store.credential(&cred_id).await? else {
        return Err(refuse("This passkey is not registered here."));
    };
    seen.user = Some(stored.user.clone());
    seen.credential = Some(stored.label.clone());
    failures_allowed(gw, facts, &stored.user).await?;
    if expected.is_some_and(|u| u != stored.user) {
        return Err(refuse("This passkey belongs to another account."));
    }
    match rsp.response.user_handle.as_deref() {
        Some(h) if h != webauthn::user_handle(&stored.user).as_slice() => {
            return Err(refuse("This passkey belongs to another account."));
        }
        None if expected.is_none() => {
            return Err(refuse(
                "Your authenticator did not say whose passkey this is. Enter your user name and try again.",
            ));
        }
        _ => {}
    }
    let Some(cfg) = rt.users.get(&stored.user) else {
        return Err(refuse("This account no longer exists."));
    };
    if !cfg.is_active(now) {
        return Err(refuse("This account has expired."));
    }
    if stored.flagged {
        return Err(refuse(
            "This passkey has been blocked because it looked copied. Use another passkey.",
        ));
    }
    if !stored.is_usable(now) {
        return Err(refuse("This passkey has expired."));
    }
    let backup_eligible = check_signature(gw, facts, rsp, state, &stored).await?;
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
    gw: &Gateway,
    facts: &Facts,
    rsp: &PublicKeyCredential,
    state: &AuthenticationState,
    stored: &Credential,
) -> Result<bool> {
    let now = gw.now();
    let Some(core) = core_credential(stored) else {
        return Err(Failure::Bad("This passkey's record is damaged.".into()));
    };
    let rp = gw.portal.rp.load();
    let asserted = match rp.finish_login(rsp, state, &core) {
        Ok(a) => a,
        Err(CeremonyError::CounterRegressed) => {
            // Flag the credential: the store compares and flags atomically.
            let counter =
                webauthn::auth_data_counter(&rsp.response.authenticator_data).unwrap_or(0);
            gw.store
                .record_use(&stored.id, counter, stored.backup_state, now)
                .await?;
            tracing::warn!(credential = %stored.id, user = %stored.user, "sign counter went backwards; credential flagged");
            return Err(CeremonyError::CounterRegressed.into());
        }
        Err(e) => {
            count_failure(gw, facts, &stored.user).await;
            return Err(e.into());
        }
    };
    match gw
        .store
        .record_use(&stored.id, asserted.counter, asserted.backup_state, now)
        .await?
    {
        CounterCheck::Accepted => Ok(asserted.backup_eligible),
        CounterCheck::Regressed => {
            tracing::warn!(credential = %stored.id, user = %stored.user, "sign counter went backwards; credential flagged");
            Err(CeremonyError::CounterRegressed.into())
        }
        CounterCheck::Missing => Err(refuse("This passkey was just removed.")),
    }
}
