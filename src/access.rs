//! The one access check shared by the inline proxy and the forward-auth endpoints:
//! facts → route → session (or client token) lookup → [`policy::decide`] →
//! [`Verdict`], and the answers stepgate writes itself when a request is not
//! let through.
//!
//! A rule with `tokens:` looks for a token where `tokens.from` says; one found
//! is looked up in the store on every request (never cached, so a revocation
//! anywhere counts at once) with its passkey's current standing. A token the
//! store knows is never refused by the failure limit; misses (malformed,
//! unknown) count per client network against `rate_limit.per_ip_per_minute`
//! (in Redis when Redis is the store), and past it a miss gets 429.
//!
//! Nothing here knows about pingora; the proxy and `authz` only translate.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderName, StatusCode, header};

use crate::audit;
use crate::config::{IdentityHeaders, Policy, Rule, Runtime, TokenFrom, TokenRule};
use crate::exchange::{Facts, Reply};
use crate::gateway::{Gateway, Snapshot};
use crate::headers::IDENTITY_HEADERS;
use crate::model::{AppView, new_token};
use crate::policy::{self, Decision, Identity, SessionState, TokenReason};
use crate::ratelimit::Limited;
use crate::request::BadRequest;
use crate::routes::PortalRoute;
use crate::routing::RouteRequest;
use crate::session::cookie::{CookieKeys, set_state_cookie, state_from_headers};
use crate::store::StoreError;
use crate::telemetry::metrics;
use crate::token::{self, Presented, TokenView};

/// What the access check found for one request.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The rule that matched, if any.
    pub rule: Option<String>,
    /// The rule's upstream name (inline mode), if any.
    pub upstream: Option<String>,
    pub decision: Decision,
    /// The matched rule's index in the config snapshot it was judged against.
    index: Option<usize>,
}

impl Verdict {
    /// The matched rule, in `rt` (the snapshot the request was judged against).
    pub fn rule_in<'a>(&self, rt: &'a Runtime) -> Option<&'a Rule> {
        self.index.and_then(|i| rt.rules.get(i))
    }

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
            Decision::TokenRefused(_) => "token_refused",
            Decision::RateLimited(_) => "rate_limited",
            Decision::Unavailable => "unavailable",
        }
    }
}

/// What a request to a passkey rule brought, as found in the store.
enum Brought {
    /// Nothing that counts (no cookie, or a token rule's token missing).
    Nothing,
    Session(Arc<AppView>),
    /// A token where the rule says; `None`: none that the store knows.
    Token(Option<Box<TokenView>>),
    /// Too many failed token checks from this client: retry after this many seconds.
    Limited(u64),
}

