//! Table tests: path normalisation, host normalisation and first-match routing.

use std::net::IpAddr;

use super::*;
use crate::config::Runtime;

#[test]
fn path_normalisation_table() {
    use PathError::*;
    let cases: &[(&str, Result<&str, PathError>)] = &[
        ("/", Ok("/")),
        ("/admin", Ok("/admin")),
        ("/admin/", Ok("/admin/")),
        ("/public/../admin", Ok("/admin")),
        ("/public/%2e%2e/admin", Ok("/admin")),
        ("/public/%2E%2E/admin", Ok("/admin")),
        ("/public/.%2e/admin", Ok("/admin")),
        ("/public/..%2fadmin", Err(EncodedSeparator)),
        ("/admin%2f", Err(EncodedSeparator)),
        ("/admin%2F", Err(EncodedSeparator)),
        ("/admin%5c", Err(EncodedSeparator)),
        ("//admin", Ok("/admin")),
        ("/a//b", Ok("/a/b")),
        ("/%61dmin", Ok("/admin")),
        ("/%7Euser", Ok("/~user")),
        ("/admin;x", Err(PathParameter)),
        ("/admin%3bx", Err(PathParameter)),
        ("\\admin", Err(NotAbsolute)),
        ("/\\admin", Err(Backslash)),
        ("/admin%00", Err(Control)),
        ("/admin\0", Err(Control)),
        ("/%252e%252e/admin", Err(DoubleEncoded)),
        ("/%252fadmin", Err(DoubleEncoded)),
        ("/100%25", Ok("/100%25")),
        ("/..", Err(EscapesRoot)),
        ("/../admin", Err(EscapesRoot)),
        ("/a/../../admin", Err(EscapesRoot)),
        ("/a/./b", Ok("/a/b")),
        ("/a/b/..", Ok("/a/")),
        ("/a/.", Ok("/a/")),
        ("/.", Ok("/")),
        ("/caf%C3%A9", Ok("/caf%C3%A9")),
        ("/caf%c3%a9", Ok("/caf%C3%A9")),
        ("/bad%C3", Err(InvalidUtf8)),
        ("/bad%ff", Err(InvalidUtf8)),
        ("/bad%zz", Err(BadPercent)),
        ("/bad%2", Err(BadPercent)),
        ("admin", Err(NotAbsolute)),
        ("", Err(NotAbsolute)),
        ("/a b", Err(Control)),
        ("/a%20b", Ok("/a%20b")),
        ("/tab%09", Err(Control)),
    ];
    for (raw, want) in cases {
        let got = normalize_path(raw);
        assert_eq!(
            got.as_deref().map_err(|e| *e),
            want.as_ref().map(|s| *s).map_err(|e| *e),
            "path {raw:?}"
        );
    }
}

#[test]
fn host_normalisation_table() {
    let cases: &[(&str, Option<&str>)] = &[
        ("admin.example.com", Some("admin.example.com")),
        ("ADMIN.Example.COM.", Some("admin.example.com")),
        ("admin.example.com:443", Some("admin.example.com")),
        ("admin.example.com.:8443", Some("admin.example.com")),
        ("[::1]:8080", Some("[::1]")),
        ("127.0.0.1:80", Some("127.0.0.1")),
        ("", None),
        ("admin..example.com", None),
        ("admin.example.com..", None),
        ("admin.example.com:", None),
        ("admin.example.com:99999", None),
        ("admin.example.com:80:80", None),
        ("evil.com/admin", None),
        ("a b.com", None),
        ("user@host.com", None),
    ];
    for (raw, want) in cases {
        assert_eq!(normalize_host(raw).ok().as_deref(), *want, "host {raw:?}");
    }
}

