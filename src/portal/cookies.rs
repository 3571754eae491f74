//! The portal's cookies: names, `Set-Cookie` values, reading them back.
//!
//! Every cookie is host-only (no `Domain`), `HttpOnly`, `SameSite=Lax` (the
//! app cookie must survive the top-level redirect from the portal) or
//! `Strict`, `Secure` and `__Host-` prefixed when the portal is https. Values
//! are random tokens; the store is keyed by their SHA-256, and no value is
//! ever logged.

use crate::gateway::Facts;

/// Which cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Portal session (portal host only).
    Portal,
    /// App session (each app host).
    App,
    /// Binds ceremony state to one browser (portal host only, ≤ 10 min).
    Ceremony,
}

impl Kind {
    fn base(self) -> &'static str {
        match self {
            Kind::Portal => "stepgate-portal",
            Kind::App => "stepgate_app",
            Kind::Ceremony => "stepgate-ceremony",
        }
    }

    /// The cookie name: `__Host-` prefixed over https.
    pub fn name(self, secure: bool) -> String {
        if secure {
            format!("__Host-{}", self.base())
        } else {
            self.base().to_string()
        }
    }
}

/// A `Set-Cookie` value; `max_age` `None` = session cookie, `Some(0)` = delete.
pub fn set(kind: Kind, secure: bool, value: &str, max_age: Option<i64>) -> String {
    let same_site = match kind {
        Kind::App | Kind::Portal => "Lax",
        Kind::Ceremony => "Strict",
    };
    let mut s = format!(
        "{}={value}; Path=/; HttpOnly; SameSite={same_site}",
        kind.name(secure)
    );
    if secure {
        s.push_str("; Secure");
    }
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={}", age.max(0)));
    }
    s
}

/// Delete a cookie.
pub fn clear(kind: Kind, secure: bool) -> String {
    set(kind, secure, "", Some(0))
}

/// The value of a cookie in the request, if present and non-empty.
pub fn get(facts: &Facts, kind: Kind, secure: bool) -> Option<String> {
    let name = kind.name(secure);
    facts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_attributes() {
        assert_eq!(Kind::App.name(true), "__Host-stepgate_app");
        assert_eq!(Kind::App.name(false), "stepgate_app");
        let c = set(Kind::Portal, true, "tok", Some(60));
        assert!(c.starts_with("__Host-stepgate-portal=tok; Path=/; HttpOnly"));
        assert!(c.contains("Secure") && c.contains("Max-Age=60"));
        assert!(!c.contains("Domain"));
        assert!(!set(Kind::App, false, "t", None).contains("Secure"));
        assert!(clear(Kind::Ceremony, false).contains("Max-Age=0"));
    }
}
