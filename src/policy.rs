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
//!
//! A rule with `tokens:` judges a request that carries a client token by the
//! token alone, as a session whose only ceremony is the mint: its rules are
//! its scope, its mint time its verification time, the minting passkey its
//! credential (whose standing counts as for any assertion). Without
//! `tokens.sessions`, such a rule accepts nothing but a token.

use std::time::Duration;

use crate::client_token::TokenView;
use crate::config::{Policy, Rule, Runtime, Scope, StepUp, User, duration};
pub use crate::model::Identity;
use crate::model::{AppView, CredentialStanding, Timestamp, Verification};
use crate::trust::TrustStore;

/// What the request's cookie resolved to.
#[derive(Debug, Clone, Copy)]
pub enum SessionState<'a> {
    /// No cookie, or a cookie that does not resolve to a live session.
    None,
    /// The store did not answer.
    Unavailable,
    /// A live app session (expiry already checked by the session layer).
    Live(&'a AppView),
    /// A client token was presented where the rule's `tokens.from` says; the
    /// request is judged by it alone. `None`: malformed, sent twice, unknown,
    /// expired or revoked.
    Token(Option<&'a TokenView>),
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

/// Why a rule that takes client tokens does not take this request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenReason {
    /// No token where the rule's tokens travel (and sessions do not count here).
    Missing,
    /// Malformed, sent twice, unknown, expired or revoked, or its user is gone.
    Invalid,
    /// Minted for other rules.
    OtherRule,
    /// The passkey that minted it is gone, flagged or expired.
    CredentialGone,
    /// Its mint ceremony does not meet the rule's `step_up`.
    StepUp(StepUpReason),
}

impl TokenReason {
    /// A short name for logs and the `error_description` of the challenge.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "a client token is required",
            Self::Invalid => "the token is unknown, expired or revoked",
            Self::OtherRule => "the token was not minted for this address",
            Self::CredentialGone => "the passkey that minted the token is gone or blocked",
            Self::StepUp(StepUpReason::TooOld) => "the token is older than this address allows",
            Self::StepUp(_) => "the token was minted with a passkey this address does not accept",
        }
    }
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
    /// The stable snake_case label of audit events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoRule => "no_rule",
            Self::RuleDenies => "rule_denies",
            Self::NotAllowed => "not_allowed",
            Self::UserExpired => "user_expired",
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
    /// A rule that takes client tokens got none it accepts: 401 with the
    /// challenge of the rule's `tokens.from`, never a redirect.
    TokenRefused(TokenReason),
    /// Too many failed token checks from this client: 429 after this many seconds.
    RateLimited(u64),
    /// The store could not be asked: 503.
    Unavailable,
}

/// Why a user is not admitted to a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unadmitted {
    /// Not (or no longer) in `users:`.
    Unknown,
    /// Past the user's `expires`.
    Expired,
    /// Outside the rule's `allow`.
    NotAllowed,
}

impl Unadmitted {
    /// The refusal `decide` gives a known user who is not admitted.
    fn deny_reason(self) -> DenyReason {
        match self {
            Unadmitted::Expired => DenyReason::UserExpired,
            Unadmitted::Unknown | Unadmitted::NotAllowed => DenyReason::NotAllowed,
        }
    }
}

/// The one admission check: is `name` a configured user, active at `now`,
/// and let in by `rule`'s `allow` (when a rule is given)? Their config if so.
/// `decide`, the portal (sign-in, sessions, sign in once, tokens) and
/// `stepgate explain` all ask this.
pub fn admit<'a>(
    config: &'a Runtime,
    name: &str,
    rule: Option<&Rule>,
    now: Timestamp,
) -> Result<&'a User, Unadmitted> {
    let user = config.users.get(name).ok_or(Unadmitted::Unknown)?;
    if !user.is_active(now) {
        return Err(Unadmitted::Expired);
    }
    if rule.is_some_and(|r| !r.allows(name, user)) {
        return Err(Unadmitted::NotAllowed);
    }
    Ok(user)
}

/// A rule's `step_up` in words, with its authenticator sets by their display
/// names: "a check with your PIN or fingerprint at most 5m old, done for this
/// page, on an attested YubiKey 5, from a device-bound (not synced) passkey".
pub struct StepUpText<'a> {
    step_up: &'a StepUp,
    names: Vec<String>,
}

impl<'a> StepUpText<'a> {
    /// The words for `step_up` under `config`'s authenticator names.
    pub fn new(config: &Runtime, step_up: &'a StepUp) -> Self {
        StepUpText {
            step_up,
            names: config.authenticator_names(&step_up.authenticators),
        }
    }
}