fn runtime() -> Runtime {
    let yaml = r#"
portal: { url: https://auth.example.com }
secrets: { cookie_keys: [k] }
users: { alice: { groups: [admins] } }
rules:
  - { name: admin, hosts: [admin.example.com], paths: [/admin, /admin/**], policy: passkey }
  - { name: public, hosts: [admin.example.com], paths: [/public, /public/**], policy: bypass }
  - { name: dav-write, hosts: [dav.example.com], methods: [PUT, PROPPATCH, MKCOL], policy: passkey }
  - { name: dav-read, hosts: [dav.example.com], policy: bypass }
  - { name: lan, hosts: [lan.example.com], networks: [192.168.0.0/16, "fd00::/8"], policy: bypass }
  - { name: lan-else, hosts: [lan.example.com], policy: deny }
  - { name: deep, hosts: ["*.apps.example.com"], paths: ["/api/*/admin"], policy: deny }
  - { name: apps, hosts: ["*.apps.example.com"], policy: passkey }
  - { name: first, hosts: [order.example.com], paths: [/x/**], policy: deny }
  - { name: second, hosts: [order.example.com], paths: [/x/y], policy: bypass }
  - { name: catchall-path, hosts: [admin.example.com], policy: passkey }
  - { name: any, hosts: ["*"], paths: [/health], policy: bypass }
"#;
    crate::config::test_runtime(yaml)
}

/// Route a raw request the way the gateway does: normalise, then match.
fn route_raw(
    rt: &Runtime,
    host: &str,
    target: &str,
    method: &str,
    ip: &str,
) -> Result<Option<String>, String> {
    let host = normalize_host(host).map_err(|e| e.to_string())?;
    let path_part = target.split(['?', '#']).next().unwrap_or("");
    let path = normalize_path(path_part).map_err(|e| e.to_string())?;
    let ip: IpAddr = ip.parse().map_err(|_| "ip".to_string())?;
    let req = RouteRequest {
        host: &host,
        path: &path,
        method,
        client_ip: ip,
    };
    rt.route(&req)
        .map(|found| found.map(|(_, r)| r.name.clone()))
        .map_err(|e| e.to_string())
}

#[test]
fn routing_table() {
    let rt = runtime();
    // (host, target, method, ip, expected: Ok(Some(rule)) / Ok(None) = no rule / Err = 400)
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        Result<Option<&'a str>, ()>,
    );
    let cases: &[Case<'_>] = &[
        (
            "admin.example.com",
            "/admin",
            "GET",
            "10.0.0.1",
            Ok(Some("admin")),
        ),
        (
            "admin.example.com",
            "/admin/users",
            "GET",
            "10.0.0.1",
            Ok(Some("admin")),
        ),
        (
            "admin.example.com",
            "/public/../admin",
            "GET",
            "10.0.0.1",
            Ok(Some("admin")),
        ),
        (
            "admin.example.com",
            "/public/%2e%2e/admin",
            "GET",
            "10.0.0.1",
            Ok(Some("admin")),
        ),
        (
            "admin.example.com",
            "/public/..%2fadmin",
            "GET",
            "10.0.0.1",
            Err(()),
        ),
        ("admin.example.com", "/admin%2f", "GET", "10.0.0.1", Err(())),
        (
            "admin.example.com",
            "//admin",
            "GET",
            "10.0.0.1",
            Ok(Some("admin")),
        ),
        (
            "admin.example.com",
            "/%61dmin",
            "GET",
            "10.0.0.1",
            Ok(Some("admin")),
        ),
        ("admin.example.com", "/admin;x", "GET", "10.0.0.1", Err(())),
        ("admin.example.com", "\\admin", "GET", "10.0.0.1", Err(())),
        ("admin.example.com", "/admin%00", "GET", "10.0.0.1", Err(())),
        (
            "admin.example.com",
            "/%252e%252e/admin",
            "GET",
            "10.0.0.1",
            Err(()),
        ),
        (
            "ADMIN.Example.COM.",
            "/admin",
            "GET",
            "10.0.0.1",
            Ok(Some("admin")),
        ),
        (
            "admin.example.com:443",
            "/admin",
            "GET",
            "10.0.0.1",
            Ok(Some("admin")),
        ),
        (
            "admin.example.com",
            "/admin?next=/public",
            "GET",
            "10.0.0.1",
            Ok(Some("admin")),
        ),
        (
            "admin.example.com",
            "/public?x=/admin",
            "GET",
            "10.0.0.1",
            Ok(Some("public")),
        ),
        (
            "admin.example.com",
            "/admin#/public",
            "GET",
            "10.0.0.1",
            Ok(Some("admin")),
        ),
        (
            "admin.example.com",
            "/public",
            "GET",
            "10.0.0.1",
            Ok(Some("public")),
        ),
        (
            "admin.example.com",
            "/public/",
            "GET",
            "10.0.0.1",
            Ok(Some("public")),
        ),
        (
            "admin.example.com",
            "/publicity",
            "GET",
            "10.0.0.1",
            Ok(Some("catchall-path")),
        ),
        (
            "admin.example.com",
            "/administrator",
            "GET",
            "10.0.0.1",
            Ok(Some("catchall-path")),
        ),
        (
            "admin.example.com",
            "/health",
            "GET",
            "10.0.0.1",
            Ok(Some("catchall-path")),
        ),
        (
            "dav.example.com",
            "/file",
            "PUT",
            "10.0.0.1",
            Ok(Some("dav-write")),
        ),
        (
            "dav.example.com",
            "/file",
            "MKCOL",
            "10.0.0.1",
            Ok(Some("dav-write")),
        ),
        (
            "dav.example.com",
            "/file",
            "GET",
            "10.0.0.1",
            Ok(Some("dav-read")),
        ),
        (
            "dav.example.com",
            "/file",
            "PROPFIND",
            "10.0.0.1",
            Ok(Some("dav-read")),
        ),
        (
            "lan.example.com",
            "/",
            "GET",
            "192.168.1.20",
            Ok(Some("lan")),
        ),
        (
            "lan.example.com",
            "/",
            "GET",
            "10.1.1.1",
            Ok(Some("lan-else")),
        ),
        ("lan.example.com", "/", "GET", "fd00::1", Ok(Some("lan"))),
        ("lan.example.com", "/", "GET", "::1", Ok(Some("lan-else"))),
        (
            "x.apps.example.com",
            "/api/v1/admin",
            "GET",
            "10.0.0.1",
            Ok(Some("deep")),
        ),
        (
            "x.apps.example.com",
            "/api/v1/v2/admin",
            "GET",
            "10.0.0.1",
            Ok(Some("apps")),
        ),
        (
            "a.b.apps.example.com",
            "/",
            "GET",
            "10.0.0.1",
            Ok(Some("apps")),
        ),
        ("apps.example.com", "/", "GET", "10.0.0.1", Ok(None)),
        ("evilapps.example.com", "/", "GET", "10.0.0.1", Ok(None)),
        (
            "apps.example.com.evil.com",
            "/",
            "GET",
            "10.0.0.1",
            Ok(None),
        ),
        (
            "order.example.com",
            "/x/y",
            "GET",
            "10.0.0.1",
            Ok(Some("first")),
        ),
        ("order.example.com", "/x", "GET", "10.0.0.1", Ok(None)),
        (
            "order.example.com",
            "/health",
            "GET",
            "10.0.0.1",
            Ok(Some("any")),
        ),
        (
            "unknown.example.com",
            "/health",
            "GET",
            "10.0.0.1",
            Ok(Some("any")),
        ),
        ("unknown.example.com", "/", "GET", "10.0.0.1", Ok(None)),
        (
            "admin.example.com",
            "/admin",
            "HEAD",
            "10.0.0.1",
            Ok(Some("admin")),
        ),
        ("admin..example.com", "/admin", "GET", "10.0.0.1", Err(())),
        ("", "/admin", "GET", "10.0.0.1", Err(())),
    ];
    for (host, target, method, ip, want) in cases {
        let got = route_raw(&rt, host, target, method, ip);
        let got = got.as_ref().map(|o| o.as_deref()).map_err(|_| ());
        assert_eq!(got, *want, "{method} {host}{target} from {ip}");
    }
}

#[test]
fn many_rules_route_by_host_index() {
    let matchers: Vec<Matcher> = (0..10_000)
        .map(|i| Matcher {
            hosts: vec![HostPattern::Exact(format!("h{}.example.com", i % 1000))],
            paths: vec![PathPattern::Subtree(format!("/p{i}/"))],
            methods: None,
            networks: Vec::new(),
            fold_case: false,
        })
        .collect();
    let router = Router::new(matchers);
    let ip: IpAddr = [127, 0, 0, 1].into();
    let req = RouteRequest {
        host: "h7.example.com",
        path: "/p9007/x",
        method: "GET",
        client_ip: ip,
    };
    assert_eq!(router.route(&req), Ok(Some(9007)));
    let req = RouteRequest {
        host: "h7.example.com",
        path: "/p9008/x",
        method: "GET",
        client_ip: ip,
    };
    assert_eq!(router.route(&req), Ok(None));
}

#[test]
fn host_patterns_reject_bad_shapes() {
    assert!(HostPattern::parse("a.*.com").is_err());
    assert!(HostPattern::parse("*evil.com").is_err());
    assert!(HostPattern::parse("host.com:8080").is_err());
    assert_eq!(
        HostPattern::parse("*.Home.LAB."),
        Ok(HostPattern::Suffix("home.lab".into()))
    );
    assert_eq!(HostPattern::parse("*"), Ok(HostPattern::Any));
}
