//! Every way a portal request can be refused: one [`Refusal`] each, with the
//! sentence a person reads, the HTTP status, and a stable snake_case
//! [`label`](Refusal::label) that the JSON API's `error` field, the audit
//! event's `outcome` and the ceremony metric all use.

use http::StatusCode;

use crate::policy::Unadmitted;
use crate::store::StoreError;
use crate::webauthn::CeremonyError;

/// Why a portal request was refused; each maps to one answer.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The store did not answer: 503.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    Method,
    /// Too many attempts: retry after this many seconds.
    #[error("rate limited")]
    RateLimited(u64),
    /// The relying party refused the authenticator's answer.
    #[error("ceremony: {0}")]
    Ceremony(#[from] CeremonyError),
    /// A body that is not the JSON the endpoint takes.
    #[error("malformed request")]
    Malformed,
    /// The authenticator's answer is not a WebAuthn credential.
    #[error("malformed credential")]
    MalformedCredential,
    /// A callback code whose record cannot be read.
    #[error("damaged link")]
    DamagedLink,
    /// A stored passkey whose key cannot be decoded.
    #[error("damaged passkey")]
    DamagedPasskey,
    /// A record of ours could not be encoded for the store.
    #[error("not stored")]
    NotStored,
    /// A state-changing request that did not come from the portal's own page.
    #[error("cross-site request to the portal")]
    NotFromPortal,
    /// A state-changing request that did not come from this app host's page.
    #[error("cross-site request to an app host")]
    NotFromSite,
    /// A form whose CSRF token does not match the session.
    #[error("stale form")]
    StaleForm,
    /// No ceremony state for this browser (timed out, used, other browser).
    #[error("ceremony expired")]
    CeremonyExpired,
    /// The user may not open the page (outside the rule's `allow`).
    #[error("user {0} not allowed")]
    NotAllowed(String),
    /// The user is no longer configured.
    #[error("user unknown")]
    UserUnknown,
    /// The user's `expires` has passed.
    #[error("user expired")]
    UserExpired,
    /// The user has no passkey that fits the rule; the text lists theirs.
    #[error("no fitting passkey")]
    NoFittingPasskey(String),
    /// The passkey used does not fit the rule; the text lists theirs.
    #[error("wrong authenticator")]
    WrongAuthenticator(String),
    #[error("unknown passkey")]
    UnknownPasskey,
    #[error("passkey of another user")]
    OtherUsersPasskey,
    /// A discoverable assertion without a user handle.
    #[error("no user handle")]
    NoUserHandle,
    #[error("passkey flagged")]
    PasskeyBlocked,
    #[error("passkey expired")]
    PasskeyExpired,
    /// Removed between the signature check and recording its use.
    #[error("passkey removed")]
    PasskeyRemoved,
    /// A passkey or token needs a name ("the passkey", "the token").
    #[error("label missing")]
    LabelMissing(&'static str),
    #[error("invite invalid")]
    InviteInvalid,
    /// The invite's user is gone or expired.
    #[error("invite for a gone user")]
    InviteUserGone,
    #[error("passkey already registered")]
    AlreadyRegistered,
    /// A signed-in session is needed.
    #[error("not signed in")]
    NotSignedIn,
    /// The session that began a mint is not the one finishing it.
    #[error("mint session changed")]
    SessionChanged,
    #[error("no rule chosen")]
    NoRuleChosen,
    /// A rule that takes no tokens or does not let the user in.
    #[error("rule {0} not mintable")]
    RuleNotMintable(String),
    #[error("zero lifetime")]
    ZeroLifetime,
    /// No passkey of the user fits every chosen rule.
    #[error("no passkey fits every rule")]
    NoPasskeyFitsAll,
    /// The passkey used does not fit every chosen rule.
    #[error("passkey does not fit every rule")]
    PasskeyMisfits,
}

pub(crate) type Result<T, E = Refusal> = std::result::Result<T, E>;

impl Refusal {
    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        use Refusal::*;
        match self {
            Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            NotFound => StatusCode::NOT_FOUND,
            Method => StatusCode::METHOD_NOT_ALLOWED,
            RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            NotFromPortal
            | NotFromSite
            | StaleForm
            | NotAllowed(_)
            | UserUnknown
            | UserExpired
            | WrongAuthenticator(_)
            | UnknownPasskey
            | OtherUsersPasskey
            | NoUserHandle
            | PasskeyBlocked
            | PasskeyExpired
            | PasskeyRemoved
            | NotSignedIn
            | SessionChanged
            | PasskeyMisfits => StatusCode::FORBIDDEN,
            Ceremony(_) | Malformed | MalformedCredential | DamagedLink | DamagedPasskey
            | NotStored | CeremonyExpired | NoFittingPasskey(_) | LabelMissing(_)
            | InviteInvalid | InviteUserGone | AlreadyRegistered | NoRuleChosen
            | RuleNotMintable(_) | ZeroLifetime | NoPasskeyFitsAll => StatusCode::BAD_REQUEST,
        }
    }

    /// The stable snake_case label: the JSON `error`, the audit `outcome`, the metric's `result`.
    pub fn label(&self) -> &'static str {
        use Refusal::*;
        match self {
            Store(_) => "unavailable",
            NotFound => "not_found",
            Method => "method_not_allowed",
            RateLimited(_) => "rate_limited",
            Ceremony(e) => ceremony_label(e),
            Malformed => "malformed_request",
            MalformedCredential => "malformed_credential",
            DamagedLink => "damaged_link",
            DamagedPasskey => "damaged_passkey",
            NotStored => "not_stored",
            NotFromPortal | NotFromSite => "cross_site",
            StaleForm => "stale_form",
            CeremonyExpired => "ceremony_expired",
            NotAllowed(_) => "not_allowed",
            UserUnknown => "user_unknown",
            UserExpired => "user_expired",
            NoFittingPasskey(_) => "no_fitting_passkey",
            WrongAuthenticator(_) => "wrong_authenticator",
            UnknownPasskey => "unknown_passkey",
            OtherUsersPasskey => "other_users_passkey",
            NoUserHandle => "no_user_handle",
            PasskeyBlocked => "passkey_blocked",
            PasskeyExpired => "passkey_expired",
            PasskeyRemoved => "passkey_removed",
            LabelMissing(_) => "label_missing",
            InviteInvalid => "invite_invalid",
            InviteUserGone => "invite_user_gone",
            AlreadyRegistered => "already_registered",
            NotSignedIn => "not_signed_in",
            SessionChanged => "session_changed",
            NoRuleChosen => "no_rule_chosen",
            RuleNotMintable(_) => "rule_not_mintable",
            ZeroLifetime => "zero_lifetime",
            NoPasskeyFitsAll => "no_passkey_fits_all",
            PasskeyMisfits => "passkey_misfits",
        }
    }

    /// What a person reads.
    pub fn message(&self) -> String {
        use Refusal::*;
        let text = match self {
            Store(_) => {
                "The sign-in service cannot reach its database right now. Please try again in a minute."
            }
            NotFound => "There is no such page.",
            Method => "This address does not accept that kind of request.",
            RateLimited(s) => {
                return format!("Too many attempts. Please wait {s} seconds and try again.");
            }
            Ceremony(e) => ceremony_message(e),
            Malformed => "The request was malformed.",
            MalformedCredential => "The authenticator's answer was malformed.",
            DamagedLink => "The sign-in link was damaged.",
            DamagedPasskey => "This passkey's record is damaged.",
            NotStored => "This step could not be recorded. Please start again.",
            NotFromPortal => {
                "This request did not come from the sign-in portal's own page, so it was refused."
            }
            NotFromSite => {
                "This request did not come from this site's own page, so it was refused."
            }
            StaleForm => "This form is out of date. Reload the page and try again.",
            CeremonyExpired => {
                "This attempt timed out, was already used, or was started in another browser. Please start again."
            }
            NotAllowed(user) => return format!("Your account ({user}) may not open this page."),
            UserUnknown => "This account no longer exists.",
            UserExpired => "This account has expired.",
            NoFittingPasskey(text) => return text.clone(),
            WrongAuthenticator(text) => return format!("Wrong authenticator. {text}"),
            UnknownPasskey => "This passkey is not registered here.",
            OtherUsersPasskey => "This passkey belongs to another account.",
            NoUserHandle => {
                "Your authenticator did not say whose passkey this is. Enter your user name and try again."
            }
            PasskeyBlocked => {
                "This passkey has been blocked because it looked copied. Use another passkey."
            }
            PasskeyExpired => "This passkey has expired.",
            PasskeyRemoved => "This passkey was just removed.",
            LabelMissing(what) => return format!("Please give {what} a name."),
            InviteInvalid => {
                "This invitation link is invalid, expired, or was already used. Ask for a new one."
            }
            InviteUserGone => {
                "This invitation is for an account that no longer exists or has expired."
            }
            AlreadyRegistered => {
                "This passkey is already registered. Use it to sign in, or register another authenticator."
            }
            NotSignedIn => "Sign in first.",
            SessionChanged => "Sign in again, then mint the token.",
            NoRuleChosen => "Choose at least one address for the token.",
            RuleNotMintable(name) => {
                return format!("\"{name}\" does not take tokens, or your account may not use it.");
            }
            ZeroLifetime => "A token must live at least one day.",
            NoPasskeyFitsAll => {
                "None of your passkeys is accepted by every address you chose; mint separate tokens."
            }
            PasskeyMisfits => "This passkey is not accepted by every address you chose.",
        };
        text.to_string()
    }

    /// The refusal for a user [`crate::policy::admit`] turned away.
    pub fn unadmitted(why: Unadmitted, user: &str) -> Refusal {
        match why {
            Unadmitted::Unknown => Refusal::UserUnknown,
            Unadmitted::Expired => Refusal::UserExpired,
            Unadmitted::NotAllowed => Refusal::NotAllowed(user.to_string()),
        }
    }

    /// The title of the page that shows this refusal.
    pub fn title(&self) -> &'static str {
        match self {
            Refusal::NotFound => "Not found",
            Refusal::RateLimited(_) => "Please wait",
            Refusal::Store(_) => "Temporarily unavailable",
            _ => "Something is not right",
        }
    }
}

