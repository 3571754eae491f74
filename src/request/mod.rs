//! What a request is, decided once: the one builder of [`Facts`] for the inline
//! proxy and both forward-auth endpoints.
//!
//! Each edge only says what arrived — a method, a scheme, an authority, a
//! request target, the headers and the peer — in a [`Described`] request; then
//! [`facts`] applies every check, so inline and forward-auth refuse exactly the
//! same things: a method that is not an upper-case token, a bad host or port, a
//! target that is not origin-form, a `#` (raw or encoded), a path that could
//! mean two things, control characters in the query, an upgrade other than
//! WebSocket, a port that no listener, front proxy or port mapping the
//! operator declared serves, an unparsable `X-Forwarded-For` from a trusted proxy. Anything in
//! doubt is a [`BadRequest`] (answered 400), never a guess.
//!
//! [`forwarded`] owns whom forwarded headers are believed from and what they
//! say (client address, scheme, single-valued headers).

mod facts;
pub mod forwarded;

pub use facts::Facts;

use std::net::IpAddr;

use http::HeaderMap;

use crate::config::Runtime;
use crate::routing::{AmbiguousCase, HostError, PathError, normalize_authority, normalize_path};

/// Why a request is refused before any rule is looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    Host(#[from] HostError),
    #[error("port {0} is not one this gateway serves (the operator lists it under served.ports)")]
    PortNotServed(u16),
    #[error("path: {0}")]
    Path(#[from] PathError),
    #[error("request target is not valid")]
    Target,
    #[error("a request target carries no fragment (\"#\")")]
    Fragment,
    #[error("the method is not an upper-case HTTP method name")]
    Method,
    #[error("only WebSocket upgrades are forwarded")]
    Upgrade,
    #[error("X-Forwarded-For is not a list of IP addresses")]
    ForwardedFor,
    #[error("{0} must be one of http, https, ws, wss")]
    Proto(&'static str),
    #[error("{0} is sent twice with different values")]
    Repeated(&'static str),
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{0}")]
    Forwarded(&'static str),
    #[error("{0}")]
    Case(#[from] AmbiguousCase),
}

/// What an edge saw of a request, before any check.
#[derive(Debug, Clone, Copy)]
pub struct Described<'a> {
    /// The method as sent.
    pub method: &'a str,
    /// Did the browser use https (TLS here, or a trusted proxy says so)?
    pub https: bool,
    /// `host[:port]` as the client addressed it.
    pub authority: &'a str,
    /// The origin-form request target: `/path?query`.
    pub target: &'a str,
    /// The headers the judged request carries (cookies, `Accept`, `Upgrade`…).
    pub headers: &'a HeaderMap,
    /// The TCP peer (IPv4-mapped addresses already folded to IPv4).
    pub peer: IpAddr,
}

/// Check and normalise a described request into the facts every decision reads.
pub fn facts(rt: &Runtime, d: Described<'_>) -> Result<Facts, BadRequest> {
    let method = method(d.method)?;
    let (host, port) = normalize_authority(d.authority)?;
    let (path, query) = split_origin_form(d.target)?;
    check_upgrade(d.headers)?;
    let client_ip = forwarded::client_ip(rt, d.peer, d.headers)?;
    let default_port = if d.https { 443 } else { 80 };
    let port = port.filter(|p| *p != default_port);
    // An origin at a port nobody serves is someone else's: never judged,
    // bound to a browser or given a sign-in code.
    if let Some(p) = port
        && !rt.served.port(d.https, Some(p))
    {
        return Err(BadRequest::PortNotServed(p));
    }
    Ok(Facts {
        method,
        host,
        port,
        path,
        query,
        https: d.https,
        client_ip,
        headers: d.headers.clone(),
    })
}

/// A method is an upper-case token (`GET`, `PROPFIND`, `VERSION-CONTROL`): a
/// lower-case `get` would match no `methods:` list here yet mean GET to an app
/// that folds case.
fn method(raw: &str) -> Result<http::Method, BadRequest> {
    let upper = !raw.is_empty()
        && raw.len() <= 32
        && raw
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
    if !upper {
        return Err(BadRequest::Method);
    }
    http::Method::from_bytes(raw.as_bytes()).map_err(|_| BadRequest::Method)
}

/// `/p?q` → (normalised path, query). No fragment, no control characters or
/// spaces anywhere, and a path that normalises without doubt.
fn split_origin_form(target: &str) -> Result<(String, Option<String>), BadRequest> {
    if !target.starts_with('/') {
        return Err(BadRequest::Target);
    }
    if target.contains('#') {
        return Err(BadRequest::Fragment);
    }
    let (raw_path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    if let Some(q) = query
        && q.bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b >= 0x80)
    {
        return Err(BadRequest::Target);
    }
    let path = normalize_path(raw_path)?;
    Ok((path, query.map(str::to_string)))
}

/// A request target as a client or front proxy wrote it, split by the `http`
/// crate's URI parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `Some(true)` for `https://…`, `Some(false)` for `http://…`, `None` for
    /// origin-form.
    pub https: Option<bool>,
    /// The authority of an absolute-form target.
    pub authority: Option<String>,
    /// The origin-form rest: `/path?query` (an empty path is `/`).
    pub origin_form: String,
}

/// Split a request target: origin-form `/p?q`, or absolute-form
/// `http(s)://authority/p?q`. A fragment, user info, another scheme, or the
/// authority and asterisk forms are refused. The URI parser drops fragments,
/// so a `#` is refused before it can be hidden.
pub fn parse_target(raw: &str) -> Result<Target, BadRequest> {
    if raw.contains('#') {
        return Err(BadRequest::Fragment);
    }
    let uri = http::Uri::try_from(raw).map_err(|_| BadRequest::Target)?;
    let https = match uri.scheme_str() {
        None if raw.starts_with('/') => None,
        Some(s) if s.eq_ignore_ascii_case("https") => Some(true),
        Some(s) if s.eq_ignore_ascii_case("http") => Some(false),
        _ => return Err(BadRequest::Target),
    };
    let authority = match (https, uri.authority()) {
        (None, None) => None,
        (Some(_), Some(a)) if !a.as_str().is_empty() && !a.as_str().contains('@') => {
            Some(a.as_str().to_string())
        }
        _ => return Err(BadRequest::Target),
    };
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    let origin_form = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    Ok(Target {
        https,
        authority,
        origin_form,
    })
}

/// Only `Upgrade: websocket` is ever honoured; `h2c` (with or without
/// `HTTP2-Settings`) or any other protocol is refused rather than forwarded.
fn check_upgrade(headers: &HeaderMap) -> Result<(), BadRequest> {
    if headers.contains_key("http2-settings") {
        return Err(BadRequest::Upgrade);
    }
    let mut upgrades = headers.get_all(http::header::UPGRADE).iter();
    match (upgrades.next(), upgrades.next()) {
        (None, _) => Ok(()),
        (Some(v), None) if v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket") => Ok(()),
        _ => Err(BadRequest::Upgrade),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> Runtime {
        let yaml = r#"
listen: 127.0.0.1:8080
trusted_proxies: [10.0.0.1/32]
portal: { url: "https://auth.home.lab" }
served: { ports: [8443] }
secrets: { cookie_keys: [/dev/null] }
users: { alice: {} }
rules: [ { name: app, hosts: [app.home.lab], policy: passkey } ]
"#;
        crate::config::test_runtime(yaml)
    }

    #[test]
    fn targets_split_in_both_forms() {
        let t = |raw| parse_target(raw);
        let whole = |https, authority: Option<&str>, rest: &str| Target {
            https,
            authority: authority.map(str::to_string),
            origin_form: rest.to_string(),
        };
        assert_eq!(t("/a/b?x=1"), Ok(whole(None, None, "/a/b?x=1")));
        assert_eq!(
            t("https://App.home.lab:8443/a/b?x=1"),
            Ok(whole(Some(true), Some("App.home.lab:8443"), "/a/b?x=1"))
        );
        assert_eq!(t("HTTP://h"), Ok(whole(Some(false), Some("h"), "/")));
        assert_eq!(t("http://h?q"), Ok(whole(Some(false), Some("h"), "/?q")));
        assert_eq!(t("/a#f"), Err(BadRequest::Fragment));
        assert_eq!(t("http://h#f"), Err(BadRequest::Fragment));
        for refused in [
            "ftp://h/",
            "https://u@h/",
            "https://u:p@h/",
            "*",
            "h:443",
            "a/b",
            "http:///p",
            "",
            "/a b",
        ] {
            assert_eq!(t(refused), Err(BadRequest::Target), "{refused:?}");
        }
    }

    fn build(
        method: &str,
        authority: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Result<Facts, BadRequest> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            let name = http::HeaderName::from_bytes(k.as_bytes()).expect("name");
            h.append(name, v.parse().expect("value"));
        }
        facts(
            &rt(),
            Described {
                method,
                https: true,
                authority,
                target,
                headers: &h,
                peer: "10.0.0.1".parse().expect("ip"),
            },
        )
    }

    #[test]
    fn normal_requests_become_facts() {
        let f = build(
            "GET",
            "App.Home.Lab.:443",
            "/a/./b/../c?x=/public",
            &[("x-forwarded-for", "192.0.2.7")],
        )
        .expect("facts");
        assert_eq!(f.host, "app.home.lab");
        assert_eq!(f.port, None, "the default port is dropped");
        assert_eq!(f.path, "/a/c");
        assert_eq!(f.query.as_deref(), Some("x=/public"));
        assert_eq!(f.client_ip.to_string(), "192.0.2.7");
        let f = build("PROPFIND", "app.home.lab:8443", "/", &[]).expect("facts");
        assert_eq!(f.port, Some(8443));
        assert_eq!(f.origin(), "https://app.home.lab:8443");
    }

    #[test]
    fn only_served_ports_are_judged() {
        // https: the default, and the listed port; http (the listener's
        // scheme): the listener's port. Nothing else, whatever the host.
        assert!(build("GET", "app.home.lab:443", "/", &[]).is_ok());
        assert!(build("GET", "app.home.lab:8443", "/", &[]).is_ok());
        for port in ["8080", "80", "4444", "9090"] {
            let authority = format!("app.home.lab:{port}");
            assert_eq!(
                build("GET", &authority, "/", &[]).map(|f| f.port),
                Err(BadRequest::PortNotServed(port.parse().expect("port"))),
                "{authority}"
            );
        }
        let plain = |authority| {
            facts(
                &rt(),
                Described {
                    method: "GET",
                    https: false,
                    authority,
                    target: "/",
                    headers: &HeaderMap::new(),
                    peer: "192.0.2.1".parse().expect("ip"),
                },
            )
        };
        assert!(plain("app.home.lab:8080").is_ok());
        assert!(plain("app.home.lab").is_ok());
        assert_eq!(
            plain("app.home.lab:443").map(|f| f.port),
            Err(BadRequest::PortNotServed(443))
        );
    }

    #[test]
    fn doubtful_requests_are_refused() {
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            &'a [(&'a str, &'a str)],
            BadRequest,
        );
        let table: &[Case] = &[
            ("get", "a", "/", &[], BadRequest::Method),
            ("G ET", "a", "/", &[], BadRequest::Method),
            ("GET", "a", "/x#y", &[], BadRequest::Fragment),
            ("GET", "a", "/x?y#z", &[], BadRequest::Fragment),
            (
                "GET",
                "a",
                "/admin%23",
                &[],
                BadRequest::Path(PathError::EncodedFragment),
            ),
            ("GET", "a", "*", &[], BadRequest::Target),
            ("GET", "a", "http://a/", &[], BadRequest::Target),
            ("GET", "a", "/x?a b", &[], BadRequest::Target),
            (
                "GET",
                "a:99999",
                "/",
                &[],
                BadRequest::Host(HostError::BadPort),
            ),
            ("GET", "a", "/", &[("upgrade", "h2c")], BadRequest::Upgrade),
            (
                "GET",
                "a",
                "/",
                &[("http2-settings", "AAMAAABkAAQAAP__")],
                BadRequest::Upgrade,
            ),
            (
                "GET",
                "a",
                "/",
                &[("upgrade", "websocket"), ("upgrade", "h2c")],
                BadRequest::Upgrade,
            ),
            (
                "GET",
                "a",
                "/",
                &[("x-forwarded-for", "a")],
                BadRequest::ForwardedFor,
            ),
        ];
        for (m, a, t, h, want) in table {
            assert_eq!(
                build(m, a, t, h).err().as_ref(),
                Some(want),
                "{m} {a} {t} {h:?}"
            );
        }
        assert!(build("GET", "a", "/", &[("upgrade", "WebSocket")]).is_ok());
    }
}