impl std::fmt::Display for StepUpText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.step_up;
        f.write_str("a check with your PIN or fingerprint")?;
        if let Some(age) = s.max_age {
            write!(f, " at most {} old", duration::Formatted(age))?;
        }
        f.write_str(match s.scope {
            Scope::Rule => ", done for this page",
            Scope::Session => ", done anywhere in this sign-in",
        })?;
        if !self.names.is_empty() {
            write!(f, ", on an attested {}", self.names.join(" or "))?;
        }
        if s.device_bound {
            f.write_str(", from a device-bound (not synced) passkey")?;
        }
        Ok(())
    }
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
    if let Some(tokens) = &rule.tokens {
        match session {
            SessionState::Unavailable => return Decision::Unavailable,
            SessionState::Token(found) => return decide_token(config, rule, found, now),
            SessionState::None | SessionState::Live(_) if !tokens.sessions => {
                return Decision::TokenRefused(TokenReason::Missing);
            }
            _ => {}
        }
    }
    let view = match session {
        SessionState::Unavailable => return Decision::Unavailable,
        SessionState::None | SessionState::Token(_) => return Decision::Login,
        SessionState::Live(view) => view,
    };
    if rests_on_a_fallen_credential(view) {
        return Decision::Login;
    }
    let name = &view.app.user;
    let user = match admit(config, name, Some(rule), now) {
        Ok(user) => user,
        // A user removed from the config has no access, even with a live session.
        Err(Unadmitted::Unknown) => return Decision::Login,
        Err(why) => return Decision::Deny(why.deny_reason()),
    };
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

/// Does the session rest on a credential now gone or flagged (a possible
/// clone)? Then it is no session.
fn rests_on_a_fallen_credential(view: &AppView) -> bool {
    let mut rests_on = view
        .portal
        .signed_in_with
        .iter()
        .chain(view.portal.last_uv.as_ref().map(|v| &v.credential_id));
    rests_on.any(|id| view.standing(id).is_none_or(|c| c.flagged))
}

/// Judge a request by the client token it carries (`None`: none that counts).
fn decide_token(
    config: &Runtime,
    rule: &Rule,
    found: Option<&TokenView>,
    now: Timestamp,
) -> Decision {
    let refused = Decision::TokenRefused;
    let Some(view) = found.filter(|v| v.token.is_live(now)) else {
        return refused(TokenReason::Invalid);
    };
    let token = &view.token;
    if !token.covers(&rule.name) {
        return refused(TokenReason::OtherRule);
    }
    let v = &token.verification;
    let Some(cred) = view
        .credential
        .as_ref()
        .filter(|c| c.id == v.credential_id && c.is_usable(now))
    else {
        return refused(TokenReason::CredentialGone);
    };
    let user = match admit(config, &token.user, Some(rule), now) {
        Ok(user) => user,
        Err(Unadmitted::Unknown) => return refused(TokenReason::Invalid),
        Err(why) => return Decision::Deny(why.deny_reason()),
    };
    // The mint ceremony was done for the token's rules, so `scope` is met by
    // `covers`; age, model and binding are judged as for any assertion.
    if let Some(step_up) = &rule.step_up
        && let Err(reason) = assess(step_up, &config.trust, v, cred, now)
    {
        return refused(TokenReason::StepUp(reason));
    }
    Decision::Allow {
        identity: Some(Identity {
            user: token.user.clone(),
            groups: user.groups.clone(),
            name: user.name.clone(),
            email: user.email.clone(),
            verified_at: Some(v.at),
            rule: rule.name.clone(),
        }),
    }
}

/// Does assertion `v`, made with a credential of standing `cred`, meet
/// `step_up` at `now`? If not, the most fundamental unmet need: model, then
/// binding, then age.
fn assess(
    step_up: &StepUp,
    trust: &TrustStore,
    v: &Verification,
    cred: &CredentialStanding,
    now: Timestamp,
) -> Result<(), StepUpReason> {
    let fresh = step_up
        .max_age
        .is_none_or(|age| v.at <= now && now - v.at <= age.as_secs() as i64);
    if !model_fits(step_up, trust, cred, now) {
        return Err(StepUpReason::WrongAuthenticator);
    }
    // The assertion's own signed flag and the registered one must both say device-bound.
    if !binding_fits(step_up, v.backup_eligible || cred.backup_eligible) {
        return Err(StepUpReason::NotDeviceBound);
    }
    if !fresh {
        return Err(StepUpReason::TooOld);
    }
    Ok(())
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
        match assess(step_up, trust, v, cred, now) {
            Ok(()) => {
                if best.is_none_or(|b| v.at > b.at) {
                    best = Some(v);
                }
            }
            Err(r) => {
                if reason == StepUpReason::Missing || rank(r) > rank(reason) {
                    reason = r;
                }
            }
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
#[cfg(test)]
mod token_tests;
