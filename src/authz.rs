//! Forward-auth endpoints for front proxies.
//!
//! - `/.stepgate/authz/forward-auth`: Traefik `ForwardAuth` and Caddy
//!   `forward_auth`, which describe the original request in
//!   `X-Forwarded-Method/Proto/Host/Uri`.
//! - `/.stepgate/authz/auth-request`: nginx `auth_request`, which sends
//!   `X-Original-URL` (and `X-Original-Method`) or the same `X-Forwarded-*`.
//!
//! Only peers in `trusted_proxies` may ask (others get 403): the answer trusts
//! what they say the request was. The original request is then judged by the
//! same [`access::judge`] the inline proxy uses. Allowed: 200 with every
//! identity header (empty when there is no value).

use std::net::IpAddr;

use http::{HeaderValue, StatusCode, header};

use crate::access::{self, Mode};
use crate::config::Runtime;
use crate::gateway::{Facts, Gateway, Reply};
use crate::policy::Decision;
use crate::routing::{normalize_host, normalize_path};

/// Which front-proxy dialect a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Traefik and Caddy.
    ForwardAuth,
    /// nginx.
    AuthRequest,
}

impl Endpoint {
    /// The endpoint for a normalised request path, if it is one.
    pub fn for_path(path: &str) -> Option<Self> {
        match path {
            "/.stepgate/authz/forward-auth" => Some(Self::ForwardAuth),
            "/.stepgate/authz/auth-request" => Some(Self::AuthRequest),
            _ => None,
        }
    }
}

/// Is `ip` one of the configured trusted proxies?
pub fn is_trusted(rt: &Runtime, ip: IpAddr) -> bool {
    let ip = canonical_ip(ip);
    rt.trusted_proxies.iter().any(|n| n.contains(&ip))
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client address a request came from: the peer, or — when the peer is a
/// trusted proxy — the right-most `X-Forwarded-For` entry that is not itself
/// a trusted proxy.
pub fn client_ip(rt: &Runtime, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
    let peer = canonical_ip(peer);
    if !is_trusted(rt, peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(canonical_ip)
        .collect();
    while let Some(ip) = hops.pop() {
        if !is_trusted(rt, ip) {
            return ip;
        }
    }
    peer
}

/// Answer a forward-auth request that arrived from `peer`.
pub async fn handle(
    gw: &Gateway,
    rt: &Runtime,
    arrived: &Facts,
    peer: IpAddr,
    endpoint: Endpoint,
) -> Reply {
    if !is_trusted(rt, peer) {
        tracing::warn!(%peer, "forward-auth request from an untrusted peer");
        return Reply::new(StatusCode::FORBIDDEN).body(
            "text/plain; charset=utf-8",
            "403 Forbidden: forward-auth is only answered to trusted_proxies\n",
        );
    }
    let judged = match original_request(rt, arrived, peer, endpoint) {
        Ok(f) => f,
        Err(why) => {
            tracing::info!(%why, "forward-auth request does not describe a valid request");
            return Reply::new(StatusCode::BAD_REQUEST).body(
                "text/plain; charset=utf-8",
                format!("400 Bad Request: {why}\n"),
            );
        }
    };
    let verdict = access::judge(gw, rt, &judged).await;
    match &verdict.decision {
        Decision::Allow { identity } => {
            let mut reply = Reply::new(StatusCode::OK);
            for (name, value) in access::identity_headers(identity.as_ref()) {
                let v = HeaderValue::from_bytes(value.as_bytes())
                    .unwrap_or(HeaderValue::from_static(""));
                reply.headers.push((name, v));
            }
            reply.header(header::CACHE_CONTROL, "no-store")
        }
        other => {
            let mode = match endpoint {
                Endpoint::ForwardAuth => Mode::ForwardAuth,
                Endpoint::AuthRequest => Mode::AuthRequest,
            };
            access::refusal(rt, &judged, other, mode)
        }
    }
}

/// The request the front proxy asks about, rebuilt from its headers.
fn original_request(
    rt: &Runtime,
    arrived: &Facts,
    peer: IpAddr,
    endpoint: Endpoint,
) -> Result<Facts, String> {
    let h = |name: &str| {
        arrived
            .header(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let original_url = match endpoint {
        Endpoint::AuthRequest => h("x-original-url"),
        Endpoint::ForwardAuth => None,
    };
    let (https, authority, target) = match original_url {
        Some(url) => split_absolute(url).ok_or("X-Original-URL is not an absolute http(s) URL")?,
        None => {
            let proto = h("x-forwarded-proto").unwrap_or("http");
            let https = match proto.to_ascii_lowercase().as_str() {
                "https" | "wss" => true,
                "http" | "ws" => false,
                _ => return Err("X-Forwarded-Proto is neither http nor https".into()),
            };
            let host = h("x-forwarded-host").ok_or("missing X-Forwarded-Host")?;
            let uri = h("x-forwarded-uri").unwrap_or("/");
            (https, host.to_string(), uri.to_string())
        }
    };
    let method = h("x-original-method")
        .or_else(|| h("x-forwarded-method"))
        .unwrap_or("GET")
        .to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
        return Err("bad forwarded method".into());
    }
    let host = normalize_host(&authority).map_err(|e| format!("forwarded host: {e}"))?;
    let (raw_path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.clone(), None),
    };
    let raw_path = raw_path.split('#').next().unwrap_or("/").to_string();
    let path = normalize_path(&raw_path).map_err(|e| format!("forwarded path: {e}"))?;
    let mut headers = arrived.headers.clone();
    let host_value = HeaderValue::from_str(&authority).map_err(|_| "bad forwarded host")?;
    headers.insert(header::HOST, host_value);
    Ok(Facts {
        method,
        host,
        path,
        query,
        https,
        client_ip: client_ip(rt, peer, &arrived.headers),
        headers,
    })
}

/// `https://host:port/p?q` → (https, "host:port", "/p?q").
fn split_absolute(url: &str) -> Option<(bool, String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let target = match &rest[end..] {
        "" => "/".to_string(),
        t if t.starts_with('?') => format!("/{t}"),
        t if t.starts_with('#') => "/".to_string(),
        t => t.to_string(),
    };
    Some((https, authority.to_string(), target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_absolute_urls() {
        assert_eq!(
            split_absolute("https://App.home.lab:8443/a/b?x=1"),
            Some((true, "App.home.lab:8443".into(), "/a/b?x=1".into()))
        );
        assert_eq!(
            split_absolute("http://h?q"),
            Some((false, "h".into(), "/?q".into()))
        );
        assert_eq!(split_absolute("ftp://h/"), None);
        assert_eq!(split_absolute("https://u@h/"), None);
        assert_eq!(split_absolute("/relative"), None);
    }
}
