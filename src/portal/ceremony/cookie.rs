//! The ceremony cookie: the portal's own cookie that binds ceremony state to
//! one browser. (Session cookies are [`crate::session::cookie`]'s.)
//!
//! The ceremony cookie holds a random id that binds ceremony state to one
//! browser (portal host only, `SameSite=Strict`, ≤ 10 minutes); it
//! authenticates nothing by itself. Session cookies are HMAC-signed by the
//! codec. No cookie value is ever logged.

use crate::request::Facts;

/// The ceremony cookie's name: `__Host-` prefixed over https.
pub fn ceremony_name(secure: bool) -> &'static str {
    if secure {
        "__Host-stepgate_ceremony"
    } else {
        "stepgate_ceremony"
    }
}

/// `Set-Cookie` for the ceremony binding id.
pub fn set_ceremony(secure: bool, value: &str, max_age: i64) -> String {
    let mut s = format!(
        "{}={value}; Max-Age={}; Path=/; HttpOnly; SameSite=Strict",
        ceremony_name(secure),
        max_age.max(0)
    );
    if secure {
        s.push_str("; Secure");
    }
    s
}

/// The ceremony binding id of this request, if exactly one is present.
pub fn ceremony(facts: &Facts, secure: bool) -> Option<String> {
    let v = crate::session::cookie::find_cookie(&facts.headers, ceremony_name(secure))?;
    let v = std::str::from_utf8(v).ok()?;
    (!v.is_empty() && v.len() <= 64).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceremony_cookie_attributes() {
        let c = set_ceremony(true, "abc", 600);
        assert!(c.starts_with("__Host-stepgate_ceremony=abc; Max-Age=600; Path=/; HttpOnly"));
        assert!(c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!c.contains("Domain"));
        assert!(!set_ceremony(false, "abc", 1).contains("Secure"));
    }
}
