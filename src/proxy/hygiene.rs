//! What the upstream receives: the request as it arrived, cleaned.
//!
//! Client-sent identity headers go (in any case, and in `_` or `.` spellings),
//! stepgate's own cookies go, forwarded headers are set truthfully, and the
//! normalised path replaces the raw one (the query is kept as sent).

use pingora::http::RequestHeader;

use crate::access::{self, canonical_name};
use crate::policy::Identity;

use super::facts::Arrival;

/// Forwarded headers believed only from trusted proxies.
const FORWARDED: [&str; 11] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-method",
    "x-forwarded-uri",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-original-url",
    "x-original-method",
    "x-real-ip",
    "forwarded",
];

/// Rewrite `req` (a copy of the downstream request) into what the upstream gets.
pub fn prepare(
    req: &mut RequestHeader,
    arrival: &Arrival,
    identity: Option<&Identity>,
) -> pingora::Result<()> {
    let names: Vec<http::HeaderName> = req.headers.keys().cloned().collect();
    for name in names {
        let raw = name.as_str();
        let canon = canonical_name(raw);
        let is_forwarded = FORWARDED.contains(&canon.as_str());
        // Odd spellings of forwarded headers are never believed; exact ones only from trusted peers.
        let drop = access::is_identity_header(raw)
            || (is_forwarded && (canon != raw || !arrival.trusted_peer));
        if drop {
            req.remove_header(&name);
        }
    }
    let facts = &arrival.facts;
    // X-Forwarded-For: appended to for a trusted proxy, replaced otherwise.
    let peer = arrival.peer.to_string();
    let xff = match req
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(prev) if arrival.trusted_peer && !prev.trim().is_empty() => format!("{prev}, {peer}"),
        _ => peer,
    };
    req.insert_header("x-forwarded-for", xff)?;
    if !req.headers.contains_key("x-forwarded-proto") {
        req.insert_header(
            "x-forwarded-proto",
            if facts.https { "https" } else { "http" },
        )?;
    }
    if !req.headers.contains_key("x-forwarded-host")
        && let Some(h) = facts.headers.get(http::header::HOST)
    {
        req.insert_header("x-forwarded-host", h.clone())?;
    }
    strip_our_cookies(req)?;
    if let Some(id) = identity {
        for (name, value) in access::identity_headers(Some(id)) {
            req.insert_header(name, value)?;
        }
    }
    let target = match &facts.query {
        Some(q) => format!("{}?{q}", facts.path),
        None => facts.path.clone(),
    };
    req.set_raw_path(target.as_bytes())?;
    Ok(())
}

/// Is a cookie name one of stepgate's (`stepgate…`, also with `__Host-`/`__Secure-`)?
pub fn is_our_cookie(name: &str) -> bool {
    let n = name.trim();
    let n = n
        .strip_prefix("__Host-")
        .or_else(|| n.strip_prefix("__Secure-"))
        .unwrap_or(n);
    n.to_ascii_lowercase().starts_with("stepgate")
}

fn strip_our_cookies(req: &mut RequestHeader) -> pingora::Result<()> {
    let all: Vec<String> = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| !kv.is_empty())
        .filter(|kv| !is_our_cookie(kv.split('=').next().unwrap_or("")))
        .map(str::to_string)
        .collect();
    req.remove_header(&http::header::COOKIE);
    if !all.is_empty() {
        req.insert_header(http::header::COOKIE, all.join("; "))?;
    }
    Ok(())
}