/// Judge a request against `rt` — the one config snapshot the caller also
/// uses to act on the verdict, so a reload in between never mixes two configs:
/// route it, look its session up (only for passkey rules), and ask
/// [`policy::decide`]. Counts the outcome in the metrics. A path whose rule
/// depends on case that the app ignores is a [`BadRequest`] (answer 400).
pub async fn judge(
    gw: &Gateway,
    snapshot: &Snapshot,
    facts: &Facts,
) -> Result<Verdict, BadRequest> {
    let rt = &snapshot.config;
    let req = RouteRequest {
        host: &facts.host,
        path: &facts.path,
        method: facts.method.as_str(),
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
    let brought = match rule {
        Some(r) if r.policy == Policy::Passkey => Some(bring(gw, snapshot, r, facts).await),
        _ => None,
    };
    let state = match &brought {
        None | Some(Ok(Brought::Nothing | Brought::Limited(_))) => SessionState::None,
        Some(Ok(Brought::Session(view))) => SessionState::Live(view),
        Some(Ok(Brought::Token(found))) => SessionState::Token(found.as_deref()),
        Some(Err(_)) => SessionState::Unavailable,
    };
    let decision = match &brought {
        Some(Ok(Brought::Limited(after))) => Decision::RateLimited(*after),
        _ => policy::decide(rt, rule, state, now),
    };
    let verdict = Verdict {
        rule: rule.map(|r| r.name.clone()),
        upstream: rule.and_then(|r| r.upstream.clone()),
        decision,
        index,
    };
    rt.request_counters
        .count(index, verdict.rule_label(), verdict.outcome());
    if let Decision::Deny(reason) = &verdict.decision {
        let user = match &brought {
            Some(Ok(Brought::Session(view))) => Some(view.app.user.as_str()),
            Some(Ok(Brought::Token(Some(view)))) => Some(view.token.user.as_str()),
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

/// Look up what a request to passkey rule `rule` brought: the client token
/// where the rule's `tokens.from` says, else (where sessions count) its session.
async fn bring(
    gw: &Gateway,
    snapshot: &Snapshot,
    rule: &Rule,
    facts: &Facts,
) -> Result<Brought, StoreError> {
    let rt = &snapshot.config;
    let session = |gw, snapshot, facts| async move {
        Ok(match lookup(gw, snapshot, facts).await? {
            Some(view) => Brought::Session(view),
            None => Brought::Nothing,
        })
    };
    let Some(tokens) = &rule.tokens else {
        return session(gw, snapshot, facts).await;
    };
    match token::presented(&tokens.from, &facts.headers) {
        Presented::Token(secret) => check_token(gw, rt, facts, Some(&secret)).await,
        Presented::Ambiguous => check_token(gw, rt, facts, None).await,
        Presented::Nothing if tokens.sessions => session(gw, snapshot, facts).await,
        Presented::Nothing => Ok(Brought::Nothing),
    }
}

/// Check a presented token (`None`: presented twice, so refused unread). The
/// store is asked first: a token it knows is judged by the policy whatever the
/// client's network did before, so a neighbour's guesses never lock a valid
/// token out. Only a miss (malformed, unknown, or presented twice) counts
/// against the network's failure limit, and a miss past it is answered 429.
async fn check_token(
    gw: &Gateway,
    rt: &Runtime,
    facts: &Facts,
    secret: Option<&str>,
) -> Result<Brought, StoreError> {
    let started = Instant::now();
    let found = match secret.and_then(token::lookup_key) {
        Some(hash) => {
            let found = token_view(gw, &hash).await;
            metrics().store_call("token", found.is_ok(), started.elapsed());
            found.inspect_err(|e| {
                tracing::warn!(error = %e, "token lookup failed; failing closed");
            })?
        }
        None => None,
    };
    if found.is_some() {
        return Ok(Brought::Token(found.map(Box::new)));
    }
    let (limit, now) = (rt.rate_limit.per_ip_per_minute, gw.now());
    match gw
        .limits
        .count_token_miss(gw.store.as_ref(), facts.client_ip, limit, now)
        .await
    {
        Ok(()) => Ok(Brought::Token(None)),
        Err(Limited::RetryAfter(after)) => Ok(Brought::Limited(after)),
        Err(Limited::Store(e)) => {
            // The miss is refused (401) either way; only its count is lost.
            tracing::warn!(error = %e, "could not count a failed token check");
            Ok(Brought::Token(None))
        }
    }
}

/// The token stored under `hash` with its passkey's current standing.
async fn token_view(gw: &Gateway, hash: &str) -> Result<Option<TokenView>, StoreError> {
    let Some(token) = gw.store.token(hash).await? else {
        return Ok(None);
    };
    let credential = gw
        .store
        .credential(&token.verification.credential_id)
        .await?
        .map(|c| c.standing());
    Ok(Some(TokenView { token, credential }))
}

/// Resolve the request's app cookie to a live app session on this host.
async fn lookup(
    gw: &Gateway,
    snapshot: &Snapshot,
    facts: &Facts,
) -> Result<Option<Arc<AppView>>, StoreError> {
    let started = Instant::now();
    let result = resolve_app_session(gw, snapshot, facts).await;
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
    let mut query = vec![("rd", rd)];
    query.extend(binding.map(|b| ("state", b)));
    PortalRoute::Login.url_with(&rt.boot.portal, &query)
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

/// The answer for anything but `Allow`: 302 or 401 for a needed ceremony,
/// 401 for a refused client token, 403, 429, 503. `tokens` is the matched
/// rule's `tokens:`: its challenge goes with every 401 the rule answers.
pub fn refusal(
    rt: &Runtime,
    keys: &CookieKeys,
    facts: &Facts,
    decision: &Decision,
    mode: Mode,
    tokens: Option<&TokenRule>,
) -> Reply {
    match decision {
        Decision::Allow { .. } => Reply::new(StatusCode::OK),
        Decision::Deny(_) => text(StatusCode::FORBIDDEN, "403 Forbidden\n"),
        Decision::Unavailable => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: the session store is not answering\n",
        )
        .header(header::RETRY_AFTER, "5"),
        Decision::RateLimited(after) => text(
            StatusCode::TOO_MANY_REQUESTS,
            "429 Too Many Requests: too many failed token checks from this network\n",
        )
        .header(header::RETRY_AFTER, after.to_string()),
        Decision::TokenRefused(reason) => token_refusal(rt, *reason, tokens),
        Decision::Login | Decision::StepUp { .. } => {
            let max_age = match decision {
                Decision::StepUp {
                    max_age: Some(age), ..
                } => Some(age.as_secs()),
                _ => None,
            };
            let browser = facts.wants_html();
            if browser && !rt.vouches_for_host(&facts.host) {
                // Sign-in never returns to a name a pattern merely matches:
                // nothing to bind this browser to, nowhere to send it.
                return text(
                    StatusCode::FORBIDDEN,
                    "403 Forbidden: sign-in cannot return to this host name; the operator lists it under served.hosts\n",
                );
            }
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
            if let Some(t) = tokens {
                // A rule that also takes tokens tells native clients how.
                reply = reply.header(header::WWW_AUTHENTICATE, token_challenge(&t.from, None));
            }
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

/// The 401 for a rule's refused (or missing) client token: the challenge its
/// clients understand, never a redirect and never a cookie.
fn token_refusal(rt: &Runtime, reason: TokenReason, tokens: Option<&TokenRule>) -> Reply {
    let from = tokens.map_or(&TokenFrom::Bearer, |t| &t.from);
    let error = (reason != TokenReason::Missing).then_some(reason);
    Reply::new(StatusCode::UNAUTHORIZED)
        .body(
            "text/plain; charset=utf-8",
            format!(
                "401 Unauthorized: {}. Mint a token on {}\n",
                reason.as_str(),
                PortalRoute::Account.url(&rt.boot.portal)
            ),
        )
        .header(header::WWW_AUTHENTICATE, token_challenge(from, error))
        .header(header::CACHE_CONTROL, "no-store")
}

/// The `WWW-Authenticate` challenge for tokens sent as `from` says; with
/// `error`, why the one sent was refused (RFC 6750 `invalid_token`).
fn token_challenge(from: &TokenFrom, error: Option<TokenReason>) -> String {
    let mut c = match from {
        TokenFrom::Basic => "Basic realm=\"stepgate\", charset=\"UTF-8\"".to_string(),
        TokenFrom::Bearer => "Bearer realm=\"stepgate\"".to_string(),
        TokenFrom::Header(name) => format!("StepgateToken realm=\"stepgate\", header=\"{name}\""),
    };
    if let (Some(reason), false) = (error, matches!(from, TokenFrom::Basic)) {
        c.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{}\"",
            reason.as_str()
        ));
    }
    c
}

fn text(status: StatusCode, body: &'static str) -> Reply {
    Reply::new(status).body("text/plain; charset=utf-8", body)
}

/// The identity headers for an allowed request: all six, then the upstream's
/// own names (`mapped`) for user, e-mail, name and groups; every one empty
/// where there is no value (so a front proxy overwrites any client-sent
/// copy). Names and e-mail addresses go out as UTF-8 bytes (as other gateways
/// do); a value with a control character is sent empty.
pub fn identity_headers(
    identity: Option<&Identity>,
    mapped: Option<&IdentityHeaders>,
) -> Vec<(HeaderName, String)> {
    let mut out = default_identity_headers(identity);
    if let Some(m) = mapped {
        let value = |i: usize| out[i].1.clone();
        let extra = [
            (&m.user, value(0)),
            (&m.groups, value(1)),
            (&m.name, value(2)),
            (&m.email, value(3)),
        ];
        for (name, v) in extra {
            if let Some(name) = name {
                out.push((name.clone(), v));
            }
        }
    }
    out
}

/// The six default identity headers (see [`identity_headers`]).
fn default_identity_headers(identity: Option<&Identity>) -> Vec<(HeaderName, String)> {
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

/// The carrier of a rule's tokens, when it must be removed before proxying
/// (always, unless the rule says `keep: true`).
pub fn token_carrier(rule: Option<&Rule>) -> Option<HeaderName> {
    rule.and_then(|r| r.tokens.as_ref())
        .filter(|t| !t.keep)
        .map(|t| t.from.carrier().clone())
}

/// Where `rule` takes tokens from with `keep: true`: a token there reaches the app.
pub fn kept_token_place(rule: Option<&Rule>) -> Option<TokenFrom> {
    rule.and_then(|r| r.tokens.as_ref())
        .filter(|t| t.keep)
        .map(|t| t.from.clone())
}

/// The cookie's app session, if it is live and belongs to this host (signed
/// cookie, host binding, idle and absolute limits; idle clocks touched).
async fn resolve_app_session(
    gw: &Gateway,
    snapshot: &Snapshot,
    facts: &Facts,
) -> Result<Option<Arc<AppView>>, StoreError> {
    crate::session::lifecycle::resolve_app_cached(
        gw.store.as_ref(),
        Some(&gw.sessions),
        &snapshot.keys,
        &snapshot.config.session,
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
        let h = identity_headers(Some(&id), None);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("remote-user"), Some("zoe"));
        assert_eq!(get("remote-groups"), Some("a,b"));
        assert_eq!(get("remote-name"), Some("Zoë Ünal"));
        assert_eq!(get("remote-email"), Some(""));
        assert_eq!(get("stepgate-verified-at"), Some("42"));
        assert_eq!(h.len(), 6);
        assert!(
            identity_headers(None, None)
                .iter()
                .all(|(_, v)| v.is_empty())
        );
        let mapped = IdentityHeaders {
            user: Some(HeaderName::from_static("x-webauth-user")),
            groups: Some(HeaderName::from_static("x-webauth-groups")),
            ..Default::default()
        };
        let h = identity_headers(Some(&id), Some(&mapped));
        assert_eq!(h.len(), 8);
        assert_eq!(get("x-webauth-user"), None, "not in the default set");
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-webauth-user"), Some("zoe"));
        assert_eq!(get("x-webauth-groups"), Some("a,b"));
        let none = identity_headers(None, Some(&mapped));
        assert_eq!(none.len(), 8);
        assert!(none.iter().all(|(_, v)| v.is_empty()));
    }
}
