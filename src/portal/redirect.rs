//! `rd` validation: where the portal may send a browser after a ceremony.
//!
//! `rd` must be an absolute URL with the portal's scheme (https, or
//! http only when the portal itself is http) at a port browsers use for app
//! hosts (the scheme's default, a listener's, the portal's or one listed under
//! `served.ports`), whose host is the portal host, an exact host of a non-deny
//! rule or a name listed under `served.hosts`; a `*.suffix` pattern or a bare
//! `*` never vouches for a name by itself. Anything else lands on the portal's own page. The check is
//! strict on purpose: no userinfo, no backslashes, no control characters or
//! whitespace anywhere, no percent-encoding in the authority.

use url::Url;

use crate::config::Runtime;
use crate::reserved::PortalRoute;
use crate::routing::normalize_host;

/// A validated target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as it will be sent in `Location` (re-serialised).
    pub url: Url,
    /// Normalised host.
    pub host: String,
    /// `host[:port]` as in the URL.
    pub authority: String,
}

impl Target {
    /// `scheme://authority`
    pub fn origin(&self) -> String {
        format!("{}://{}", self.url.scheme(), self.authority)
    }
}

/// Validate `rd`; `None` means "use the portal's own page".
pub fn validate(rt: &Runtime, rd: &str) -> Option<Target> {
    if rd.is_empty()
        || rd.len() > 4096
        || rd
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return None;
    }
    let scheme = if rt.boot.portal.secure {
        "https"
    } else {
        "http"
    };
    // The raw text must start with the scheme and "://": no scheme-relative or
    // odd forms that a parser might fix up.
    let rest = rd.strip_prefix(scheme)?.strip_prefix("://")?;
    let authority_raw = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority_raw.is_empty()
        || authority_raw.contains(['@', '%'])
        || authority_raw.starts_with('[')
        || authority_raw.ends_with(':')
    {
        return None;
    }
    let url = Url::parse(rd).ok()?;
    if url.scheme() != scheme || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let url_host = url.host_str()?;
    let host = normalize_host(url_host).ok()?;
    // The parser must not have changed the host (IDNA, IPv4 forms, …).
    let raw_host = authority_raw
        .rsplit_once(':')
        .map_or(authority_raw, |(h, _)| h);
    if !raw_host.eq_ignore_ascii_case(url_host) || url_host.ends_with('.') {
        return None;
    }
    if !rt.vouches_for_origin(&host, rt.boot.portal.secure, url.port()) {
        return None;
    }
    let authority = match url.port() {
        Some(p) => format!("{url_host}:{p}"),
        None => url_host.to_string(),
    };
    Some(Target {
        url,
        host,
        authority,
    })
}

