//! Forward-auth endpoints for front proxies.
//!
//! Each endpoint believes only its own family of headers:
//! - `/.stepgate/authz/forward-auth` (Traefik `ForwardAuth`, Caddy
//!   `forward_auth`): `X-Forwarded-Method`, `-Proto`, `-Host` and `-Uri`, all
//!   four required.
//! - `/.stepgate/authz/auth-request` (nginx `auth_request`): `X-Original-URL`
//!   and `X-Original-Method`, both required; the subrequest's `Host` (the
//!   client's own `Host` header) must name the same host as the URL, so an
//!   absolute-form request whose `Host` points elsewhere is refused.
//!
//! A request carrying any header of the other family, or two different copies
//! of one header, is 400: Traefik and Caddy pass a client's headers to the
//! auth endpoint, so a header the front proxy does not set may be the
//! client's. Only peers in `trusted_proxies` may ask (others get 403). The
//! described request is built by [`request::facts`], the same builder as
//! inline mode, and judged by the same [`access::judge`]. Allowed: 200 with
//! every identity header (empty when there is no value), the default six and
//! the names the matched rule's upstream maps (`identity_headers`), which the
//! front proxy copies onto the request. A client token's header cannot be
//! removed from here: the front proxy drops it (see the deploy snippets).

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::access::{self, Mode, Outcome};
use crate::config::Runtime;
use crate::gateway::{Gateway, Snapshot};
use crate::headers;
use crate::reply::Reply;
use crate::request::Facts;
use crate::request::forwarded::{self, is_trusted};
use crate::request::{self, BadRequest, Described};
use crate::reserved;
use crate::routing::normalize_host;

/// Which front-proxy dialect a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Traefik and Caddy.
    ForwardAuth,
    /// nginx.
    AuthRequest,
}

/// The headers Traefik and Caddy describe the original request with.
const FORWARD_AUTH: [&str; 4] = [
    "x-forwarded-method",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-uri",
];
/// The headers the nginx template describes the original request with.
const AUTH_REQUEST: [&str; 2] = ["x-original-url", "x-original-method"];

impl Endpoint {
    /// The endpoint for a normalised request path, if it is one.
    pub fn for_path(path: &str) -> Option<Self> {
        match path {
            reserved::FORWARD_AUTH => Some(Self::ForwardAuth),
            reserved::AUTH_REQUEST => Some(Self::AuthRequest),
            _ => None,
        }
    }

    fn mode(self) -> Mode {
        match self {
            Endpoint::ForwardAuth => Mode::ForwardAuth,
            Endpoint::AuthRequest => Mode::AuthRequest,
        }
    }
}

/// Answer a forward-auth request that arrived from `peer`.
pub async fn handle(
    gw: &Gateway,
    snapshot: &Snapshot,
    arrived: &Facts,
    peer: IpAddr,
    endpoint: Endpoint,
) -> Reply {
    let rt = &snapshot.config;
    if !is_trusted(rt, peer) {
        tracing::warn!(%peer, "forward-auth request from an untrusted peer");
        return Reply::new(StatusCode::FORBIDDEN).body(
            "text/plain; charset=utf-8",
            "403 Forbidden: forward-auth is only answered to trusted_proxies\n",
        );
    }
    let judged = match original_request(rt, &arrived.headers, peer, endpoint) {
        Ok(f) => f,
        Err(why) => {
            tracing::info!(%why, "forward-auth request does not describe a valid request");
            return access::bad_request(&why);
        }
    };
    let verdict = match access::judge(gw, snapshot, &judged).await {
        Ok(v) => v,
        Err(why) => return access::bad_request(&why),
    };
    match access::answer(snapshot, &judged, verdict, endpoint.mode()) {
        Outcome::Pass { rule, identity } => {
            let mut reply = Reply::new(StatusCode::OK);
            let mapped = rule.and_then(|r| r.identity_headers.as_deref());
            for (name, value) in headers::identity_headers(identity.as_ref(), mapped) {
                let v = HeaderValue::from_bytes(value.as_bytes())
                    .unwrap_or(HeaderValue::from_static(""));
                reply.headers.push((name, v));
            }
            reply.header(header::CACHE_CONTROL, "no-store")
        }
        Outcome::Reply(reply) => reply,
    }
}

/// The request the front proxy asks about, rebuilt from its own family of headers.
fn original_request(
    rt: &Runtime,
    headers: &HeaderMap,
    peer: IpAddr,
    endpoint: Endpoint,
) -> Result<Facts, BadRequest> {
    let (own, other): (&[&'static str], &[&'static str]) = match endpoint {
        Endpoint::ForwardAuth => (&FORWARD_AUTH, &AUTH_REQUEST),
        Endpoint::AuthRequest => (&AUTH_REQUEST, &FORWARD_AUTH),
    };
    if other.iter().any(|h| headers.contains_key(*h)) {
        return Err(BadRequest::Forwarded(
            "both X-Forwarded-{Method,Proto,Host,Uri} and X-Original-{URL,Method}",
        ));
    }
    let mut values = Vec::with_capacity(own.len());
    for name in own {
        values.push(forwarded::single(headers, name)?.ok_or(BadRequest::Missing(name))?);
    }
    let described = |method, https, authority, target| Described {
        method,
        https,
        authority,
        target,
        headers,
        peer,
    };
    match (endpoint, values.as_slice()) {
        (Endpoint::ForwardAuth, [method, proto, host, uri]) => {
            let https = forwarded::https_from_proto("X-Forwarded-Proto", proto)?;
            request::facts(rt, described(method, https, host, uri))
        }
        (Endpoint::AuthRequest, [url, method]) => {
            let not_absolute =
                BadRequest::Forwarded("X-Original-URL is not an absolute http(s) URL");
            let target = request::parse_target(url).map_err(|e| match e {
                BadRequest::Fragment => e,
                _ => not_absolute.clone(),
            })?;
            let (Some(https), Some(authority)) = (target.https, target.authority.as_deref()) else {
                return Err(not_absolute);
            };
            // nginx picks its server block from an absolute-form target, and the
            // template sends that server's name in the URL and the client's own
            // Host header as the Host: they must name the same host.
            let host_header = forwarded::single(headers, "host")?.ok_or(BadRequest::MissingHost)?;
            if normalize_host(host_header)? != normalize_host(authority)? {
                return Err(BadRequest::HostMismatch);
            }
            request::facts(rt, described(method, https, authority, &target.origin_form))
        }
        _ => Err(BadRequest::Forwarded("unexpected forwarded headers")),
    }
}
