//! Passkey ceremonies at the portal origin, on top of `webauthn-rs-core`.
//!
//! [`RelyingParty`] wraps one `WebauthnCore` configured for exactly the
//! portal's origin (no subdomains, no other port). Every ceremony demands user
//! verification: the options ask for `required`, and the library and
//! [`client_data`] refuse a response whose UV flag is clear whatever the page
//! asked for. Ceremony state never leaves the server; the portal keeps it in
//! the store.
//!
//! A registration records an [`AttestationProof`] only when the attestation
//! signature covers the authenticator data (see
//! [`trust::SIGNED_AUTHDATA_FORMATS`]), its certificate chain verifies to a
//! root of the config's [`trust::TrustStore`], and the certificate's AAGUID
//! extension, where present, names the authenticator data's AAGUID. Which
//! sets that proof reaches is decided per request by the trust store.
//!
//! Credential ids are held to what WebAuthn allows: 1 to 1023 bytes
//! ([`check_credential_id`]), at registration and for the id an assertion
//! names; a registration's `rawId` (and `id`) must be the credential id inside
//! the attested credential data, the id that is stored.

pub mod client_data;

use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::attestation::{FidoGenCeAaguid, validate_extension};
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationState, Credential as CoreCredential,
    ParsedAttestationData, PublicKeyCredential, RegisterPublicKeyCredential, RegistrationState,
    UserVerificationPolicy,
};

use crate::config::Portal;
use crate::model::AttestationProof;
use crate::trust::{self, TrustStore};

/// How long the browser gives the user for one ceremony.
pub const CEREMONY_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a ceremony was refused. Each variant maps to a message a person understands.
#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    #[error("the authenticator did not verify the user (UV flag clear)")]
    UserNotVerified,
    #[error("the authenticator did not report user presence (UP flag clear)")]
    UserNotPresent,
    #[error("the response came from another origin")]
    WrongOrigin,
    #[error("the ceremony ran in a cross-origin frame")]
    CrossOrigin,
    #[error("the response does not answer this challenge")]
    ChallengeMismatch,
    #[error("the sign counter went backwards: possible cloned authenticator")]
    CounterRegressed,
    #[error("the backup-eligible flag differs from the registered one")]
    BackupEligibilityChanged,
    #[error("the attestation statement is invalid: {0}")]
    BadAttestation(String),
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("the portal URL is not a valid WebAuthn origin")]
    BadOrigin,
    #[error("the credential id is {0} bytes long (WebAuthn allows 1 to 1023)")]
    CredentialIdLength(usize),
    #[error("rawId or id differs from the credential id in the authenticator data")]
    CredentialIdMismatch,
    #[error("ceremony refused: {0}")]
    Rejected(String),
}

impl From<WebauthnError> for CeremonyError {
    fn from(e: WebauthnError) -> Self {
        use WebauthnError as W;
        match e {
            W::UserNotVerified => Self::UserNotVerified,
            W::UserNotPresent => Self::UserNotPresent,
            W::InvalidRPOrigin | W::InvalidRPIDHash => Self::WrongOrigin,
            W::CredentialCrossOrigin => Self::CrossOrigin,
            W::MismatchedChallenge => Self::ChallengeMismatch,
            W::CredentialPossibleCompromise => Self::CounterRegressed,
            W::CredentialBackupEligibilityInconsistent => Self::BackupEligibilityChanged,
            W::AttestationCertificateAAGUIDMismatch
            | W::AttestationStatementSigInvalid
            | W::AttestationCredentialSubjectKeyMismatch
            | W::AttestationCertificateRequirementsNotMet
            | W::AttestationStatementX5CInvalid
            | W::AttestationNotSupported => Self::BadAttestation(format!("{e:?}")),
            other => Self::Rejected(format!("{other:?}")),
        }
    }
}

/// A verified registration, ready to be stored.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The credential id, base64url without padding.
    pub id: String,
    /// The webauthn-rs credential as JSON.
    pub passkey: String,
    pub aaguid: Uuid,
    /// What the attestation proved; `None`: nothing.
    pub attestation: Option<AttestationProof>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub counter: u32,
}

