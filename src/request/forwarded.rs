//! Forwarded headers: whom they are believed from and what they say.
//!
//! Only peers in `trusted_proxies` are believed. From them, the client address
//! is the right-most `X-Forwarded-For` entry that is not itself a trusted proxy,
//! and an entry that is not an IP address is an error, never skipped (skipping
//! would judge the request as coming from the proxy itself, which may sit in a
//! network a rule lets through). A header that describes the request must be
//! sent once, or repeated with the same value: two different copies are an
//! error, since the front proxy and stepgate might each read another one.

use std::net::IpAddr;

use http::HeaderMap;

use super::BadRequest;
use crate::config::Runtime;

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

/// The client address a request came from: the peer, or, when the peer is a
/// trusted proxy, the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy (the peer when every entry is one).
pub fn client_ip(rt: &Runtime, peer: IpAddr, headers: &HeaderMap) -> Result<IpAddr, BadRequest> {
    let peer = canonical_ip(peer);
    if !is_trusted(rt, peer) {
        return Ok(peer);
    }
    let values: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    for value in values.iter().rev() {
        let text = std::str::from_utf8(value).map_err(|_| BadRequest::ForwardedFor)?;
        for entry in text.rsplit(',') {
            let ip = entry
                .trim()
                .parse::<IpAddr>()
                .map_err(|_| BadRequest::ForwardedFor)?;
            let ip = canonical_ip(ip);
            if !is_trusted(rt, ip) {
                return Ok(ip);
            }
        }
    }
    Ok(peer)
}

/// The value of a header that must not be ambiguous: `None` when absent, the
/// value when every copy agrees, an error when two copies differ or the value
/// is not text.
pub fn single<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h str>, BadRequest> {
    let mut found: Option<&str> = None;
    for v in headers.get_all(name) {
        let text = v.to_str().map_err(|_| BadRequest::Repeated(name))?.trim();
        match found {
            Some(f) if f != text => return Err(BadRequest::Repeated(name)),
            _ => found = Some(text),
        }
    }
    Ok(found)
}

/// What a forwarded scheme says about https: `http`/`ws` → no, `https`/`wss` → yes.
/// Anything else (a list, `gopher`, an empty value) is refused.
pub fn https_from_proto(name: &'static str, proto: &str) -> Result<bool, BadRequest> {
    match proto.to_ascii_lowercase().as_str() {
        "https" | "wss" => Ok(true),
        "http" | "ws" => Ok(false),
        _ => Err(BadRequest::Proto(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> Runtime {
        let yaml = r#"
listen: 127.0.0.1:8080
trusted_proxies: [10.0.0.0/24]
portal: { url: "https://auth.home.lab" }
secrets: { cookie_keys: [/dev/null] }
users: { alice: {} }
rules: [ { name: app, hosts: [app.home.lab], policy: passkey } ]
"#;
        crate::config::test_runtime(yaml)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn client_address_from_trusted_proxies_only() {
        let rt = rt();
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let xff = headers(&[("x-forwarded-for", "192.0.2.1, 198.51.100.2, 10.0.0.7")]);
        assert_eq!(client_ip(&rt, ip("10.0.0.1"), &xff), Ok(ip("198.51.100.2")));
        assert_eq!(
            client_ip(&rt, ip("203.0.113.9"), &xff),
            Ok(ip("203.0.113.9"))
        );
        assert_eq!(
            client_ip(&rt, ip("::ffff:10.0.0.1"), &xff),
            Ok(ip("198.51.100.2"))
        );
        let two = headers(&[
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-for", "10.0.0.9"),
        ]);
        assert_eq!(client_ip(&rt, ip("10.0.0.1"), &two), Ok(ip("192.0.2.1")));
        let all_trusted = headers(&[("x-forwarded-for", "10.0.0.9")]);
        assert_eq!(
            client_ip(&rt, ip("10.0.0.1"), &all_trusted),
            Ok(ip("10.0.0.1"))
        );
        for bad in ["a", "192.0.2.1, a", "", "192.0.2.1,,10.0.0.2"] {
            let h = headers(&[("x-forwarded-for", bad)]);
            assert_eq!(
                client_ip(&rt, ip("10.0.0.1"), &h),
                Err(BadRequest::ForwardedFor),
                "{bad:?}"
            );
        }
        // Unbelieved headers are not even parsed.
        let h = headers(&[("x-forwarded-for", "a")]);
        assert_eq!(client_ip(&rt, ip("192.0.2.50"), &h), Ok(ip("192.0.2.50")));
    }

    #[test]
    fn single_valued_headers() {
        let h = headers(&[("x-forwarded-method", "GET"), ("x-forwarded-method", "GET")]);
        assert_eq!(single(&h, "x-forwarded-method"), Ok(Some("GET")));
        let h = headers(&[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-method", "DELETE"),
        ]);
        assert_eq!(
            single(&h, "x-forwarded-method"),
            Err(BadRequest::Repeated("x-forwarded-method"))
        );
        assert_eq!(single(&HeaderMap::new(), "x-forwarded-method"), Ok(None));
    }

    #[test]
    fn forwarded_schemes() {
        for (p, want) in [
            ("https", true),
            ("WSS", true),
            ("http", false),
            ("ws", false),
        ] {
            assert_eq!(https_from_proto("p", p), Ok(want));
        }
        for p in ["", "gopher", "https, http", "https "] {
            assert!(https_from_proto("p", p).is_err(), "{p:?}");
        }
    }
}
