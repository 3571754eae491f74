//! The one access check shared by the inline proxy and the forward-auth endpoints:
//! facts → route → session lookup → [`policy::decide`] → [`Verdict`], and the
//! answers stepgate writes itself when a request is not let through.
//!
//! Nothing here knows about pingora; the proxy and `authz` only translate.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderName, StatusCode, header};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::audit;
use crate::config::{Policy, Runtime};
use crate::gateway::{Facts, Gateway, Reply};
use crate::policy::{self, Decision, Identity, SessionState};
use crate::request::BadRequest;
use crate::routing::RouteRequest;
use crate::session::cookie::{CookieKeys, set_state_cookie, state_from_headers};
use crate::session::{AppView, new_token};
use crate::store::StoreError;
use crate::telemetry::metrics;

/// What the access check found for one request.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The rule that matched, if any.
    pub rule: Option<String>,
    /// The rule's upstream name (inline mode), if any.
    pub upstream: Option<String>,
    pub decision: Decision,
}

impl Verdict {
    /// The label used in metrics and logs.
    pub fn rule_label(&self) -> &str {
        self.rule.as_deref().unwrap_or("-")
    }

    /// A short, fixed outcome name for metrics.
    pub fn outcome(&self) -> &'static str {
        match &self.decision {
            Decision::Allow { .. } => "allow",
            Decision::Login => "login",
            Decision::StepUp { .. } => "step_up",
            Decision::Deny(_) => "deny",
            Decision::Unavailable => "unavailable",
        }
    }
}

/// Judge a request against `rt` — the one config snapshot the caller also
/// uses to act on the verdict, so a reload in between never mixes two configs:
/// route it, look its session up (only for passkey rules), and ask
/// [`policy::decide`]. Counts the outcome in the metrics. A path whose rule
/// depends on case that the app ignores is a [`BadRequest`] (answer 400).
pub async fn judge(gw: &Gateway, rt: &Runtime, facts: &Facts) -> Result<Verdict, BadRequest> {
    let req = RouteRequest {
        host: &facts.host,
        path: &facts.path,
        method: &facts.method,
        client_ip: facts.client_ip,
    };
    let (index, rule) = match rt.route(&req) {
        Ok(Some((i, r))) => (Some(i), Some(r)),
        Ok(None) => (None, None),
        Err(e) => {
            rt.request_counters.count(None, "-", "bad_request");
            return Err(BadRequest::Case(e));
        }
    };
    let now = gw.now();
    let looked_up = match rule {
        Some(r) if r.policy == Policy::Passkey => Some(lookup(gw, rt, facts).await),
        _ => None,
    };
    let state = match &looked_up {
        None | Some(Ok(None)) => SessionState::None,
        Some(Ok(Some(view))) => SessionState::Live(view),
        Some(Err(_)) => SessionState::Unavailable,
    };
    let decision = policy::decide(rt, rule, state, now);
    let verdict = Verdict {
        rule: rule.map(|r| r.name.clone()),
        upstream: rule.and_then(|r| r.upstream.clone()),
        decision,
    };
    rt.request_counters
        .count(index, verdict.rule_label(), verdict.outcome());
    if let Decision::Deny(reason) = &verdict.decision {
        let user = match &looked_up {
            Some(Ok(Some(view))) => Some(view.app.user.as_str()),
            _ => None,
        };
        audit::denial(
            user,
            rule.map(|r| r.name.as_str()),
            &facts.host,
            &facts.path,
            reason.as_str(),
            facts.client_ip,
        );
    }
    tracing::debug!(
        host = %facts.host,
        path = %facts.path,
        method = %facts.method,
        client = %facts.client_ip,
        rule = verdict.rule_label(),
        outcome = verdict.outcome(),
        "judged"
    );
    Ok(verdict)
}

