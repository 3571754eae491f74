//! `stepgate check` and `stepgate explain`: the config as the gateway sees it.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use crate::config::{self, Policy, Principal, Rule, Runtime, Scope};
use crate::routing::{RouteRequest, normalize_host, normalize_path};

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
    match crate::webauthn::TrustStore::load(&rt.authenticators, now()) {
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
    let url = match url::Url::parse(&args.url) {
        Ok(u) if u.has_host() => u,
        _ => {
            writeln!(
                out,
                "bad request: \"{}\" is not an absolute URL like https://app.example.com/path",
                args.url
            )?;
            return Ok(exit::DENIED);
        }
    };
    let host_raw = url.host_str().unwrap_or_default();
    let host = match normalize_host(host_raw) {
        Ok(h) => h,
        Err(e) => {
            writeln!(out, "bad request (400): host: {e}")?;
            return Ok(exit::DENIED);
        }
    };
    // `Url` has already resolved dot-segments; explain the path as sent on the wire.
    let raw_path = raw_path_of(&args.url).unwrap_or_else(|| url.path().to_string());
    let path = match normalize_path(&raw_path) {
        Ok(p) => p,
        Err(e) => {
            writeln!(out, "bad request (400): path: {e}")?;
            return Ok(exit::DENIED);
        }
    };
    let method = args.method.to_ascii_uppercase();
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
    let policy = match rule.policy {
        Policy::Bypass => "bypass (no sign-in)",
        Policy::Deny => "deny (403 for everyone)",
        Policy::Passkey => "passkey (sign-in with a UV passkey)",
    };
    writeln!(out, "policy: {policy}")?;
    if let Some(up) = &rule.upstream {
        writeln!(out, "upstream: {up}")?;
    } else {
        writeln!(out, "upstream: none (forward-auth only)")?;
    }
    if rule.policy != Policy::Passkey {
        return Ok(exit::OK);
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
        None => writeln!(out, "step_up: none (any signed-in session)")?,
        Some(s) => {
            let mut needs = Vec::new();
            if let Some(age) = s.max_age {
                needs.push(format!(
                    "a UV ceremony at most {} old",
                    humantime::format_duration(age)
                ));
            }
            needs.push(match s.scope {
                Scope::Rule => "done for this rule".to_string(),
                Scope::Session => "done anywhere in the session".to_string(),
            });
            if !s.authenticators.is_empty() {
                needs.push(format!(
                    "with an attested {}",
                    rt.authenticator_names(&s.authenticators).join(" or ")
                ));
            }
            if s.device_bound {
                needs.push("from a device-bound (not synced) passkey".to_string());
            }
            writeln!(out, "step_up: {}", needs.join(", "))?;
        }
    }
    explain_tokens(rule, out)?;
    if let Some(name) = &args.user {
        match rt.users.get(name) {
            None => writeln!(out, "user {name}: not in the config: denied")?,
            Some(u) if !u.is_active(now()) => writeln!(out, "user {name}: expired: denied")?,
            Some(u) if rule.allows(name, u) => writeln!(out, "user {name}: passes allow")?,
            Some(_) => writeln!(out, "user {name}: not in allow: denied (403)")?,
        }
    }
    Ok(exit::OK)
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
