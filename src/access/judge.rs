//! Judging one request, for every door alike: facts → route → session (or
//! client token) lookup → [`policy::decide`] → a [`Verdict`] that borrows its
//! rule from the request's snapshot. What a door does with it is
//! [`super::answer`]'s.
//!
//! A rule with `tokens:` looks for a token where `tokens.from` says; one found
//! is looked up in the store on every request (never cached, so a revocation
//! anywhere counts at once) with its passkey's current standing. A token the
//! store knows is never refused by the failure limit; misses (malformed,
//! unknown) count per client network against `rate_limit.per_ip_per_minute`
//! (in Redis when Redis is the store), and past it a miss gets 429.
//!
//! Nothing here knows about pingora or writes an answer.

use std::sync::Arc;
use std::time::Instant;

use crate::audit;
use crate::client_token::{self, Presented, TokenView};
use crate::config::{Policy, Rule, Runtime};
use crate::gateway::{Gateway, Snapshot};
use crate::model::AppView;
use crate::policy::{self, Decision, SessionState};
use crate::ratelimit::Limited;
use crate::request::BadRequest;
use crate::request::Facts;
use crate::routing::RouteRequest;
use crate::store::StoreError;
use crate::telemetry::metrics;

/// What the access check found for one request, judged against one
/// snapshot (`'s`): the rule it matched there, and the decision.
#[derive(Debug, Clone)]
pub struct Verdict<'s> {
    /// The rule that matched, if any.
    pub rule: Option<&'s Rule>,
    pub decision: Decision,
}

impl Verdict<'_> {
    /// The label used in metrics and logs.
    pub fn rule_label(&self) -> &str {
        self.rule.map_or("-", |r| r.name.as_str())
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
pub async fn judge<'s>(
    gw: &Gateway,
    snapshot: &'s Snapshot,
    facts: &Facts,
) -> Result<Verdict<'s>, BadRequest> {
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
    let verdict = Verdict { rule, decision };
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
    match client_token::presented(&tokens.from, &facts.headers) {
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
    let found = match secret.and_then(client_token::lookup_key) {
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