fn ceremony_label(e: &CeremonyError) -> &'static str {
    match e {
        CeremonyError::UserNotVerified => "user_not_verified",
        CeremonyError::UserNotPresent => "user_not_present",
        CeremonyError::WrongOrigin => "wrong_origin",
        CeremonyError::CrossOrigin => "cross_origin",
        CeremonyError::ChallengeMismatch => "challenge_mismatch",
        CeremonyError::CounterRegressed => "counter_regressed",
        CeremonyError::BackupEligibilityChanged => "backup_eligibility_changed",
        CeremonyError::BadAttestation(_) => "bad_attestation",
        CeremonyError::CredentialIdLength(_) => "credential_id_length",
        CeremonyError::CredentialIdMismatch => "credential_id_mismatch",
        _ => "ceremony_failed",
    }
}

fn ceremony_message(e: &CeremonyError) -> &'static str {
    match e {
        CeremonyError::UserNotVerified => {
            "Your authenticator must ask for your PIN or fingerprint. It did not verify you, so this passkey cannot be used here."
        }
        CeremonyError::UserNotPresent => {
            "Your authenticator did not confirm that you are present. Please touch it when asked."
        }
        CeremonyError::WrongOrigin | CeremonyError::CrossOrigin => {
            "This sign-in did not happen on the portal's own page, so it was refused."
        }
        CeremonyError::ChallengeMismatch => {
            "This sign-in attempt timed out or was already used. Please try again."
        }
        CeremonyError::CounterRegressed => {
            "This passkey looks like it was copied (its counter went backwards). It has been blocked; use another passkey and check your account."
        }
        CeremonyError::BackupEligibilityChanged => {
            "This passkey changed in a way that is not allowed (it became synced). Please register it again."
        }
        CeremonyError::BadAttestation(_) => {
            "Your authenticator's proof of its model is not valid, so it cannot be registered."
        }
        CeremonyError::CredentialIdLength(_) => {
            "This passkey's id is not between 1 and 1023 bytes long, as WebAuthn requires, so it was refused. Use another passkey or authenticator."
        }
        CeremonyError::CredentialIdMismatch => {
            "Your browser named a different passkey than the one your authenticator made, so it was refused. Please try again; if it happens again, use another browser or authenticator."
        }
        _ => "Your authenticator's answer could not be verified. Please try again.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_snake_case_and_statuses_are_refusals() {
        let all = [
            Refusal::NotFound,
            Refusal::Method,
            Refusal::RateLimited(3),
            Refusal::Malformed,
            Refusal::NotFromPortal,
            Refusal::NotAllowed("bob".into()),
            Refusal::WrongAuthenticator("x".into()),
            Refusal::RuleNotMintable("r".into()),
            Refusal::Ceremony(CeremonyError::UserNotVerified),
        ];
        for r in all {
            let label = r.label();
            assert!(
                label.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{label}"
            );
            assert!(r.status().is_client_error(), "{label}");
            assert!(!r.message().is_empty());
        }
        assert_eq!(
            Refusal::NotAllowed("bob".into()).message(),
            "Your account (bob) may not open this page."
        );
    }
}