/// A verified assertion; the flags are those of its signed authenticator data.
#[derive(Debug, Clone, Copy)]
pub struct Asserted {
    pub counter: u32,
    pub backup_state: bool,
    pub backup_eligible: bool,
}

/// The lengths a credential id may have, in bytes (WebAuthn: at least 1, at most 1023).
pub const CREDENTIAL_ID_BYTES: std::ops::RangeInclusive<usize> = 1..=1023;

/// Refuse a credential id whose length WebAuthn does not allow.
pub fn check_credential_id(id: &[u8]) -> Result<(), CeremonyError> {
    if CREDENTIAL_ID_BYTES.contains(&id.len()) {
        Ok(())
    } else {
        Err(CeremonyError::CredentialIdLength(id.len()))
    }
}

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The WebAuthn user handle of a user: stable, opaque, 16 bytes.
pub fn user_handle(user: &str) -> Vec<u8> {
    let d = Sha256::digest(format!("stepgate user handle\0{user}").as_bytes());
    d[..16].to_vec()
}

/// The sign counter in raw authenticator data (bytes 33..37).
pub fn auth_data_counter(auth_data: &[u8]) -> Option<u32> {
    let b: [u8; 4] = auth_data.get(33..37)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// The relying party of the portal.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    core: WebauthnCore,
    origin: String,
}

