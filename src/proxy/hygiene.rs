//! What the upstream receives: the request as it was judged, cleaned.
//!
//! - `Host` is the judged authority (also when an absolute-form request came
//!   without one), and the normalised path replaces the raw one (the query is
//!   kept as sent).
//! - A client's identity headers go, in any spelling, and so do the names any
//!   upstream maps the identity to (`identity_headers`, the union over every
//!   upstream, whatever upstream the rule uses: two upstreams may be one app
//!   at one address); so does every header
//!   whose name holds `_` or `.` (CGI, PHP and many frameworks read
//!   `Remote_User` or `remote.user` as `Remote-User`; nginx drops such names by
//!   default too).
//! - The header a rule takes client tokens from goes, unless the rule keeps
//!   it; and on every rule (bypass and token-less passkey rules included) any
//!   value that carries a token goes from every place a rule could take one
//!   from (`Authorization`, each `tokens.from.header`), except from exactly
//!   the place the matched rule takes tokens from with `keep: true`.
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

use std::sync::Arc;

use http::HeaderName;
use pingora::http::RequestHeader;

use crate::client_token;
use crate::config::{IdentityHeaders, TokenFrom};
use crate::headers::{FORWARDED, MEANING, Stripped, is_identity_header};
use crate::policy::Identity;
use crate::session::cookie::cookies_without_ours;

use super::arrival::Arrival;

/// What the upstream request carries over from the verdict.
#[derive(Debug, Clone, Default)]
pub struct Handoff {
    /// Who the user is; `None` for a bypass rule.
    pub identity: Option<Identity>,
    /// The upstream's own names for the identity.
    pub mapped: Option<Arc<IdentityHeaders>>,
    /// The header that carried a client token: removed.
    pub carrier: Option<HeaderName>,
    /// Where the rule takes tokens from with `keep: true`: a token there stays.
    pub kept: Option<TokenFrom>,
    /// The config's mapped names and token places, removed on every rule.
    pub stripped: Arc<Stripped>,
}

/// Should a request header named `raw` (lower case, as `http` keeps names) be
/// removed before proxying?
fn dropped(raw: &str, trusted_peer: bool, handoff: &Handoff) -> bool {
    if raw.contains(['_', '.']) || is_identity_header(raw) {
        return true;
    }
    // Without '_' or '.', a lower-case name is its own canonical spelling.
    if handoff.stripped.is_mapped(raw)
        || handoff.carrier.as_ref().is_some_and(|c| c.as_str() == raw)
    {
        return true;
    }
    MEANING.contains(&raw) || (!trusted_peer && FORWARDED.contains(&raw))
}

/// Does header `name` of `req` carry a client token that must not reach the
/// app (one of its values, unless the rule keeps tokens from exactly there)?
fn carries_token(req: &RequestHeader, name: &HeaderName, handoff: &Handoff) -> bool {
    if !handoff.stripped.is_token_place(name) {
        return false;
    }
    let kept = handoff.kept.as_ref().filter(|from| from.carrier() == name);
    req.headers.get_all(name).iter().any(|v| {
        client_token::carries(v) && !kept.is_some_and(|from| client_token::in_place(from, v))
    })
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
    handoff: &Handoff,
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
        if dropped(name.as_str(), arrival.trusted_peer, handoff)
            || carries_token(req, &name, handoff)
        {
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
    if let Some(id) = &handoff.identity {
        for (name, value) in crate::headers::identity_headers(Some(id), handoff.mapped.as_deref()) {
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
        let none = Handoff::default();
        for name in [
            "remote_user",
            "x.authenticated.user",
            "x_forwarded_proto",
            "x-http-method-override",
            "x-forwarded-prefix",
            "x-original-url",
            "remote-user",
        ] {
            assert!(dropped(name, true, &none), "{name}");
        }
        assert!(dropped("x-forwarded-for", false, &none));
        assert!(!dropped("x-forwarded-for", true, &none));
        assert!(!dropped("accept", false, &none));
    }

    #[test]
    fn mapped_names_and_the_token_carrier_go() {
        let user = HeaderName::from_static("x-webauth-user");
        let handoff = Handoff {
            carrier: Some(http::header::AUTHORIZATION),
            stripped: Arc::new(Stripped::new([&user], [])),
            ..Default::default()
        };
        for name in [
            "x-webauth-user",
            "x_webauth_user",
            "x.webauth-user",
            "authorization",
        ] {
            assert!(dropped(name, true, &handoff), "{name}");
        }
        assert!(!dropped("x-webauth-email", true, &handoff));
        assert!(!dropped("authorization", true, &Handoff::default()));
    }

    #[test]
    fn a_token_goes_from_every_place_but_the_one_a_rule_keeps() {
        let custom = HeaderName::from_static("x-stepgate-token");
        let stripped = Arc::new(Stripped::new([], [&custom]));
        let token = format!("{}{}", client_token::PREFIX, "A".repeat(43));
        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        req.insert_header("authorization", format!("Bearer {token}"))
            .expect("header");
        req.insert_header("x-stepgate-token", token.as_str())
            .expect("header");
        req.insert_header("x-other", token.as_str())
            .expect("header");
        let auth = http::header::AUTHORIZATION;
        let other = HeaderName::from_static("x-other");
        let bypass = Handoff {
            stripped: stripped.clone(),
            ..Default::default()
        };
        assert!(carries_token(&req, &auth, &bypass));
        assert!(carries_token(&req, &custom, &bypass));
        assert!(
            !carries_token(&req, &other, &bypass),
            "no rule takes one there"
        );
        let keep_bearer = Handoff {
            kept: Some(TokenFrom::Bearer),
            stripped: stripped.clone(),
            ..Default::default()
        };
        assert!(!carries_token(&req, &auth, &keep_bearer));
        assert!(carries_token(&req, &custom, &keep_bearer));
        let keep_basic = Handoff {
            kept: Some(TokenFrom::Basic),
            stripped,
            ..Default::default()
        };
        assert!(carries_token(&req, &auth, &keep_basic), "not that place");
    }
}