/// Resolve the request's app cookie to a live app session on this host.
async fn lookup(
    gw: &Gateway,
    rt: &Runtime,
    facts: &Facts,
) -> Result<Option<Arc<AppView>>, StoreError> {
    let started = Instant::now();
    let result = resolve_app_session(gw, rt, facts).await;
    metrics().store_call("app_session", result.is_ok(), started.elapsed());
    if let Err(e) = &result {
        tracing::warn!(error = %e, "session lookup failed; failing closed");
    }
    result
}

/// How the answer is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// stepgate is the reverse proxy.
    Inline,
    /// Traefik / Caddy forward-auth: a 302 reaches the browser as is.
    ForwardAuth,
    /// nginx `auth_request`: only 2xx/401/403 make sense; a browser gets 401
    /// with a `Location` the nginx config turns into a redirect.
    AuthRequest,
}

/// The absolute URL the request was for, as the browser would write it.
pub fn original_url(facts: &Facts) -> String {
    match &facts.query {
        Some(q) => format!("{}{}?{q}", facts.origin(), facts.path),
        None => format!("{}{}", facts.origin(), facts.path),
    }
}

/// The portal's login page for a ceremony that returns to `rd`; `binding`
/// ties the callback code to the browser that was sent there.
pub fn login_url(rt: &Runtime, rd: &str, binding: Option<&str>) -> String {
    let mut url = format!(
        "{}?rd={}",
        rt.portal.url("/.stepgate/login"),
        utf8_percent_encode(rd, NON_ALPHANUMERIC)
    );
    if let Some(b) = binding {
        url.push_str("&state=");
        url.push_str(b);
    }
    url
}

/// The 400 answer for a request refused before (or while) judging.
pub fn bad_request(why: &BadRequest) -> Reply {
    Reply::new(StatusCode::BAD_REQUEST).body(
        "text/plain; charset=utf-8",
        format!("400 Bad Request: {why}\n"),
    )
}

/// The login URL for a browser about to be sent to the portal, and the
/// browser-state cookie to set on this host when it has none yet (an existing
/// one is reused, so several tabs signing in at once all succeed).
fn browser_login(rt: &Runtime, keys: &CookieKeys, facts: &Facts) -> (String, Option<String>) {
    let (state, set) = match state_from_headers(&facts.headers, facts.https) {
        Some(s) => (s.to_string(), None),
        None => {
            let s = new_token();
            let line = set_state_cookie(facts.https, &s);
            (s, Some(line))
        }
    };
    let binding = keys.browser_binding(&state, &facts.origin());
    (login_url(rt, &original_url(facts), Some(&binding)), set)
}

