//! What header names mean: stepgate's identity headers, the forwarded
//! headers only a trusted proxy may send, the headers that make some apps
//! serve another method or path, and the framing headers that are no place for
//! an identity or a token; and how servers fold spellings (`Remote_User` and
//! `remote.user` read as `Remote-User`). Hygiene, the access check and the
//! config checks all ask here. [`Stripped`] holds the names a config adds to
//! those sets (compiled once per config, never per request).

use http::HeaderName;

use crate::model::Identity;

/// The identity header names, in the order they are sent.
pub const IDENTITY_HEADERS: [&str; 6] = [
    "remote-user",
    "remote-groups",
    "remote-name",
    "remote-email",
    "stepgate-verified-at",
    "stepgate-rule",
];

pub const REMOTE_USER: HeaderName = HeaderName::from_static("remote-user");
pub const REMOTE_GROUPS: HeaderName = HeaderName::from_static("remote-groups");
pub const REMOTE_NAME: HeaderName = HeaderName::from_static("remote-name");
pub const REMOTE_EMAIL: HeaderName = HeaderName::from_static("remote-email");
pub const VERIFIED_AT: HeaderName = HeaderName::from_static("stepgate-verified-at");
pub const RULE: HeaderName = HeaderName::from_static("stepgate-rule");

/// The identity headers for an allowed request, each built by name: all six,
/// then the upstream's own names (`mapped`) for user, groups, name and
/// e-mail; every one empty where there is no value (so a front proxy
/// overwrites any client-sent copy). Names and e-mail addresses go out as
/// UTF-8 bytes (as other gateways do); a value with a control character is
/// sent empty.
pub fn identity_headers(
    identity: Option<&Identity>,
    mapped: Option<&IdentityHeaders>,
) -> Vec<(HeaderName, String)> {
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    let user = text(identity.map(|i| &i.user));
    let groups = identity.map(|i| i.groups.join(",")).unwrap_or_default();
    let name = text(identity.and_then(|i| i.name.as_ref()));
    let email = text(identity.and_then(|i| i.email.as_ref()));
    let verified_at = identity
        .and_then(|i| i.verified_at)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let rule = text(identity.map(|i| &i.rule));
    let mut out = Vec::with_capacity(10);
    if let Some(m) = mapped {
        for (header, value) in [
            (&m.user, &user),
            (&m.groups, &groups),
            (&m.name, &name),
            (&m.email, &email),
        ] {
            if let Some(header) = header {
                out.push((header.clone(), value.clone()));
            }
        }
    }
    out.splice(
        0..0,
        [
            (REMOTE_USER, user),
            (REMOTE_GROUPS, groups),
            (REMOTE_NAME, name),
            (REMOTE_EMAIL, email),
            (VERIFIED_AT, verified_at),
            (RULE, rule),
        ],
    );
    for (_, value) in &mut out {
        if http::HeaderValue::from_bytes(value.as_bytes()).is_err() {
            value.clear();
        }
    }
    out
}

/// Is `name` one of the identity headers, in any case and with `_` or `.` for `-`?
pub fn is_identity_header(name: &str) -> bool {
    IDENTITY_HEADERS.iter().any(|h| same_folded(name, h))
}

/// Does `name` read as `canonical` (lower case, `-`) once case and `_`/`.` are folded?
fn same_folded(name: &str, canonical: &str) -> bool {
    name.len() == canonical.len()
        && name.bytes().zip(canonical.bytes()).all(|(a, b)| {
            let a = match a {
                b'_' | b'.' => b'-',
                a => a.to_ascii_lowercase(),
            };
            a == b
        })
}

/// The header names a config adds to what every request loses before
/// proxying, whatever rule it matched (a bypass rule included): compiled once
/// with the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stripped {
    /// Every upstream's `identity_headers` name, once each (lower case, no
    /// `_` or `.`: those spellings are dropped anyway). Two upstreams can
    /// share an address, so a name one of them maps is never a client's to
    /// send through the other.
    pub mapped: Vec<HeaderName>,
    /// Every place a rule could take a client token from: `Authorization`
    /// (basic and bearer) and each `tokens.from.header`, once each. A value
    /// there that carries a token ([`crate::client_token::carries`]) goes, unless
    /// the matched rule takes tokens from exactly there with `keep: true`.
    pub token_places: Vec<HeaderName>,
}

impl Stripped {
    /// The set for these upstream mappings and token headers.
    pub fn new<'a>(
        mapped: impl IntoIterator<Item = &'a HeaderName>,
        token_headers: impl IntoIterator<Item = &'a HeaderName>,
    ) -> Self {
        let mut out = Stripped {
            mapped: Vec::new(),
            token_places: vec![http::header::AUTHORIZATION],
        };
        for name in mapped {
            if !out.mapped.contains(name) {
                out.mapped.push(name.clone());
            }
        }
        for name in token_headers {
            if !out.token_places.contains(name) {
                out.token_places.push(name.clone());
            }
        }
        out
    }

    /// Is `name` (lower case, as `http` keeps names) mapped by any upstream?
    pub fn is_mapped(&self, name: &str) -> bool {
        self.mapped.iter().any(|m| m.as_str() == name)
    }

    /// Could a rule take a client token from the header `name`?
    pub fn is_token_place(&self, name: &HeaderName) -> bool {
        self.token_places.contains(name)
    }
}

