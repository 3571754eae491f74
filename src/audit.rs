//! Audit events: one structured log event per ceremony, grant, denial,
//! revocation and reload, under the tracing target `stepgate::audit`.
//!
//! Each function takes only what may be logged — user names, rule names,
//! credential labels, outcomes, client addresses. Tokens, codes and cookie
//! values never reach these functions, so they can never reach the log.

use std::net::IpAddr;

/// The tracing target every audit event uses (filter on it to get the audit trail).
pub const TARGET: &str = "stepgate::audit";

/// What a ceremony was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    Enroll,
    SignIn,
    StepUp,
    /// The assertion that mints a client token.
    MintToken,
}

impl CeremonyKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Enroll => "enroll",
            Self::SignIn => "sign_in",
            Self::StepUp => "step_up",
            Self::MintToken => "mint_token",
        }
    }
}

/// A passkey ceremony finished (`outcome` is "ok" or the refusal's label,
/// such as "user_not_verified"; the ceremony metric counts the same label).
pub fn ceremony(
    kind: CeremonyKind,
    user: Option<&str>,
    rule: Option<&str>,
    credential: Option<&str>,
    outcome: &str,
    client_ip: IpAddr,
) {
    crate::telemetry::metrics().ceremony(kind.as_str(), outcome);
    tracing::info!(
        target: TARGET,
        event = "ceremony",
        kind = kind.as_str(),
        user = user.unwrap_or("-"),
        rule = rule.unwrap_or("-"),
        credential = credential.unwrap_or("-"),
        outcome,
        client_ip = %client_ip,
        "ceremony {} {}", kind.as_str(), outcome
    );
}

/// A grant was recorded for an app session.
pub fn grant(user: &str, rule: &str, host: &str, credential: &str, client_ip: IpAddr) {
    tracing::info!(
        target: TARGET,
        event = "grant",
        user,
        rule,
        host,
        credential,
        outcome = "ok",
        client_ip = %client_ip,
        "grant for rule {rule}"
    );
}

/// A request was refused (403) or sent to a ceremony (401/302).
pub fn denial(
    user: Option<&str>,
    rule: Option<&str>,
    host: &str,
    path: &str,
    reason: &str,
    client_ip: IpAddr,
) {
    tracing::info!(
        target: TARGET,
        event = "denial",
        user = user.unwrap_or("-"),
        rule = rule.unwrap_or("-"),
        host,
        path,
        outcome = reason,
        client_ip = %client_ip,
        "denied: {reason}"
    );
}

/// Something was revoked. `by` is who did it ("cli", "account", "logout",
/// "config_reload"), `what` the kind ("credential", "session",
/// "other_sessions", "all_sessions" (client tokens kept),
/// "all_sessions_and_tokens", "token", "all_tokens"), `target` its
/// public id or label; `user` whose it was, when known.
pub fn revocation(by: &str, user: Option<&str>, what: &str, target: &str, ok: bool) {
    tracing::info!(
        target: TARGET,
        event = "revocation",
        by,
        user = user.unwrap_or("-"),
        what,
        target,
        outcome = if ok { "ok" } else { "not_found" },
        "revoked {what} {target}"
    );
}

/// A config reload was attempted.
pub fn reload(trigger: &str, ok: bool, changes: &[String], errors: Option<usize>) {
    if ok {
        tracing::info!(
            target: TARGET,
            event = "reload",
            trigger,
            outcome = "ok",
            changes = %changes.join("; "),
            "config reloaded ({} changes)", changes.len()
        );
    } else {
        tracing::warn!(
            target: TARGET,
            event = "reload",
            trigger,
            outcome = "error",
            errors = errors.unwrap_or(0),
            "config reload failed; keeping the running config"
        );
    }
}
