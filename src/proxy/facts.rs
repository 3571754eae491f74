//! Gather a request's facts from a pingora session, refusing what is ambiguous.
//!
//! This is the only place that reads the downstream request for judging. A
//! request whose framing or authority could mean two things to two programs
//! (both `Content-Length` and `Transfer-Encoding`, a repeated `Host`, a `Host`
//! that differs from an absolute-form target, a bad host or path) gets
//! [`BadRequest`], which the hook answers with 400 and a closed connection.

use std::net::{IpAddr, Ipv4Addr};

use pingora::protocols::http::ServerSession;

use crate::authz;
use crate::config::Runtime;
use crate::gateway::Facts;
use crate::routing::{normalize_host, normalize_path};

/// What arrived on one downstream request.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The request as judged (normalised host and path, client address).
    pub facts: Facts,
    /// The TCP peer.
    pub peer: IpAddr,
    /// Is the peer a trusted proxy?
    pub trusted_peer: bool,
    /// Did the request reach us over TLS?
    pub tls: bool,
}

/// Why a request is refused before any rule is looked at.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BadRequest {
    #[error("both Content-Length and Transfer-Encoding")]
    AmbiguousFraming,
    #[error("more than one Host header")]
    RepeatedHost,
    #[error("Host differs from the request target's authority")]
    HostMismatch,
    #[error("no Host")]
    MissingHost,
    #[error("host: {0}")]
    Host(#[from] crate::routing::HostError),
    #[error("path: {0}")]
    Path(#[from] crate::routing::PathError),
    #[error("request target is not valid")]
    Target,
}

/// Read the facts of the request on `session`.
pub fn gather(session: &ServerSession, rt: &Runtime) -> Result<Arrival, BadRequest> {
    check_raw_framing(session)?;
    let req = session.req_header();
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(BadRequest::RepeatedHost);
    }
    let host_header = match host_header {
        Some(v) => Some(v.to_str().map_err(|_| BadRequest::Target)?),
        None => None,
    };
    let raw = std::str::from_utf8(req.raw_path()).map_err(|_| BadRequest::Target)?;
    let (authority, target) = split_target(raw)?;
    let host_raw = match (host_header, authority) {
        (Some(h), Some(a)) if !h.eq_ignore_ascii_case(a) => return Err(BadRequest::HostMismatch),
        (Some(h), _) => h,
        (None, Some(a)) => a,
        (None, None) => return Err(BadRequest::MissingHost),
    };
    let host = normalize_host(host_raw)?;
    let (raw_path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    let path = normalize_path(raw_path)?;
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| {
            authz::canonical_ip(a.ip())
        });
    let trusted_peer = authz::is_trusted(rt, peer);
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    let forwarded_https = trusted_peer
        && req
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let mut headers = req.headers.clone();
    if host_header.is_none()
        && let Ok(v) = http::HeaderValue::from_str(host_raw)
    {
        headers.insert(http::header::HOST, v);
    }
    let facts = Facts {
        method: req.method.as_str().to_string(),
        host,
        path,
        query,
        https: tls || forwarded_https,
        client_ip: authz::client_ip(rt, peer, &req.headers),
        headers,
    };
    Ok(Arrival {
        facts,
        peer,
        trusted_peer,
        tls,
    })
}

/// `http://h:1/p?q` → (Some("h:1"), "/p?q"); `/p?q` → (None, "/p?q").
fn split_target(raw: &str) -> Result<(Option<&str>, &str), BadRequest> {
    if raw.starts_with('/') {
        return Ok((None, raw));
    }
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &raw[7..]
    } else if lower.starts_with("https://") {
        &raw[8..]
    } else {
        return Err(BadRequest::Target);
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains('@') {
        return Err(BadRequest::Target);
    }
    let target = &rest[end..];
    if target.is_empty() || target.starts_with('?') {
        // "http://h" and "http://h?q" mean the root.
        return Ok((
            Some(authority),
            if target.is_empty() { "/" } else { target },
        ));
    }
    Ok((Some(authority), target))
}

/// pingora drops `Content-Length` when `Transfer-Encoding` is present, so the
/// raw header block is the only place the conflict is still visible.
fn check_raw_framing(session: &ServerSession) -> Result<(), BadRequest> {
    let ServerSession::H1(h1) = session else {
        return Ok(());
    };
    let raw = h1.get_headers_raw_bytes();
    let (mut cl, mut te, mut host) = (false, false, 0usize);
    for line in raw.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            cl = true;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
        } else if name.eq_ignore_ascii_case(b"host") {
            host += 1;
        }
    }
    if cl && te {
        return Err(BadRequest::AmbiguousFraming);
    }
    if host > 1 {
        return Err(BadRequest::RepeatedHost);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_targets() {
        assert_eq!(split_target("/a?b").ok(), Some((None, "/a?b")));
        assert_eq!(
            split_target("http://h:1/p?q").ok(),
            Some((Some("h:1"), "/p?q"))
        );
        assert_eq!(split_target("HTTPS://h").ok(), Some((Some("h"), "/")));
        assert!(split_target("http://u@h/").is_err());
        assert!(split_target("*").is_err());
    }
}
