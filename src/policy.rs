//! `decide`: the single decision point for both the inline proxy and forward-auth.
//!
//! Pure and synchronous: it sees the rule (or none), what the request's cookie
//! resolved to, the configured users and the time, and returns what to do.
//! Routing, cookie decoding and store I/O happen before; writing the answer after.
//!
//! Only assertions count for `step_up` (a registration records none), and each
//! counts only while the credential it was made with stands: it still exists,
//! is not flagged or expired (read from the store with the session), and — for
//! `authenticators` — its stored attestation proof is admitted by the set
//! under the trust anchors of the config snapshot `decide` is given.

use std::time::Duration;

use crate::config::{Policy, Rule, Runtime, Scope, StepUp};
use crate::session::{AppView, CredentialStanding, Timestamp, Verification};
use crate::webauthn::TrustStore;

/// What the request's cookie resolved to.
#[derive(Debug, Clone, Copy)]
pub enum SessionState<'a> {
    /// No cookie, or a cookie that does not resolve to a live session.
    None,
    /// The store did not answer.
    Unavailable,
    /// A live app session (expiry already checked by the session layer).
    Live(&'a AppView),
}

/// Who the upstream is told the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Unix seconds of the UV ceremony that counted for this request.
    pub verified_at: Option<Timestamp>,
    pub rule: String,
}

/// Why a step-up is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUpReason {
    /// No ceremony counts for this rule yet.
    Missing,
    /// The ceremony that would count is older than `max_age`.
    TooOld,
    /// No counting ceremony used an authenticator of the required sets.
    WrongAuthenticator,
    /// No counting ceremony used a device-bound (not synced) credential.
    NotDeviceBound,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    NoRule,
    RuleDenies,
    NotAllowed,
    UserExpired,
}

impl DenyReason {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoRule => "no-rule",
            Self::RuleDenies => "rule-denies",
            Self::NotAllowed => "not-allowed",
            Self::UserExpired => "user-expired",
        }
    }
}

/// The outcome for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Pass; `identity` is `None` for bypass rules.
    Allow {
        identity: Option<Identity>,
    },
    /// Sign in first.
    Login,
    /// Signed in, but a (new) ceremony is needed for this rule.
    StepUp {
        reason: StepUpReason,
        max_age: Option<Duration>,
    },
    Deny(DenyReason),
    /// The store could not be asked: 503.
    Unavailable,
}

/// Decide what happens to a request that routed to `rule` (or to no rule).
pub fn decide(
    config: &Runtime,
    rule: Option<&Rule>,
    session: SessionState<'_>,
    now: Timestamp,
) -> Decision {
    let Some(rule) = rule else {
        return Decision::Deny(DenyReason::NoRule);
    };
    match rule.policy {
        Policy::Deny => return Decision::Deny(DenyReason::RuleDenies),
        Policy::Bypass => return Decision::Allow { identity: None },
        Policy::Passkey => {}
    }
    let view = match session {
        SessionState::Unavailable => return Decision::Unavailable,
        SessionState::None => return Decision::Login,
        SessionState::Live(view) => view,
    };
    // A session resting on a credential now gone or flagged (a possible clone) is no session.
    let mut rests_on = view
        .portal
        .signed_in_with
        .iter()
        .chain(view.portal.last_uv.as_ref().map(|v| &v.credential_id));
    if rests_on.any(|id| view.standing(id).is_none_or(|c| c.flagged)) {
        return Decision::Login;
    }
    let name = &view.app.user;
    // A user removed from the config has no access, even with a live session.
    let Some(user) = config.users.get(name) else {
        return Decision::Login;
    };
    if !user.is_active(now) {
        return Decision::Deny(DenyReason::UserExpired);
    }
    if !rule.allows(name, user) {
        return Decision::Deny(DenyReason::NotAllowed);
    }
    let verification = match &rule.step_up {
        None => view.portal.last_uv.as_ref().filter(|v| {
            view.standing(&v.credential_id)
                .is_some_and(|c| c.is_usable(now))
        }),
        Some(step_up) => match satisfying(step_up, rule, view, &config.trust, now) {
            Ok(v) => Some(v),
            Err(reason) => {
                return Decision::StepUp {
                    reason,
                    max_age: step_up.max_age,
                };
            }
        },
    };
    Decision::Allow {
        identity: Some(Identity {
            user: name.clone(),
            groups: user.groups.clone(),
            name: user.name.clone(),
            email: user.email.clone(),
            verified_at: verification.map(|v| v.at),
            rule: rule.name.clone(),
        }),
    }
}

