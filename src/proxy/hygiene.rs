//! What the upstream receives: the request as it was judged, cleaned.
//!
//! - `Host` is the judged authority (also when an absolute-form request came
//!   without one), and the normalised path replaces the raw one (the query is
//!   kept as sent).
//! - A client's identity headers go, in any spelling; so does every header
//!   whose name holds `_` or `.` (CGI, PHP and many frameworks read
//!   `Remote_User` or `remote.user` as `Remote-User`; nginx drops such names by
//!   default too).
//! - Headers that change what a request means to some apps go whoever sent
//!   them: method overrides, `X-Original-URL`, `X-Rewrite-URL`,
//!   `X-Forwarded-Prefix/-Uri/-Port`, `X-Original-Method`.
//! - Forwarded headers (`X-Forwarded-For/-Proto/-Host`, `X-Real-IP`,
//!   `Forwarded`) are kept only from trusted proxies; `X-Forwarded-For` is
//!   appended to or replaced truthfully.
//! - Every header a client names in `Connection` goes, and `Connection` itself
//!   is rewritten (`Upgrade` for a WebSocket handshake, nothing otherwise), so
//!   no client can make stepgate's own headers hop-by-hop for the next hop.
//! - stepgate's own cookies go.

use pingora::http::RequestHeader;

use crate::access::{self, canonical_name};
use crate::policy::Identity;
use crate::session::cookie::cookies_without_ours;

use super::facts::Arrival;

/// Forwarded headers believed only from trusted proxies (exact spelling).
const FORWARDED: [&str; 5] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "forwarded",
];

/// Headers that make some apps serve another method or path than the one judged.
const MEANING: [&str; 9] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-original-method",
    "x-rewrite-url",
    "x-forwarded-prefix",
    "x-forwarded-uri",
    "x-forwarded-port",
];

/// Should a request header named `raw` (a parsed name: lower case) be removed before proxying?
fn dropped(raw: &str, trusted_peer: bool) -> bool {
    if raw.contains(['_', '.']) || access::is_identity_header(raw) {
        return true;
    }
    // Lower case without `_` or `.`: the name is its own canonical form.
    debug_assert_eq!(canonical_name(raw), raw);
    MEANING.contains(&raw) || (!trusted_peer && FORWARDED.contains(&raw))
}

/// The header names a client listed in `Connection` (lower case), besides the
/// connection options themselves.
fn connection_listed(req: &RequestHeader) -> Vec<String> {
    req.headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && !matches!(t.as_str(), "close" | "keep-alive" | "upgrade"))
        .collect()
}

/// Rewrite `req` (a copy of the downstream request) into what the upstream gets.
pub fn prepare(
    req: &mut RequestHeader,
    arrival: &Arrival,
    identity: Option<&Identity>,
) -> pingora::Result<()> {
    let facts = &arrival.facts;
    for name in connection_listed(req) {
        req.remove_header(name.as_str());
    }
    let websocket = req.headers.contains_key(http::header::UPGRADE);
    req.remove_header(&http::header::CONNECTION);
    if websocket {
        req.insert_header(http::header::CONNECTION, "Upgrade")?;
    }
    let names: Vec<http::HeaderName> = req.headers.keys().cloned().collect();
    for name in names {
        if dropped(name.as_str(), arrival.trusted_peer) {
            req.remove_header(&name);
        }
    }
    let authority = match facts.port {
        Some(p) => format!("{}:{p}", facts.host),
        None => facts.host.clone(),
    };
    // Most requests already name the judged authority, spelled the same: keep that one.
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    let same_host = hosts
        .next()
        .is_some_and(|h| h.as_bytes() == authority.as_bytes())
        && hosts.next().is_none();
    if !same_host {
        req.insert_header(http::header::HOST, authority.as_str())?;
    }
    // X-Forwarded-For: appended to for a trusted proxy, replaced otherwise.
    let xff = match req
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(prev) if arrival.trusted_peer && !prev.trim().is_empty() => {
            format!("{prev}, {}", arrival.peer)
        }
        _ => arrival.peer.to_string(),
    };
    req.insert_header("x-forwarded-for", xff)?;
    if !req.headers.contains_key("x-forwarded-proto") {
        req.insert_header(
            "x-forwarded-proto",
            if facts.https { "https" } else { "http" },
        )?;
    }
    if !req.headers.contains_key("x-forwarded-host") {
        req.insert_header("x-forwarded-host", authority.as_str())?;
    }
    let cookies = cookies_without_ours(&req.headers);
    req.remove_header(&http::header::COOKIE);
    for c in cookies {
        req.append_header(http::header::COOKIE, c)?;
    }
    if let Some(id) = identity {
        for (name, value) in access::identity_headers(Some(id)) {
            req.insert_header(name, value)?;
        }
    }
    let target = match &facts.query {
        Some(q) => format!("{}?{q}", facts.path),
        None => facts.path.clone(),
    };
    if req.raw_path() != target.as_bytes() {
        req.set_raw_path(target.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_spellings_and_meaning_changers_always_go() {
        for name in [
            "remote_user",
            "x.authenticated.user",
            "x_forwarded_proto",
            "x-http-method-override",
            "x-forwarded-prefix",
            "x-original-url",
            "remote-user",
        ] {
            assert!(dropped(name, true), "{name}");
        }
        assert!(dropped("x-forwarded-for", false));
        assert!(!dropped("x-forwarded-for", true));
        assert!(!dropped("accept", false));
    }
}
