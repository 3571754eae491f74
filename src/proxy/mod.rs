//! The pingora side of the inline proxy: a thin [`ProxyHttp`] implementation.
//!
//! Hooks only translate: [`arrival::gather`] reads what arrived,
//! [`dispatch::dispatch`] decides, and the hook writes the answer out or hands
//! the request to pingora with [`hygiene::prepare`] applied. No matching,
//! crypto or store calls happen in a hook body.

pub mod arrival;
pub mod dispatch;
pub mod hygiene;
pub mod respond;
pub mod whoami;

use std::sync::Arc;

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::{Error, ErrorType};

use crate::gateway::Gateway;

use arrival::Arrival;
use dispatch::{Action, Target};
use hygiene::Handoff;

/// The inline proxy.
pub struct Proxy {
    gw: Arc<Gateway>,
}

impl Proxy {
    pub fn new(gw: Arc<Gateway>) -> Self {
        Proxy { gw }
    }
}

/// Per-request state carried from `request_filter` to the upstream hooks.
#[derive(Default)]
pub struct Ctx {
    arrival: Option<Arrival>,
    target: Option<Target>,
    handoff: Handoff,
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        // One snapshot for the whole request: reading it, judging it, answering it.
        let snapshot = self.gw.snapshot();
        let arrival = match arrival::gather(session, &snapshot.config) {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(error = %e, "bad request");
                respond::write(session, crate::access::bad_request(&e), true).await?;
                return Ok(true);
            }
        };
        match dispatch::dispatch(&self.gw, &snapshot, &arrival).await {
            Action::Reply(reply) => respond::write(session, reply, false).await?,
            Action::Portal => {
                let reply = match respond::read_body(session).await {
                    Ok(body) => dispatch::portal(&self.gw, &snapshot, &arrival.facts, body).await,
                    Err(reply) => reply,
                };
                respond::write(session, reply, false).await?;
            }
            Action::Whoami { handoff } => {
                let mut upstream_req = session.req_header().clone();
                hygiene::prepare(&mut upstream_req, &arrival, &handoff)?;
                respond::write(session, whoami::reply(&upstream_req), false).await?;
            }
            Action::Proxy { target, handoff } => {
                ctx.arrival = Some(arrival);
                ctx.target = Some(target);
                ctx.handoff = handoff;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// What pingora's own error lines say about a request: method, host and
    /// path only. The query and headers may hold secrets (a callback code, an
    /// invite token, cookies) and never reach a log.
    fn request_summary(&self, session: &Session, _ctx: &Ctx) -> String {
        let req = session.req_header();
        let raw = req.raw_path();
        let end = raw
            .iter()
            .position(|&b| b == b'?' || b == b'#')
            .unwrap_or(raw.len());
        let host = req
            .headers
            .get(http::header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            .unwrap_or_default();
        format!(
            "{} {}, Host: {host}",
            req.method,
            String::from_utf8_lossy(&raw[..end])
        )
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        match &ctx.target {
            Some(t) => Ok(Box::new(HttpPeer::new(t.addr, t.tls, t.sni.clone()))),
            None => Err(Error::explain(
                ErrorType::InternalError,
                "no upstream chosen",
            )),
        }
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        match &ctx.arrival {
            Some(arrival) => hygiene::prepare(upstream_request, arrival, &ctx.handoff),
            None => Err(Error::explain(
                ErrorType::InternalError,
                "request not judged",
            )),
        }
    }
}