/// The portal's own fallback page.
pub fn fallback(rt: &Runtime) -> String {
    PortalRoute::Account.url(&rt.boot.portal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URL to send the browser to: `rd` if valid, else the portal's page.
    fn target_or_fallback(rt: &Runtime, rd: Option<&str>) -> String {
        rd.and_then(|r| validate(rt, r))
            .map_or_else(|| fallback(rt), |t| t.url.to_string())
    }

    fn runtime(portal: &str) -> Runtime {
        let yaml = format!(
            r#"
listen: 127.0.0.1:8080
portal: {{ url: "{portal}" }}
served: {{ ports: [8443], hosts: [a.svc.home.lab, a.b.svc.home.lab] }}
secrets: {{ cookie_keys: [/dev/null] }}
users: {{ alice: {{}} }}
upstreams: {{ demo: "builtin:whoami" }}
rules:
  - {{ name: app, hosts: [app.home.lab], upstream: demo, policy: passkey }}
  - {{ name: wild, hosts: ["*.svc.home.lab"], upstream: demo, policy: passkey }}
  - {{ name: other, hosts: ["*.other.home.lab"], upstream: demo, policy: passkey }}
  - {{ name: gone, hosts: [denied.home.lab], policy: deny }}
  - {{ name: open, hosts: [open.home.lab], upstream: demo, policy: bypass }}
  - {{ name: any, hosts: ["*"], upstream: demo, policy: passkey }}
"#
        );
        crate::config::test_runtime(&yaml)
    }

    #[test]
    fn open_redirect_table() {
        let rt = runtime("https://auth.home.lab");
        let ok = [
            "https://app.home.lab/",
            "https://app.home.lab",
            "https://app.home.lab/x?y=1#z",
            "https://APP.home.lab/path",
            "https://app.home.lab:8443/p",
            "https://auth.home.lab/.stepgate/account",
            "https://a.svc.home.lab/",
            "https://a.b.svc.home.lab/deep",
            "https://open.home.lab/",
        ];
        for rd in ok {
            assert!(validate(&rt, rd).is_some(), "should accept {rd}");
        }
        let bad = [
            "",
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "/%09/evil.com",
            "/relative/path",
            "https:evil.com",
            "https:/evil.com",
            "https:///evil.com",
            "https://evil.com/",
            "https://app.home.lab@evil.com/",
            "https://user:pw@app.home.lab/",
            "https://evil.com@app.home.lab/",
            "https://evil.com\\@app.home.lab/",
            "https://app.home.lab\\.evil.com/",
            "https://app.home.lab.evil.com/",
            "https://badhome.lab/",
            "https://home.lab/",
            "https://svc.home.lab/",
            "https://xsvc.home.lab/",
            "https://unlisted.svc.home.lab/",
            "https://a.other.home.lab/",
            "https://app.home.lab:4444/",
            "https://app.home.lab:8080/",
            "https://denied.home.lab/",
            "https://anything.example/",
            "http://app.home.lab/",
            "HTTP://app.home.lab/",
            "javascript:alert(1)",
            "javascript://app.home.lab/%0aalert(1)",
            "data:text/html,hi",
            "ftp://app.home.lab/",
            " https://app.home.lab/",
            "https://app.home.lab/ ",
            "https://app.home.lab/\t",
            "https://app.home.lab\n.evil.com/",
            "https://app%2ehome.lab/",
            "https://%61pp.home.lab/",
            "https://app.home.lab%2f@evil.com/",
            "https://app.home.lab./",
            "https://[::1]/",
            "https://127.0.0.1/",
            "https://0x7f.1/",
            "https://xn--pp-dla.home.lab.evil.com/",
            "https:\\\\app.home.lab/",
            "https://app.home.lab:99999/",
            "https://app.home.lab:/",
        ];
        assert!(bad.len() + ok.len() >= 30);
        for rd in bad {
            assert!(validate(&rt, rd).is_none(), "should refuse {rd:?}");
        }
    }

    #[test]
    fn http_only_for_an_http_portal() {
        let rt = runtime("http://auth.localhost:8080");
        assert!(validate(&rt, "http://app.home.lab/").is_some());
        assert!(validate(&rt, "https://app.home.lab/").is_none());
        let rt = runtime("https://auth.home.lab");
        assert!(validate(&rt, "http://app.home.lab/").is_none());
    }

    #[test]
    fn fallback_is_the_portal_page() {
        let rt = runtime("https://auth.home.lab");
        assert_eq!(
            target_or_fallback(&rt, Some("//evil.com")),
            "https://auth.home.lab/.stepgate/account"
        );
        assert_eq!(
            target_or_fallback(&rt, None),
            "https://auth.home.lab/.stepgate/account"
        );
        assert_eq!(
            target_or_fallback(&rt, Some("https://app.home.lab/x")),
            "https://app.home.lab/x"
        );
    }

    #[test]
    fn keeps_the_port_in_the_authority() {
        let rt = runtime("http://auth.localhost:8080");
        let t = validate(&rt, "http://app.home.lab:8080/p").expect("valid");
        assert_eq!(t.authority, "app.home.lab:8080");
        assert_eq!(t.host, "app.home.lab");
        assert_eq!(t.origin(), "http://app.home.lab:8080");
    }
}
