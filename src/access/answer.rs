//! What each door does with a [`Verdict`]: let the request through with an
//! identity (inline: proxy it; forward-auth: 200 with the identity headers),
//! or answer it — 302 or 401 for a needed ceremony (nginx's auth-request
//! gets 401 with a `Location`), 401 for a refused client token, 403, 429,
//! 503 — and the 400 for a request refused before judging.

use http::{HeaderName, StatusCode, header};

use super::judge::Verdict;
use crate::config::{Rule, Runtime, TokenFrom, TokenRule};
use crate::gateway::Snapshot;
use crate::model::{Identity, new_secret};
use crate::policy::{Decision, TokenReason};
use crate::reply::Reply;
use crate::request::BadRequest;
use crate::request::Facts;
use crate::reserved::PortalRoute;
use crate::session::cookie::{CookieKeys, set_state_cookie, state_from_headers};

/// What a door does with a verdict.
#[derive(Debug)]
pub enum Outcome<'s> {
    /// Let the request through under `rule` (none matched only for a
    /// forward-auth-only config that lets nothing through), telling the app
    /// `identity` (none on a bypass rule).
    Pass {
        rule: Option<&'s Rule>,
        identity: Option<Identity>,
    },
    /// Answer with this; nothing goes through.
    Reply(Reply),
}

/// The outcome of `verdict` for a request (`facts`) judged against
/// `snapshot`, answered as `mode` says.
pub fn answer<'s>(
    snapshot: &'s Snapshot,
    facts: &Facts,
    verdict: Verdict<'s>,
    mode: Mode,
) -> Outcome<'s> {
    match verdict.decision {
        Decision::Allow { identity } => Outcome::Pass {
            rule: verdict.rule,
            identity,
        },
        other => {
            let tokens = verdict.rule.and_then(|r| r.tokens.as_ref());
            Outcome::Reply(refusal(
                &snapshot.config,
                &snapshot.keys,
                facts,
                &other,
                mode,
                tokens,
            ))
        }
    }
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
            let s = new_secret();
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
fn refusal(
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