/// The answer for anything but `Allow`: 302 or 401 for a needed ceremony, 403, 503.
pub fn refusal(
    rt: &Runtime,
    keys: &CookieKeys,
    facts: &Facts,
    decision: &Decision,
    mode: Mode,
) -> Reply {
    match decision {
        Decision::Allow { .. } => Reply::new(StatusCode::OK),
        Decision::Deny(_) => text(StatusCode::FORBIDDEN, "403 Forbidden\n"),
        Decision::Unavailable => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: the session store is not answering\n",
        )
        .header(header::RETRY_AFTER, "5"),
        Decision::Login | Decision::StepUp { .. } => {
            let max_age = match decision {
                Decision::StepUp {
                    max_age: Some(age), ..
                } => Some(age.as_secs()),
                _ => None,
            };
            let browser = facts.wants_html();
            let (login, set_state) = if browser {
                browser_login(rt, keys, facts)
            } else {
                (login_url(rt, &original_url(facts), None), None)
            };
            if browser && mode != Mode::AuthRequest {
                let reply = Reply::redirect(StatusCode::FOUND, &login);
                return match set_state {
                    Some(c) => reply.header(header::SET_COOKIE, c),
                    None => reply,
                };
            }
            let mut challenge = String::from("StepUp error=\"insufficient_user_authentication\"");
            if let Some(age) = max_age {
                challenge.push_str(&format!(", max_age={age}"));
            }
            challenge.push_str(&format!(", login=\"{login}\""));
            let mut reply = text(
                StatusCode::UNAUTHORIZED,
                "401 Unauthorized: a passkey verification is needed\n",
            )
            .header(header::WWW_AUTHENTICATE, challenge)
            .header(header::CACHE_CONTROL, "no-store");
            if browser {
                // nginx turns this into the redirect others send directly.
                reply = reply.header(header::LOCATION, &login);
                if let Some(c) = set_state {
                    reply = reply.header(header::SET_COOKIE, c);
                }
            }
            reply
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Reply {
    Reply::new(status).body("text/plain; charset=utf-8", body)
}

/// The identity header names, in the order they are sent.
pub const IDENTITY_HEADERS: [&str; 6] = [
    "remote-user",
    "remote-groups",
    "remote-name",
    "remote-email",
    "stepgate-verified-at",
    "stepgate-rule",
];

/// The identity headers for an allowed request: all six, empty where there is
/// no value (so a front proxy overwrites any client-sent copy). Names and
/// e-mail addresses go out as UTF-8 bytes (as other gateways do); a value with
/// a control character is sent empty.
pub fn identity_headers(identity: Option<&Identity>) -> Vec<(HeaderName, String)> {
    let values: [String; 6] = match identity {
        None => Default::default(),
        Some(id) => [
            id.user.clone(),
            id.groups.join(","),
            id.name.clone().unwrap_or_default(),
            id.email.clone().unwrap_or_default(),
            id.verified_at.map(|t| t.to_string()).unwrap_or_default(),
            id.rule.clone(),
        ],
    };
    IDENTITY_HEADERS
        .iter()
        .zip(values)
        .map(|(name, value)| {
            let value = if http::HeaderValue::from_bytes(value.as_bytes()).is_ok() {
                value
            } else {
                String::new()
            };
            (HeaderName::from_static(name), value)
        })
        .collect()
}

/// Is `name` one of the identity headers, in any case and with `_` or `.` for `-`?
pub fn is_identity_header(name: &str) -> bool {
    let canon = canonical_name(name);
    IDENTITY_HEADERS.iter().any(|h| *h == canon)
}

/// A header name lower-cased with `_` and `.` read as `-`: how many servers
/// and frameworks (CGI, PHP, Django, …) fold them.
pub fn canonical_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The cookie's app session, if it is live and belongs to this host (signed
/// cookie, host binding, idle and absolute limits; idle clocks touched).
async fn resolve_app_session(
    gw: &Gateway,
    rt: &Runtime,
    facts: &Facts,
) -> Result<Option<Arc<AppView>>, StoreError> {
    let keys = gw.cookie_keys.load();
    crate::session::lifecycle::resolve_app_cached(
        gw.store.as_ref(),
        Some(&gw.sessions),
        &keys,
        &rt.session,
        &facts.headers,
        facts.https,
        &facts.host,
        gw.now(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_keep_utf8_and_drop_control_characters() {
        let id = Identity {
            user: "zoe".into(),
            groups: vec!["a".into(), "b".into()],
            name: Some("Zoë Ünal".into()),
            email: Some("bad\r\nx: y".into()),
            verified_at: Some(42),
            rule: "r".into(),
        };
        let h = identity_headers(Some(&id));
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("remote-user"), Some("zoe"));
        assert_eq!(get("remote-groups"), Some("a,b"));
        assert_eq!(get("remote-name"), Some("Zoë Ünal"));
        assert_eq!(get("remote-email"), Some(""));
        assert_eq!(get("stepgate-verified-at"), Some("42"));
        assert_eq!(h.len(), 6);
        assert!(identity_headers(None).iter().all(|(_, v)| v.is_empty()));
    }

    #[test]
    fn identity_header_spellings() {
        for n in [
            "Remote-User",
            "REMOTE_USER",
            "remote.user",
            "Stepgate_Verified.At",
        ] {
            assert!(is_identity_header(n), "{n}");
        }
        for n in ["Remote-Userx", "X-Remote-User", "remoteuser"] {
            assert!(!is_identity_header(n), "{n}");
        }
    }
}
