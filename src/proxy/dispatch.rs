//! The one function the request hook calls: what to do with an arrived request.
//!
//! Reserved `/.stepgate/` paths go to forward-auth or the portal; everything
//! else is judged by [`access::judge`] and either proxied, answered by
//! `builtin:whoami`, or refused with the answer [`access::refusal`] builds.

use std::net::SocketAddr;

use bytes::Bytes;
use http::StatusCode;

use crate::access::{self, Mode, Outcome};
use crate::authz::{self, Endpoint};
use crate::config::{Runtime, Upstream};
use crate::gateway::{Gateway, Snapshot};
use crate::reply::Reply;
use crate::request::Facts;

use super::arrival::Arrival;
use super::hygiene::Handoff;

/// The reserved path prefix served by stepgate on every host.
pub const RESERVED: &str = crate::reserved::PREFIX;

/// Where an allowed request goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub tls: bool,
    pub sni: String,
}

/// What the hook does next.
#[derive(Debug)]
pub enum Action {
    /// Write this answer; nothing is proxied.
    Reply(Reply),
    /// A portal page: read the body, then call [`portal`].
    Portal,
    /// Answer as `builtin:whoami` with what an upstream would receive.
    Whoami { handoff: Handoff },
    /// Proxy to the upstream with this identity (and these header changes).
    Proxy { target: Target, handoff: Handoff },
}

/// Decide what happens to `arrival`, all against the one `snapshot` it took.
pub async fn dispatch(gw: &Gateway, snapshot: &Snapshot, arrival: &Arrival) -> Action {
    let (rt, facts) = (&snapshot.config, &arrival.facts);
    if crate::reserved::is_reserved(&facts.path) {
        return match Endpoint::for_path(&facts.path) {
            Some(endpoint) => {
                Action::Reply(authz::handle(gw, snapshot, facts, arrival.peer, endpoint).await)
            }
            None => Action::Portal,
        };
    }
    if let Some(reply) = portal_home(rt, facts) {
        return Action::Reply(reply);
    }
    let verdict = match access::judge(gw, snapshot, facts).await {
        Ok(v) => v,
        Err(why) => return Action::Reply(access::bad_request(&why)),
    };
    let (rule, identity) = match access::answer(snapshot, facts, verdict, Mode::Inline) {
        Outcome::Pass { rule, identity } => (rule, identity),
        Outcome::Reply(reply) => return Action::Reply(reply),
    };
    let handoff = Handoff {
        identity,
        mapped: rule.and_then(|r| r.identity_headers.clone()),
        carrier: access::token_carrier(rule),
        kept: access::kept_token_place(rule),
        stripped: rt.stripped.clone(),
    };
    let upstream = rule
        .and_then(|r| r.upstream.as_ref())
        .and_then(|u| rt.upstreams.get(u));
    match upstream {
        None => Action::Reply(bad_gateway("this rule has no upstream (forward-auth only)")),
        Some(Upstream::Whoami) => Action::Whoami { handoff },
        Some(Upstream::Http {
            address, tls, sni, ..
        }) => match gw.peers.get(address).await {
            Some(addr) => Action::Proxy {
                target: Target {
                    addr,
                    tls: *tls,
                    sni: sni.clone(),
                },
                handoff,
            },
            None => {
                tracing::warn!(upstream = %address, "upstream address does not resolve");
                Action::Reply(bad_gateway("the upstream address does not resolve"))
            }
        },
    }
}

/// A portal page (everything under `/.stepgate/` but `authz/`).
pub async fn portal(gw: &Gateway, snapshot: &Snapshot, facts: &Facts, body: Bytes) -> Reply {
    crate::portal::handle(gw, snapshot, facts, body).await
}

/// The portal host's `/`, when no rule claims it, leads to the account page
/// (which signs the visitor in first) instead of a bare 403.
fn portal_home(rt: &Runtime, facts: &Facts) -> Option<Reply> {
    let browsing = matches!(facts.method, http::Method::GET | http::Method::HEAD);
    if !browsing || facts.path != "/" || facts.host != rt.boot.portal.host {
        return None;
    }
    let req = crate::routing::RouteRequest {
        host: &facts.host,
        path: &facts.path,
        method: facts.method.as_str(),
        client_ip: facts.client_ip,
    };
    if !matches!(rt.route(&req), Ok(None)) {
        return None;
    }
    let account = crate::reserved::PortalRoute::Account.path();
    Some(Reply::redirect(StatusCode::FOUND, account))
}

fn bad_gateway(why: &str) -> Reply {
    Reply::new(StatusCode::BAD_GATEWAY).body(
        "text/plain; charset=utf-8",
        format!("502 Bad Gateway: {why}\n"),
    )
}
