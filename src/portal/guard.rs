//! Cross-site request checks for every state-changing portal endpoint.
//!
//! A POST is accepted only when the browser says it came from the portal
//! itself: `Origin` (when sent) equals the portal origin, `Sec-Fetch-Site`
//! (when sent) is `same-origin`, and at least one of the two is present.
//! HTML forms carry a CSRF token derived from the portal session token as well.

use subtle::ConstantTimeEq;

use crate::model::token_hash;
use crate::request::Facts;

/// Did this POST come from a page of the portal?
pub fn same_origin(facts: &Facts, portal_origin: &str) -> bool {
    let origin = facts.header("origin");
    let site = facts.header("sec-fetch-site");
    if origin.is_none() && site.is_none() {
        return false;
    }
    origin.is_none_or(|o| o == portal_origin) && site.is_none_or(|s| s == "same-origin")
}

/// The CSRF token of a portal session, from its cookie token's store key.
pub fn csrf_token(portal_token_hash: &str) -> String {
    token_hash(&format!("stepgate csrf\0{portal_token_hash}"))[..32].to_string()
}

/// Does `given` match the session's CSRF token?
pub fn csrf_ok(portal_token_hash: &str, given: &str) -> bool {
    let want = csrf_token(portal_token_hash);
    want.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn facts(headers: &[(&'static str, &str)]) -> Facts {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().expect("header"));
        }
        Facts {
            method: http::Method::POST,
            host: "auth.home.lab".into(),
            port: None,
            path: "/.stepgate/logout".into(),
            query: None,
            https: true,
            client_ip: "127.0.0.1".parse().expect("ip"),
            headers: h,
        }
    }

    #[test]
    fn origin_checks() {
        let o = "https://auth.home.lab";
        assert!(same_origin(&facts(&[("origin", o)]), o));
        assert!(same_origin(
            &facts(&[("origin", o), ("sec-fetch-site", "same-origin")]),
            o
        ));
        assert!(same_origin(&facts(&[("sec-fetch-site", "same-origin")]), o));
        assert!(!same_origin(&facts(&[]), o));
        assert!(!same_origin(&facts(&[("origin", "https://evil.com")]), o));
        assert!(!same_origin(&facts(&[("origin", "null")]), o));
        assert!(!same_origin(
            &facts(&[("origin", o), ("sec-fetch-site", "cross-site")]),
            o
        ));
        assert!(!same_origin(&facts(&[("sec-fetch-site", "same-site")]), o));
    }

    #[test]
    fn csrf() {
        let t = csrf_token("abc");
        assert!(csrf_ok("abc", &t));
        assert!(!csrf_ok("abd", &t));
        assert!(!csrf_ok("abc", ""));
    }
}
