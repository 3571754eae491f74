//! `stepgate check` and `stepgate explain`: the config as the gateway sees it.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use crate::config::{self, Policy, Principal, Rule, Runtime};
use crate::model::{AppView, CredentialStanding};
use crate::policy::{self, Decision, SessionState, StepUpText, Unadmitted};
use crate::routing::{RouteRequest, normalize_host, normalize_path};
use crate::session::lifecycle::{new_app_session, new_portal_session};

use super::exit;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Validate a config file: every error and warning on `err`, a summary on `out`.
pub fn check(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<u8> {
    match config::check_file(path, now()) {
        Ok(c) => {
            for w in &c.warnings {
                writeln!(err, "warning: {w}")?;
            }
            trust_warnings(path, &c.runtime, err)?;
            writeln!(
                out,
                "{}: ok ({} rules, {} users)",
                path.display(),
                c.runtime.rules.len(),
                c.runtime.users.len()
            )?;
            Ok(exit::OK)
        }
        Err(e) => {
            let errors = e.errors().count();
            for d in e.errors() {
                writeln!(err, "error: {d}")?;
            }
            for d in
                e.0.iter()
                    .filter(|d| d.severity == config::Severity::Warning)
            {
                writeln!(err, "warning: {d}")?;
            }
            writeln!(err, "{}: {errors} error(s)", path.display())?;
            Ok(exit::FAILED)
        }
    }
}

/// What loading the attestation trust anchors would report: problems with an
/// MDS blob (it admits nothing then), or a file `serve` could not read.
fn trust_warnings(path: &Path, rt: &Runtime, err: &mut dyn Write) -> std::io::Result<()> {
    match crate::trust::TrustStore::load(&rt.authenticators, now()) {
        Ok(trust) => {
            for w in trust.warnings() {
                writeln!(err, "warning: {}: {w}", path.display())?;
            }
        }
        Err(e) => writeln!(
            err,
            "warning: {}: authenticators: {e} (serve refuses to start until it can be read)",
            path.display()
        )?,
    }
    Ok(())
}

/// Arguments of `stepgate explain`.
#[derive(Debug, Clone)]
pub struct ExplainArgs {
    pub url: String,
    pub method: String,
    pub user: Option<String>,
    pub ip: IpAddr,
}

/// Print the rule a URL falls under and what it needs.
pub fn explain(
    path: &Path,
    args: &ExplainArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let checked = match config::check_file(path, now()) {
        Ok(c) => c,
        Err(e) => {
            for d in e.errors() {
                writeln!(err, "error: {d}")?;
            }
            return Ok(exit::FAILED);
        }
    };
    explain_with(&checked.runtime, args, out)
}

/// `explain` against an already compiled config.
pub fn explain_with(rt: &Runtime, args: &ExplainArgs, out: &mut dyn Write) -> std::io::Result<u8> {
    let (method, host, path) = match described(args) {
        Ok(parts) => parts,
        Err(why) => {
            writeln!(out, "{why}")?;
            return Ok(exit::DENIED);
        }
    };
    let req = RouteRequest {
        host: &host,
        path: &path,
        method: &method,
        client_ip: args.ip,
    };
    writeln!(out, "request: {method} {host}{path} from {}", args.ip)?;
    let (index, rule) = match rt.route(&req) {
        Ok(Some(found)) => found,
        Ok(None) => {
            writeln!(out, "denied: no rule matches")?;
            return Ok(exit::DENIED);
        }
        Err(e) => {
            writeln!(out, "bad request (400): {e}")?;
            return Ok(exit::DENIED);
        }
    };
    writeln!(out, "rule: {} (rules[{index}])", rule.name)?;
    explain_rule(rt, rule, out)?;
    if rule.policy != Policy::Passkey {
        return Ok(exit::OK);
    }
    explain_tokens(rule, out)?;
    if let Some(name) = &args.user {
        explain_user(rt, rule, name, out)?;
    }
    Ok(exit::OK)
}

/// The method, normalised host and normalised path `args` describe, or the
/// line that says why it is no request.
fn described(args: &ExplainArgs) -> Result<(String, String, String), String> {
    let url = match url::Url::parse(&args.url) {
        Ok(u) if u.has_host() => u,
        _ => {
            return Err(format!(
                "bad request: \"{}\" is not an absolute URL like https://app.example.com/path",
                args.url
            ));
        }
    };
    let host = normalize_host(url.host_str().unwrap_or_default())
        .map_err(|e| format!("bad request (400): host: {e}"))?;
    // `Url` has already resolved dot-segments; explain the path as sent on the wire.
    let raw_path = raw_path_of(&args.url).unwrap_or_else(|| url.path().to_string());
    let path = normalize_path(&raw_path).map_err(|e| format!("bad request (400): path: {e}"))?;
    Ok((args.method.to_ascii_uppercase(), host, path))
}

/// The rule's policy, upstream, `allow` and `step_up`.
fn explain_rule(rt: &Runtime, rule: &Rule, out: &mut dyn Write) -> std::io::Result<()> {
    let policy = match rule.policy {
        Policy::Bypass => "bypass (no sign-in)",
        Policy::Deny => "deny (403 for everyone)",
        Policy::Passkey => "passkey (sign-in with a UV passkey)",
    };
    writeln!(out, "policy: {policy}")?;
    match &rule.upstream {
        Some(up) => writeln!(out, "upstream: {up}")?,
        None => writeln!(out, "upstream: none (forward-auth only)")?,
    }
    if rule.policy != Policy::Passkey {
        return Ok(());
    }
    match &rule.allow {
        None => writeln!(out, "allow: any configured user")?,
        Some(list) => {
            let names: Vec<String> = list
                .iter()
                .map(|p| match p {
                    Principal::User(u) => format!("user:{u}"),
                    Principal::Group(g) => format!("group:{g}"),
                })
                .collect();
            writeln!(out, "allow: {}", names.join(", "))?;
        }
    }
    match &rule.step_up {
        None => writeln!(out, "step_up: none (any signed-in session)"),
        Some(s) => writeln!(out, "step_up: {}", StepUpText::new(rt, s)),
    }
}

/// Whether `name` is admitted, and what [`policy::decide`] does with a
/// browser session of theirs just signed in with a passkey (no step-up yet).
fn explain_user(rt: &Runtime, rule: &Rule, name: &str, out: &mut dyn Write) -> std::io::Result<()> {
    let now = now();
    match policy::admit(rt, name, Some(rule), now) {
        Err(Unadmitted::Unknown) => return writeln!(out, "user {name}: not in the config: denied"),
        Err(Unadmitted::Expired) => return writeln!(out, "user {name}: expired: denied"),
        Err(Unadmitted::NotAllowed) => {
            return writeln!(out, "user {name}: not in allow: denied (403)");
        }
        Ok(_) => writeln!(out, "user {name}: passes allow")?,
    }
    let view = just_signed_in(rt, name, now);
    let said = match policy::decide(rt, Some(rule), SessionState::Live(&view), now) {
        Decision::Allow { .. } => "let in".to_string(),
        Decision::StepUp { .. } => match &rule.step_up {
            Some(s) => format!("sent to the portal for {}", StepUpText::new(rt, s)),
            None => "sent to the portal".to_string(),
        },
        Decision::TokenRefused(reason) => format!("refused (401): {}", reason.as_str()),
        Decision::Deny(reason) => format!("denied (403): {}", reason.as_str()),
        Decision::Login => "sent to sign in".to_string(),
        Decision::RateLimited(_) | Decision::Unavailable => "not judged".to_string(),
    };
    writeln!(out, "signed in as {name}, no step-up yet: {said}")
}

/// A browser session of `name` just signed in with a standing passkey, with
/// no assertion and no grant: what a first visit after signing in brings.
fn just_signed_in(rt: &Runtime, name: &str, now: i64) -> AppView {
    let credential = "explain";
    let mut portal = new_portal_session(name, None, None, &rt.session, now);
    portal.signed_in_with = Some(credential.to_string());
    AppView {
        app: new_app_session(&portal, "explain", &rt.session, now),
        portal,
        grants: Vec::new(),
        credentials: vec![CredentialStanding {
            id: credential.to_string(),
            flagged: false,
            expires_at: None,
            backup_eligible: false,
            attestation: None,
        }],
    }
}

/// Whether a client token would be accepted, where from, and what the app is told.
fn explain_tokens(rule: &Rule, out: &mut dyn Write) -> std::io::Result<()> {
    match &rule.tokens {
        None => writeln!(out, "tokens: not accepted (a browser session only)")?,
        Some(t) => {
            let sessions = if t.sessions {
                "a request without one is judged by its browser session"
            } else {
                "nothing else is accepted: a browser session alone gets 401"
            };
            writeln!(
                out,
                "tokens: accepted from {}; {sessions}",
                t.from.describe()
            )?;
            let kept = if t.keep {
                "passed on to the app (keep: true)"
            } else {
                "removed before proxying"
            };
            writeln!(out, "token header: {kept}")?;
        }
    }
    if let Some(m) = &rule.identity_headers {
        let names: Vec<&str> = m.names().map(|n| n.as_str()).collect();
        writeln!(
            out,
            "identity headers: Remote-User and the rest, and {}",
            names.join(", ")
        )?;
    }
    Ok(())
}

/// The path of an absolute URL exactly as written (before any resolution).
fn raw_path_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let start = rest.find('/')?;
    let path = &rest[start..];
    let end = path.find(['?', '#']).unwrap_or(path.len());
    Some(path[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explained(yaml: &str, url: &str, user: Option<&str>) -> (u8, String) {
        let rt = crate::config::test_runtime(yaml);
        let args = ExplainArgs {
            url: url.into(),
            method: "get".into(),
            user: user.map(str::to_string),
            ip: IpAddr::from([127, 0, 0, 1]),
        };
        let mut out = Vec::new();
        let code = match explain_with(&rt, &args, &mut out) {
            Ok(c) => c,
            Err(e) => panic!("write: {e}"),
        };
        (code, String::from_utf8_lossy(&out).into_owned())
    }

    const YAML: &str = r#"
listen: 127.0.0.1:8080
portal: { url: "https://auth.home.lab" }
secrets: { cookie_keys: [/dev/null] }
users:
  alice: { groups: [admins] }
  bob: {}
  old: { expires: 2020-01-01T00:00:00Z }
upstreams: { demo: "builtin:whoami" }
rules:
  - { name: admin, hosts: [app.home.lab], paths: [/admin/**], upstream: demo, policy: passkey, allow: [group:admins], step_up: { max_age: 5m, device_bound: true } }
  - { name: git, hosts: [app.home.lab], paths: [/git/**], upstream: demo, policy: passkey, tokens: { from: basic } }
  - { name: app, hosts: [app.home.lab], upstream: demo, policy: passkey }
"#;

    /// What `decide` does with a session just signed in, for each kind of user and rule.
    #[test]
    fn explain_says_what_decide_does_for_a_user() {
        let (code, out) = explained(YAML, "https://app.home.lab/admin/x", Some("alice"));
        assert_eq!(code, exit::OK);
        assert!(
            out.contains("step_up: a check with your PIN or fingerprint at most 5m old, done for this page, from a device-bound (not synced) passkey"),
            "{out}"
        );
        assert!(out.contains("user alice: passes allow"), "{out}");
        assert!(
            out.contains("signed in as alice, no step-up yet: sent to the portal for a check"),
            "{out}"
        );
        let (_, out) = explained(YAML, "https://app.home.lab/admin/x", Some("bob"));
        assert!(
            out.contains("user bob: not in allow: denied (403)"),
            "{out}"
        );
        let (_, out) = explained(YAML, "https://app.home.lab/x", Some("old"));
        assert!(out.contains("user old: expired: denied"), "{out}");
        let (_, out) = explained(YAML, "https://app.home.lab/x", Some("eve"));
        assert!(out.contains("user eve: not in the config: denied"), "{out}");
        let (_, out) = explained(YAML, "https://app.home.lab/x", Some("bob"));
        assert!(
            out.contains("signed in as bob, no step-up yet: let in"),
            "{out}"
        );
        let (_, out) = explained(YAML, "https://app.home.lab/git/x", Some("bob"));
        assert!(
            out.contains(
                "signed in as bob, no step-up yet: refused (401): a client token is required"
            ),
            "{out}"
        );
    }
}