/// Forwarded headers believed only from trusted proxies (exact spelling).
pub const FORWARDED: [&str; 5] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "forwarded",
];

/// Headers that make some apps serve another method or path than the one judged.
pub const MEANING: [&str; 9] = [
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

/// Hop-by-hop, framing and credential headers: what a request *is* on the
/// wire, never a place for an identity or a token.
const FRAMING: [&str; 13] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "trailers",
    "upgrade",
    "expect",
    "cookie",
    "set-cookie",
    "authorization",
];

/// Why `name` may not carry an identity or a token (`None`: it may). Checked
/// by `stepgate check` for `identity_headers` and `tokens.from.header`.
pub fn reserved(name: &str) -> Option<&'static str> {
    if name.contains(['_', '.']) {
        return Some(
            "header names with '_' or '.' are dropped before proxying (by stepgate, and by nginx by default)",
        );
    }
    let lower = name.to_ascii_lowercase();
    let n = lower.as_str();
    if FRAMING.contains(&n) || n.starts_with("proxy-") || n.starts_with("content-") {
        return Some("is a hop-by-hop, framing or credential header");
    }
    if FORWARDED.contains(&n) || MEANING.contains(&n) || n.starts_with("x-forwarded-") {
        return Some(
            "is a forwarding header: proxies set it, and it changes what the request means to apps",
        );
    }
    if is_identity_header(n) {
        return Some("is one of stepgate's own identity headers, always sent");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_keep_utf8_and_drop_control_characters() {
        let id = Identity {
            user: "zoe".into(),
            groups: vec!["a".into(), "b".into()],
            name: Some("Zoë Ünal".into()),
            email: Some("bad\r\nx: y".into()),
            verified_at: Some(42),
            rule: "r".into(),
        };
        let h = identity_headers(Some(&id), None);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("remote-user"), Some("zoe"));
        assert_eq!(get("remote-groups"), Some("a,b"));
        assert_eq!(get("remote-name"), Some("Zoë Ünal"));
        assert_eq!(get("remote-email"), Some(""));
        assert_eq!(get("stepgate-verified-at"), Some("42"));
        assert_eq!(h.len(), 6);
        assert!(
            identity_headers(None, None)
                .iter()
                .all(|(_, v)| v.is_empty())
        );
        let mapped = IdentityHeaders {
            user: Some(HeaderName::from_static("x-webauth-user")),
            groups: Some(HeaderName::from_static("x-webauth-groups")),
            ..Default::default()
        };
        let h = identity_headers(Some(&id), Some(&mapped));
        assert_eq!(h.len(), 8);
        assert_eq!(get("x-webauth-user"), None, "not in the default set");
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-webauth-user"), Some("zoe"));
        assert_eq!(get("x-webauth-groups"), Some("a,b"));
        let none = identity_headers(None, Some(&mapped));
        assert_eq!(none.len(), 8);
        assert!(none.iter().all(|(_, v)| v.is_empty()));
    }

    #[test]
    fn identity_header_spellings() {
        for n in [
            "Remote-User",
            "REMOTE_USER",
            "remote.user",
            "Stepgate_Verified.At",
        ] {
            assert!(is_identity_header(n), "{n}");
        }
        for n in ["Remote-Userx", "X-Remote-User", "remoteuser"] {
            assert!(!is_identity_header(n), "{n}");
        }
    }
    #[test]
    fn reserved_names_cannot_carry_an_identity() {
        for name in [
            "Host",
            "Content-Length",
            "transfer-encoding",
            "Connection",
            "Cookie",
            "Upgrade",
            "TE",
            "Trailer",
            "Keep-Alive",
            "Proxy-Authorization",
            "Proxy-Connection",
            "Authorization",
            "X-Forwarded-User",
            "Forwarded",
            "X-Original-URL",
            "Remote-User",
            "Stepgate-Rule",
            "X_Remote_User",
        ] {
            assert!(reserved(name).is_some(), "{name}");
        }
        for name in ["X-WEBAUTH-USER", "X-Remote-User", "X-Stepgate-Token"] {
            assert_eq!(reserved(name), None, "{name}");
        }
    }
}

/// `upstreams.NAME.identity_headers`: the app's own header names for the
/// identity, sent besides `Remote-User` and the rest (lower case, checked to be
/// none of the framing, hop-by-hop or forwarding headers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityHeaders {
    pub user: Option<HeaderName>,
    pub email: Option<HeaderName>,
    pub name: Option<HeaderName>,
    pub groups: Option<HeaderName>,
}

impl IdentityHeaders {
    /// The mapped names.
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        [&self.user, &self.email, &self.name, &self.groups]
            .into_iter()
            .flatten()
    }

    /// Is `name` (lower case, as `http` keeps names) one of the mapped names?
    pub fn contains(&self, name: &str) -> bool {
        self.names().any(|n| n.as_str() == name)
    }
}
