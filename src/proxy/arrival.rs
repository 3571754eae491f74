//! Gather a request's facts from a pingora session, refusing what is ambiguous.
//!
//! This is the only place that reads the downstream request for judging. It
//! checks what only the raw request shows (both `Content-Length` and
//! `Transfer-Encoding`, a repeated `Host`, a `Host` that differs from an
//! absolute-form target), then hands the rest to [`request::facts`], the same
//! builder forward-auth uses. Any [`BadRequest`] is answered 400 with a closed
//! connection.

use std::net::{IpAddr, Ipv4Addr};

use pingora::protocols::http::ServerSession;

use crate::config::Runtime;
use crate::request::Facts;
use crate::request::forwarded::{self, canonical_ip, is_trusted};
use crate::request::{self, BadRequest, Described};

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
    let target = request::parse_target(raw)?;
    let authority = match (host_header, target.authority.as_deref()) {
        (Some(h), Some(a)) if !h.eq_ignore_ascii_case(a) => return Err(BadRequest::HostMismatch),
        (Some(h), _) => h,
        (None, Some(a)) => a,
        (None, None) => return Err(BadRequest::MissingHost),
    };
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| canonical_ip(a.ip()));
    let trusted_peer = is_trusted(rt, peer);
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    // A trusted front proxy that terminated TLS says so; nobody else is believed.
    let forwarded_https = if trusted_peer {
        match forwarded::single(&req.headers, "x-forwarded-proto")? {
            Some(proto) => forwarded::https_from_proto("X-Forwarded-Proto", proto)?,
            None => false,
        }
    } else {
        false
    };
    let facts = request::facts(
        rt,
        Described {
            method: req.method.as_str(),
            https: tls || forwarded_https,
            authority,
            target: &target.origin_form,
            headers: &req.headers,
            peer,
        },
    )?;
    Ok(Arrival {
        facts,
        peer,
        trusted_peer,
        tls,
    })
}

/// pingora drops `Content-Length` when `Transfer-Encoding` is present and a
/// fragment from the target, so the raw header block is the only place the
/// conflict or the `#` is still visible.
fn check_raw_framing(session: &ServerSession) -> Result<(), BadRequest> {
    let ServerSession::H1(h1) = session else {
        return Ok(());
    };
    let raw = h1.get_headers_raw_bytes();
    // The parsed target has lost any fragment; the request line still shows it.
    let request_line = raw
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default()
        .trim_ascii_end();
    if request_line.contains(&b'#') {
        return Err(BadRequest::Fragment);
    }
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