/// The assertion that meets `step_up`, or why none does.
fn satisfying<'a>(
    step_up: &StepUp,
    rule: &Rule,
    view: &'a AppView,
    trust: &TrustStore,
    now: Timestamp,
) -> Result<&'a Verification, StepUpReason> {
    let candidates = match step_up.scope {
        Scope::Rule => view
            .grants
            .iter()
            .filter(|g| g.rule == rule.name)
            .map(|g| &g.verification)
            .collect::<Vec<_>>(),
        Scope::Session => view
            .grants
            .iter()
            .map(|g| &g.verification)
            .chain(view.portal.last_uv.as_ref())
            .collect(),
    };
    let mut reason = StepUpReason::Missing;
    let mut best: Option<&Verification> = None;
    for v in candidates {
        // An assertion whose credential is gone, flagged or expired counts for nothing.
        let Some(cred) = view.standing(&v.credential_id).filter(|c| c.is_usable(now)) else {
            continue;
        };
        let fresh = step_up
            .max_age
            .is_none_or(|age| v.at <= now && now - v.at <= age.as_secs() as i64);
        let model_ok = model_fits(step_up, trust, cred, now);
        // The assertion's own signed flag and the registered one must both say device-bound.
        let bound_ok = binding_fits(step_up, v.backup_eligible || cred.backup_eligible);
        if fresh && model_ok && bound_ok {
            if best.is_none_or(|b| v.at > b.at) {
                best = Some(v);
            }
            continue;
        }
        // Report the most fundamental unmet need: model, then binding, then age.
        let r = if !model_ok {
            StepUpReason::WrongAuthenticator
        } else if !bound_ok {
            StepUpReason::NotDeviceBound
        } else {
            StepUpReason::TooOld
        };
        if reason == StepUpReason::Missing || rank(r) > rank(reason) {
            reason = r;
        }
    }
    best.ok_or(reason)
}

/// Is a credential of this standing, under `trust` at `now`, in one of the rule's `authenticators` sets?
fn model_fits(
    step_up: &StepUp,
    trust: &TrustStore,
    cred: &CredentialStanding,
    now: Timestamp,
) -> bool {
    step_up.authenticators.is_empty()
        || step_up
            .authenticators
            .iter()
            .any(|s| trust.admits(s, cred.attestation.as_ref(), now))
}

/// Does a credential with this backup-eligible flag meet the rule's `device_bound`?
fn binding_fits(step_up: &StepUp, backup_eligible: bool) -> bool {
    !step_up.device_bound || !backup_eligible
}

/// Could a credential of this standing ever meet `step_up` (its age aside)?
/// The portal uses this to offer only credentials that can satisfy a rule.
pub fn credential_fits(
    step_up: &StepUp,
    trust: &TrustStore,
    cred: &CredentialStanding,
    now: Timestamp,
) -> bool {
    cred.is_usable(now)
        && model_fits(step_up, trust, cred, now)
        && binding_fits(step_up, cred.backup_eligible)
}

fn rank(r: StepUpReason) -> u8 {
    match r {
        StepUpReason::Missing => 0,
        StepUpReason::WrongAuthenticator => 1,
        StepUpReason::NotDeviceBound => 2,
        StepUpReason::TooOld => 3,
    }
}

#[cfg(test)]
mod tests;