impl RelyingParty {
    pub fn new(portal: &Portal) -> Result<Self, CeremonyError> {
        let url = url::Url::parse(&portal.origin).map_err(|_| CeremonyError::BadOrigin)?;
        let core = WebauthnCore::new_unsafe_experts_only(
            &portal.rp_name,
            &portal.rp_id,
            vec![url],
            CEREMONY_TIMEOUT,
            Some(false),
            Some(false),
        );
        Ok(RelyingParty {
            core,
            origin: portal.origin.clone(),
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Options for `navigator.credentials.create()` and the state to keep.
    pub fn begin_register(
        &self,
        user: &str,
        display_name: &str,
        exclude: Vec<Vec<u8>>,
    ) -> Result<(Value, RegistrationState), CeremonyError> {
        let builder = self
            .core
            .new_challenge_register_builder(&user_handle(user), user, display_name)?
            .attestation(AttestationConveyancePreference::Direct)
            .user_verification_policy(UserVerificationPolicy::Required)
            .require_resident_key(false)
            .exclude_credentials((!exclude.is_empty()).then(|| {
                exclude
                    .into_iter()
                    .collect::<Vec<webauthn_rs_core::proto::CredentialID>>()
            }));
        let (ccr, state) = self.core.generate_challenge_register(builder)?;
        let mut options = serde_json::to_value(&ccr.public_key)
            .map_err(|_| CeremonyError::Malformed("cannot encode options"))?;
        // Resident key *preferred*: discoverable where the authenticator can.
        if let Some(sel) = options
            .get_mut("authenticatorSelection")
            .and_then(Value::as_object_mut)
        {
            sel.insert("residentKey".into(), Value::from("preferred"));
        }
        Ok((options, state))
    }

    /// Verify a registration response; `trust` holds the roots an attestation may chain to.
    pub fn finish_register(
        &self,
        reg: &RegisterPublicKeyCredential,
        state: &RegistrationState,
        trust: &TrustStore,
    ) -> Result<Registered, CeremonyError> {
        client_data::check(
            &reg.response.client_data_json,
            &self.origin,
            "webauthn.create",
        )?;
        check_credential_id(&reg.raw_id)?;
        if reg.id != b64url(&reg.raw_id) {
            return Err(CeremonyError::CredentialIdMismatch);
        }
        let aaguid = client_data::attestation_aaguid(&reg.response.attestation_object)?;
        let cred = self.core.register_credential(reg, state, None)?;
        if cred.cred_id.as_slice() != reg.raw_id.as_slice() {
            return Err(CeremonyError::CredentialIdMismatch);
        }
        if !cred.user_verified {
            return Err(CeremonyError::UserNotVerified);
        }
        let attestation = prove(&cred, aaguid, trust)?;
        let passkey = serde_json::to_string(&cred)
            .map_err(|_| CeremonyError::Malformed("cannot encode credential"))?;
        Ok(Registered {
            id: b64url(cred.cred_id.as_slice()),
            passkey,
            aaguid,
            attestation,
            backup_eligible: cred.backup_eligible,
            backup_state: cred.backup_state,
            counter: cred.counter,
        })
    }

    /// Options for `navigator.credentials.get()`: `allow` empty means discoverable.
    pub fn begin_login(
        &self,
        allow: Vec<CoreCredential>,
    ) -> Result<(Value, AuthenticationState), CeremonyError> {
        let builder = self
            .core
            .new_challenge_authenticate_builder(allow, Some(UserVerificationPolicy::Required))?;
        let (rcr, state) = self.core.generate_challenge_authenticate(builder)?;
        let options = serde_json::to_value(&rcr.public_key)
            .map_err(|_| CeremonyError::Malformed("cannot encode options"))?;
        Ok((options, state))
    }

    /// Verify an assertion made with `cred` (whose counter is the stored one).
    pub fn finish_login(
        &self,
        rsp: &PublicKeyCredential,
        state: &AuthenticationState,
        cred: &CoreCredential,
    ) -> Result<Asserted, CeremonyError> {
        client_data::check(&rsp.response.client_data_json, &self.origin, "webauthn.get")?;
        // UV is demanded here whatever the state says.
        let flags = rsp
            .response
            .authenticator_data
            .get(32)
            .copied()
            .ok_or(CeremonyError::Malformed("authenticatorData too short"))?;
        let r = self.core.authenticate_single_credential(rsp, state, cred)?;
        if flags & 0x04 == 0 || !r.user_verified() {
            return Err(CeremonyError::UserNotVerified);
        }
        Ok(Asserted {
            counter: r.counter(),
            backup_state: r.backup_state(),
            backup_eligible: r.backup_eligible(),
        })
    }
}

/// What a verified registration's attestation proves about its model, if anything.
///
/// webauthn-rs has checked the statement's signature. Here: the format must be
/// one whose signature covers the authenticator data, the statement must carry
/// a certificate chain (not self attestation), that chain must verify to a
/// configured root, and the signing certificate's AAGUID extension, where
/// present, must name the authenticator data's AAGUID (refused otherwise).
fn prove(
    cred: &CoreCredential,
    aaguid: Uuid,
    trust: &TrustStore,
) -> Result<Option<AttestationProof>, CeremonyError> {
    let format = serde_json::to_value(&cred.attestation_format)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if !trust::SIGNED_AUTHDATA_FORMATS.contains(&format.as_str()) {
        tracing::debug!(%format, "this attestation format does not sign the authenticator data: no model proven");
        return Ok(None);
    }
    let chain = match &cred.attestation.data {
        ParsedAttestationData::Basic(c)
        | ParsedAttestationData::AttCa(c)
        | ParsedAttestationData::AnonCa(c) => c,
        _ => return Ok(None),
    };
    let Some(leaf) = chain.first() else {
        return Ok(None);
    };
    validate_extension::<FidoGenCeAaguid>(leaf, aaguid.as_bytes())?;
    let Some(list) = trust.ca_list() else {
        return Ok(None);
    };
    let root = match cred.verify_attestation(list) {
        Ok(Some(ca)) => trust::fingerprint(ca),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(error = ?e, "attestation does not chain to a configured root");
            None
        }
    };
    Ok(root.map(|root| AttestationProof {
        format,
        root,
        aaguid,
    }))
}

/// Decode a stored webauthn-rs credential.
pub fn decode_passkey(json: &str) -> Option<CoreCredential> {
    serde_json::from_str(json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_ids_are_1_to_1023_bytes() {
        for ok in [1, 16, 1023] {
            assert!(check_credential_id(&vec![0; ok]).is_ok(), "{ok}");
        }
        for bad in [0, 1024, 1100, 65535] {
            assert!(
                matches!(
                    check_credential_id(&vec![0; bad]),
                    Err(CeremonyError::CredentialIdLength(n)) if n == bad
                ),
                "{bad}"
            );
        }
    }
}
