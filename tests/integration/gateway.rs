//! The gateway end to end: a real pingora server on 127.0.0.1 ports, the real
//! SQLite store (sessions made through the Store API), `builtin:whoami` and an
//! echoing upstream showing what an app receives.

use crate::kit::{
    Conn, EchoUpstream, NetBrowser, TestConfig, TestGateway, assert_login_redirect, exchange,
    grant, parse_responses, uv,
};

const HTML: (&str, &str) = ("Accept", "text/html,application/xhtml+xml");

/// A proxy network no test request comes from.
const UNTRUSTED: &str = "10.255.255.0/24";

/// The gateway tests' sections on `config`, believing forwarded headers from
/// `trusted`; the `yubikey5` set's root is a self-signed `yubico.pem` in its dir.
fn rules(config: TestConfig, echo: &EchoUpstream, trusted: &str) -> TestConfig {
    crate::kit::self_signed(config.dir(), "yubico");
    let ca = config.path("yubico.pem");
    config.body(&format!(
        r#"
trusted_proxies: [{trusted}]
users:
  alice: {{ name: Alice, email: alice@home.lab, groups: [admins, staff] }}
  bob: {{ groups: [staff] }}
  guest: {{ groups: [staff], expires: 2020-01-01T00:00:00Z }}
authenticators:
  yubikey5:
    aaguids: [cb69481e-8ff7-4039-93ec-0a2729a154a8]
    ca_files: ["{ca}"]
upstreams:
  who: builtin:whoami
  echo: http://{echo}
  dead: http://127.0.0.1:1
rules:
  - {{ name: public, hosts: [app.home.lab], paths: [/public, /public/**], upstream: who, policy: bypass }}
  - {{ name: closed, hosts: [app.home.lab], paths: [/closed, /closed/**], upstream: who, policy: deny }}
  - name: admin
    hosts: [app.home.lab]
    paths: [/admin, /admin/**]
    allow: [group:admins]
    upstream: who
    policy: passkey
    step_up: {{ max_age: 5m, scope: rule }}
  - name: billing
    hosts: [app.home.lab]
    paths: [/billing/**]
    upstream: who
    policy: passkey
    step_up: {{ max_age: 10m, scope: session }}
  - name: keys
    hosts: [app.home.lab]
    paths: [/keys/**]
    upstream: who
    policy: passkey
    step_up: {{ scope: session, authenticators: [yubikey5] }}
  - name: bound
    hosts: [app.home.lab]
    paths: [/bound/**]
    upstream: who
    policy: passkey
    step_up: {{ scope: session, device_bound: true }}
  - {{ name: lan, hosts: [app.home.lab], paths: [/lan/**], networks: [10.0.0.0/8], upstream: who, policy: bypass }}
  - {{ name: proxied, hosts: [echo.home.lab], paths: [/open/**], upstream: echo, policy: bypass }}
  - {{ name: proxied-login, hosts: [echo.home.lab], upstream: echo, policy: passkey }}
  - {{ name: dead, hosts: [dead.home.lab], upstream: dead, policy: bypass }}
  - {{ name: app, hosts: [app.home.lab], upstream: who, policy: passkey }}
"#,
        echo = echo.addr,
        ca = ca.display()
    ))
}

fn start() -> (TestGateway, EchoUpstream) {
    let echo = EchoUpstream::start();
    let g = TestGateway::start(rules(TestConfig::new(), &echo, UNTRUSTED));
    (g, echo)
}

#[test]
fn bypass_passes_without_identity_and_deny_refuses() {
    let (g, _e) = start();
    let r = g.get("app.home.lab", "/public/page?x=1", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed_request_line(), "GET /public/page?x=1 HTTP/1.1");
    assert!(r.echoed("remote-user").is_empty());
    let r = g.get("app.home.lab", "/closed/x", &[HTML]);
    assert_eq!(r.status, 403);
    // No rule for this host at all.
    let r = g.get("other.home.lab", "/", &[HTML]);
    assert_eq!(r.status, 403);
    // The portal host's root leads to the account page.
    let r = g.get("auth.home.lab", "/", &[HTML]);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/.stepgate/account"));
    assert_eq!(g.get("auth.home.lab", "/other", &[HTML]).status, 403);
}

#[test]
fn passkey_rule_sends_browsers_to_the_portal_and_api_clients_401() {
    let (g, _e) = start();
    let r = g.get("app.home.lab", "/dashboard?tab=a&b=c", &[HTML]);
    assert_eq!(r.status, 302, "{r:?}");
    assert_login_redirect(
        &r,
        "http://auth.home.lab/.stepgate/login?rd=http%3A%2F%2Fapp%2Ehome%2Elab%2Fdashboard%3Ftab%3Da%26b%3Dc",
    );
    // A POST is never redirected (its body would be lost).
    let r = g.request("POST", "app.home.lab", "/dashboard", &[HTML], "a=1");
    assert_eq!(r.status, 401);
    let www = r.header("www-authenticate").unwrap_or_default().to_string();
    assert!(
        www.starts_with("StepUp error=\"insufficient_user_authentication\""),
        "{www}"
    );
    assert!(
        www.contains("login=\"http://auth.home.lab/.stepgate/login?rd="),
        "{www}"
    );
    // An API GET (no text/html) gets 401 too.
    let r = g.get("app.home.lab", "/api/v1", &[("Accept", "application/json")]);
    assert_eq!(r.status, 401);
}

#[test]
fn signed_in_user_reaches_the_app_with_identity_headers_and_without_our_cookie() {
    let (g, _e) = start();
    let now = g.now();
    let cookie = g.sign_in("alice", "app.home.lab", Some(uv(now, &[], true)), vec![]);
    let both = format!("theme=dark; {cookie}; other=1");
    let r = g.get(
        "app.home.lab",
        "/home",
        &[
            ("Cookie", &both),
            ("Remote-User", "mallory"),
            ("remote_user", "mallory"),
            ("Remote.Groups", "admins"),
            ("STEPGATE-RULE", "admin"),
            ("Stepgate_Verified_At", "9999999999"),
            ("X-Other", "kept"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("remote-user"), vec!["alice"]);
    assert_eq!(r.echoed("remote-groups"), vec!["admins,staff"]);
    assert_eq!(r.echoed("remote-name"), vec!["Alice"]);
    assert_eq!(r.echoed("remote-email"), vec!["alice@home.lab"]);
    assert_eq!(r.echoed("stepgate-rule"), vec!["app"]);
    assert_eq!(r.echoed("stepgate-verified-at"), vec![now.to_string()]);
    assert!(r.echoed("remote_user").is_empty());
    assert!(r.echoed("remote.groups").is_empty());
    assert!(r.echoed("stepgate_verified_at").is_empty());
    assert_eq!(r.echoed("x-other"), vec!["kept"]);
    assert_eq!(r.echoed("cookie"), vec!["theme=dark; other=1"]);
    // The same cookie on another host is no session.
    let r = g.get("echo.home.lab", "/x", &[("Cookie", &cookie), HTML]);
    assert_eq!(r.status, 302);
}

#[test]
fn allow_list_refuses_signed_in_users_outside_it_and_expired_users() {
    let (g, _e) = start();
    let now = g.now();
    let bob = g.sign_in("bob", "app.home.lab", Some(uv(now, &[], false)), vec![]);
    let r = g.get("app.home.lab", "/admin/panel", &[("Cookie", &bob), HTML]);
    assert_eq!(r.status, 403, "allow is checked before any step-up");
    let guest = g.sign_in("guest", "app.home.lab", Some(uv(now, &[], false)), vec![]);
    let r = g.get("app.home.lab", "/home", &[("Cookie", &guest), HTML]);
    assert_eq!(r.status, 403, "an expired user grants nothing");
    let ghost = g.sign_in("ghost", "app.home.lab", Some(uv(now, &[], false)), vec![]);
    let r = g.get("app.home.lab", "/home", &[("Cookie", &ghost), HTML]);
    assert_eq!(
        r.status, 302,
        "a user removed from the config signs in again"
    );
}

#[test]
fn step_up_scope_rule_needs_a_ceremony_for_this_rule() {
    let (g, _e) = start();
    let now = g.now();
    // A fresh sign-in and a grant for another rule do not count for `admin`.
    let c = g.sign_in(
        "alice",
        "app.home.lab",
        Some(uv(now, &[], false)),
        vec![grant("billing", uv(now, &[], false))],
    );
    let r = g.get("app.home.lab", "/admin/x", &[("Cookie", &c)]);
    assert_eq!(r.status, 401);
    let www = r.header("www-authenticate").unwrap_or_default();
    assert!(www.contains("max_age=300"), "{www}");
    let r = g.get("app.home.lab", "/admin/x", &[("Cookie", &c), HTML]);
    assert_eq!(r.status, 302);
    // A grant for `admin` does.
    let c = g.sign_in(
        "alice",
        "app.home.lab",
        None,
        vec![grant("admin", uv(now - 10, &[], true))],
    );
    let r = g.get("app.home.lab", "/admin/x", &[("Cookie", &c)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("stepgate-rule"), vec!["admin"]);
    assert_eq!(
        r.echoed("stepgate-verified-at"),
        vec![(now - 10).to_string()]
    );
}

#[test]
fn step_up_scope_session_takes_any_recent_ceremony() {
    let (g, _e) = start();
    let now = g.now();
    let c = g.sign_in("bob", "app.home.lab", Some(uv(now - 60, &[], true)), vec![]);
    let r = g.get("app.home.lab", "/billing/invoices", &[("Cookie", &c)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.echoed("stepgate-verified-at"),
        vec![(now - 60).to_string()]
    );
    // A ceremony done for another rule counts as well.
    let c = g.sign_in(
        "bob",
        "app.home.lab",
        None,
        vec![grant("app", uv(now - 5, &[], true))],
    );
    let r = g.get("app.home.lab", "/billing/invoices", &[("Cookie", &c)]);
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn max_age_expires_with_the_clock() {
    let (g, _e) = start();
    let now = g.now();
    let c = g.sign_in(
        "alice",
        "app.home.lab",
        None,
        vec![grant("admin", uv(now, &[], false))],
    );
    assert_eq!(
        g.get("app.home.lab", "/admin/x", &[("Cookie", &c)]).status,
        200
    );
    g.clock.advance(299);
    assert_eq!(
        g.get("app.home.lab", "/admin/x", &[("Cookie", &c)]).status,
        200
    );
    g.clock.advance(2);
    let r = g.get("app.home.lab", "/admin/x", &[("Cookie", &c)]);
    assert_eq!(
        r.status, 401,
        "a 301 s old ceremony is too old for max_age 5m"
    );
    assert!(
        r.header("www-authenticate")
            .unwrap_or_default()
            .contains("max_age=300")
    );
    // Plain passkey rules do not care about age.
    assert_eq!(
        g.get("app.home.lab", "/home", &[("Cookie", &c)]).status,
        200
    );
}

#[test]
fn authenticators_and_device_bound_are_enforced() {
    let (g, _e) = start();
    let now = g.now();
    let any = g.sign_in("bob", "app.home.lab", Some(uv(now, &[], true)), vec![]);
    let yubi = g.sign_in(
        "bob",
        "app.home.lab",
        Some(uv(now, &["yubikey5"], false)),
        vec![],
    );
    assert_eq!(
        g.get("app.home.lab", "/keys/x", &[("Cookie", &any)]).status,
        401
    );
    assert_eq!(
        g.get("app.home.lab", "/keys/x", &[("Cookie", &yubi)])
            .status,
        200
    );
    // Synced (backup-eligible) passkeys do not satisfy device_bound.
    assert_eq!(
        g.get("app.home.lab", "/bound/x", &[("Cookie", &any)])
            .status,
        401
    );
    assert_eq!(
        g.get("app.home.lab", "/bound/x", &[("Cookie", &yubi)])
            .status,
        200
    );
}

#[test]
fn forwarded_headers_from_an_untrusted_peer_have_no_effect() {
    let (g, _e) = start();
    let spoof = [
        ("X-Forwarded-For", "10.1.2.3"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "admin.evil.test"),
        ("X_Forwarded_For", "10.9.9.9"),
        ("X-Real-IP", "10.1.2.3"),
        ("Forwarded", "for=10.1.2.3"),
        ("X-Original-URL", "http://app.home.lab/public/x"),
    ];
    // `lan` is a bypass for 10.0.0.0/8 only: a spoofed XFF must not reach it.
    let r = g.get("app.home.lab", "/lan/x", &[&spoof[..], &[HTML]].concat());
    assert_eq!(r.status, 302, "judged as 127.0.0.1: {r:?}");
    let rd = r.header("location").unwrap_or_default();
    assert!(
        rd.contains("rd=http%3A%2F%2Fapp"),
        "the scheme is what arrived: {rd}"
    );
    // What an upstream gets: the truth.
    let r = g.get("app.home.lab", "/public/x", &spoof);
    assert_eq!(r.status, 200);
    assert_eq!(r.echoed("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(r.echoed("x-forwarded-proto"), vec!["http"]);
    assert_eq!(r.echoed("x-forwarded-host"), vec!["app.home.lab"]);
    assert!(r.echoed("x_forwarded_for").is_empty());
    assert!(r.echoed("x-real-ip").is_empty());
    assert!(r.echoed("forwarded").is_empty());
    assert!(r.echoed("x-original-url").is_empty());
    assert_eq!(r.echoed_request_line(), "GET /public/x HTTP/1.1");
    // Forward-auth answers only trusted proxies.
    let r = g.get(
        "auth.home.lab",
        "/.stepgate/authz/forward-auth",
        &[
            ("X-Forwarded-Host", "app.home.lab"),
            ("X-Forwarded-Uri", "/public/x"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Method", "GET"),
        ],
    );
    assert_eq!(r.status, 403);
}

#[test]
fn requests_are_normalised_and_proxied_upstream_with_the_original_query() {
    let (g, echo) = start();
    let port = g.addr.port();
    let r = g.get(
        &format!("Echo.Home.Lab.:{port}"),
        "/open/a/./b//c/../d?q=%2F..%2F&x",
        &[],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.echoed_request_line(),
        "GET /open/a/b/d?q=%2F..%2F&x HTTP/1.1"
    );
    // The upstream is told the host that was judged.
    assert_eq!(r.echoed("host"), vec![format!("echo.home.lab:{port}")]);
    // Streamed (chunked) bodies pass through; the upstream connection is reused.
    let before = echo.connections.load(std::sync::atomic::Ordering::SeqCst);
    let chunk = "x".repeat(10_000);
    let mut req = String::from(
        "POST /open/upload HTTP/1.1\r\nHost: echo.home.lab\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for _ in 0..20 {
        req.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    req.push_str("0\r\n\r\n");
    let mut conn = Conn::open(g.addr);
    conn.send(req.as_bytes());
    let first = conn.read_response();
    assert_eq!(
        first.as_ref().map(|r| r.echoed("x-echo-body-length")),
        Some(vec!["200000".to_string()]),
        "{first:?}"
    );
    conn.send(b"GET /open/second HTTP/1.1\r\nHost: echo.home.lab\r\n\r\n");
    let second = conn.read_response();
    assert_eq!(
        second.as_ref().map(|r| r.echoed_request_line().to_string()),
        Some("GET /open/second HTTP/1.1".to_string())
    );
    let after = echo.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        after - before <= 1,
        "upstream keep-alive: {before} → {after}"
    );
}

#[test]
fn an_unreachable_upstream_is_502_and_head_gets_no_body() {
    let (g, _e) = start();
    let r = g.get("dead.home.lab", "/", &[]);
    assert_eq!(r.status, 502, "{r:?}");
    let r = g.request("HEAD", "app.home.lab", "/closed/x", &[], "");
    assert_eq!(r.status, 403);
    assert_eq!(r.body, "");
}

#[test]
fn websocket_upgrades_pass_through() {
    use std::io::{Read, Write};
    let (g, _echo) = start();
    let mut s = match std::net::TcpStream::connect(g.addr) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let req = "GET /open/ws HTTP/1.1\r\nHost: echo.home.lab\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    assert!(s.write_all(req.as_bytes()).is_ok());
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&got).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(s.write_all(b"ping-frame-bytes").is_ok());
    let mut echoed = Vec::new();
    while echoed.len() < 16 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => echoed.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(&echoed[..], b"ping-frame-bytes");
}

#[test]
fn malformed_requests_get_400() {
    let (g, _e) = start();
    let cases = [
        (
            "bad host",
            "GET / HTTP/1.1\nHost: app home.lab\nConnection: close\n\n",
        ),
        ("no host", "GET /public/x HTTP/1.1\nConnection: close\n\n"),
        (
            "encoded slash",
            "GET /public/a%2Fb HTTP/1.1\nHost: app.home.lab\nConnection: close\n\n",
        ),
        (
            "encoded dot-dot escape",
            "GET /%2e%2e/etc HTTP/1.1\nHost: app.home.lab\nConnection: close\n\n",
        ),
        (
            "dot-dot escape",
            "GET /public/../../x HTTP/1.1\nHost: app.home.lab\nConnection: close\n\n",
        ),
        (
            "backslash",
            "GET /public\\..\\x HTTP/1.1\nHost: app.home.lab\nConnection: close\n\n",
        ),
        (
            "NUL",
            "GET /public/%00 HTTP/1.1\nHost: app.home.lab\nConnection: close\n\n",
        ),
        (
            "CL and TE",
            "POST /public/x HTTP/1.1\nHost: app.home.lab\nContent-Length: 5\nTransfer-Encoding: chunked\nConnection: close\n\n0\n\n",
        ),
        (
            "repeated Host",
            "GET /public/x HTTP/1.1\nHost: app.home.lab\nHost: evil.test\nConnection: close\n\n",
        ),
        (
            "Host differs from absolute target",
            "GET http://app.home.lab/public/x HTTP/1.1\nHost: evil.test\nConnection: close\n\n",
        ),
    ];
    for (what, req) in cases {
        let r = g.raw(req);
        assert_eq!(r.status, 400, "{what}: {r:?}");
    }
    // An absolute-form target that agrees with Host is fine.
    let r = g.raw(
        "GET http://app.home.lab/public/x HTTP/1.1\nHost: app.home.lab\nConnection: close\n\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn a_refused_request_body_is_never_read_as_a_request() {
    let (g, _e) = start();
    // The body of a denied POST looks like a request for a bypass path.
    let smuggled = "GET /public/smuggled HTTP/1.1\r\nHost: app.home.lab\r\n\r\n";
    let req = format!(
        "POST /closed/x HTTP/1.1\r\nHost: app.home.lab\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let mut conn = Conn::open(g.addr);
    conn.send(req.as_bytes());
    let first = conn.read_response();
    assert_eq!(first.as_ref().map(|r| r.status), Some(403), "{first:?}");
    assert_eq!(
        first.as_ref().and_then(|r| r.header("connection")),
        Some("keep-alive")
    );
    // Drained and kept alive: the next request is answered, not the smuggled one.
    conn.send(b"GET /public/next HTTP/1.1\r\nHost: app.home.lab\r\n\r\n");
    let next = conn.read_response();
    assert_eq!(
        next.as_ref().map(|r| r.echoed_request_line().to_string()),
        Some("GET /public/next HTTP/1.1".to_string()),
        "{next:?}"
    );
    // A large body is not drained: the connection closes after the answer.
    let req = "POST /closed/x HTTP/1.1\r\nHost: app.home.lab\r\nContent-Length: 10000000\r\n\r\nGET /public/smuggled HTTP/1.1\r\nHost: app.home.lab\r\n\r\n";
    let rs = parse_responses(&exchange(g.addr, req.as_bytes()));
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status, 403);
    assert_eq!(rs[0].header("connection"), Some("close"));
}

#[test]
fn a_refused_post_expecting_100_continue_is_answered_at_once() {
    let (g, _e) = start();
    let started = std::time::Instant::now();
    let r = g.raw(
        "POST /closed/x HTTP/1.1\nHost: app.home.lab\nContent-Length: 5000\nExpect: 100-continue\n\n",
    );
    assert_eq!(r.status, 403);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "answered without waiting for the body: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_portal_post_expecting_100_continue_gets_it() {
    let (g, _e) = start();
    let body = r#"{"rd":"http://app.home.lab/"}"#;
    let mut conn = Conn::open(g.addr);
    conn.send(
        format!(
            "POST /.stepgate/api/login/begin HTTP/1.1\r\nHost: auth.home.lab\r\nContent-Type: application/json\r\nOrigin: http://auth.home.lab\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let first = conn.read_response();
    assert_eq!(first.as_ref().map(|r| r.status), Some(100), "{first:?}");
    conn.send(body.as_bytes());
    let answer = conn.read_response();
    assert!(
        answer.as_ref().is_some_and(|r| r.status >= 200),
        "{answer:?}"
    );
}

#[test]
fn forward_auth_from_a_trusted_proxy() {
    let echo = EchoUpstream::start();
    let g = TestGateway::start(rules(TestConfig::new(), &echo, "127.0.0.1/32"));
    let ask = |uri: &str, extra: &[(&str, &str)]| {
        let mut h = vec![
            ("X-Forwarded-Host", "app.home.lab"),
            ("X-Forwarded-Uri", uri),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-For", "192.0.2.7"),
        ];
        h.extend_from_slice(extra);
        g.get("auth.home.lab", "/.stepgate/authz/forward-auth", &h)
    };
    let r = ask("/public/x", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    for h in [
        "remote-user",
        "remote-groups",
        "remote-name",
        "remote-email",
        "stepgate-verified-at",
        "stepgate-rule",
    ] {
        assert_eq!(r.header(h), Some(""), "{h} is sent empty for a bypass");
    }
    assert_eq!(ask("/closed/x", &[]).status, 403);
    let r = ask("/home?a=b", &[HTML]);
    assert_eq!(r.status, 302);
    assert_login_redirect(
        &r,
        "http://auth.home.lab/.stepgate/login?rd=https%3A%2F%2Fapp%2Ehome%2Elab%2Fhome%3Fa%3Db",
    );
    assert_eq!(ask("/home", &[]).status, 401);
    let c = g.sign_in(
        "alice",
        "app.home.lab",
        Some(uv(g.now(), &[], false)),
        vec![],
    );
    // Over https the app cookie carries the `__Host-` prefix.
    assert_eq!(ask("/home", &[("Cookie", &c)]).status, 401);
    let c = format!("__Host-{c}");
    let r = ask("/home", &[("Cookie", &c)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("remote-user"), Some("alice"));
    assert_eq!(r.header("stepgate-rule"), Some("app"));
    // nginx: 401 (with a Location for browsers) where others redirect. The
    // subrequest's Host is the client's own (the template sends $http_host).
    let r = g.get(
        "app.home.lab",
        "/.stepgate/authz/auth-request",
        &[
            ("X-Original-URL", "https://app.home.lab/home"),
            ("X-Original-Method", "GET"),
            HTML,
        ],
    );
    assert_eq!(r.status, 401);
    assert!(
        r.header("location")
            .unwrap_or_default()
            .contains("rd=https%3A%2F%2Fapp")
    );
    let r = g.get(
        "app.home.lab",
        "/.stepgate/authz/auth-request",
        &[
            ("X-Original-URL", "https://app.home.lab/admin/x"),
            ("X-Original-Method", "GET"),
            ("Cookie", &c),
        ],
    );
    assert_eq!(r.status, 401, "step-up needed: {r:?}");
    // XFF from a trusted proxy is believed: `lan` matches 10.0.0.0/8 only.
    let r = ask("/lan/x", &[]);
    assert_eq!(r.status, 401, "192.0.2.7 is not on the LAN");
    let r = g.get(
        "auth.home.lab",
        "/.stepgate/authz/forward-auth",
        &[
            ("X-Forwarded-Host", "app.home.lab"),
            ("X-Forwarded-Uri", "/lan/x"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-For", "10.1.1.1"),
        ],
    );
    assert_eq!(r.status, 200);
    // Inline behind a trusted proxy: XFF is appended to and believed, XFP kept.
    let r = g.get(
        "app.home.lab",
        "/lan/x",
        &[
            ("X-Forwarded-For", "10.1.1.1"),
            ("X-Forwarded-Proto", "https"),
        ],
    );
    assert_eq!(r.status, 200, "judged as 10.1.1.1: {r:?}");
    assert_eq!(r.echoed("x-forwarded-for"), vec!["10.1.1.1, 127.0.0.1"]);
    assert_eq!(r.echoed("x-forwarded-proto"), vec!["https"]);
    // Malformed forwarded paths: 400.
    assert_eq!(ask("/public/%2e%2e/%2e%2e/x", &[]).status, 400);
}

#[test]
fn admin_listener_reports_health_and_metrics() {
    let (g, _e) = start();
    assert_eq!(g.admin_get("/healthz").status, 200);
    assert_eq!(g.admin_get("/readyz").status, 200);
    let _ = g.get("app.home.lab", "/closed/x", &[]);
    let m = g.admin_get("/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.body
            .contains("stepgate_requests_total{outcome=\"deny\",rule=\"closed\"}"),
        "{}",
        m.body
    );
    assert!(m.body.contains("stepgate_store_latency_seconds"));
}

#[test]
fn store_down_fails_closed_with_503() {
    let mut redis = crate::kit::RedisServer::start();
    let echo = EchoUpstream::start();
    let config = TestConfig::new().redis(&redis.url(), "t:");
    let g = TestGateway::start(rules(config, &echo, UNTRUSTED));
    let c = g.sign_in(
        "alice",
        "app.home.lab",
        Some(uv(g.now(), &[], false)),
        vec![],
    );
    assert_eq!(
        g.get("app.home.lab", "/home", &[("Cookie", &c)]).status,
        200
    );
    assert_eq!(g.admin_get("/readyz").status, 200);
    redis.kill();
    // A session looked up less than `session::cache::TTL` ago is reused
    // without asking the store; once that has passed, the store must answer.
    std::thread::sleep(stepgate::session::cache::TTL);
    let r = g.get("app.home.lab", "/home", &[("Cookie", &c), HTML]);
    assert_eq!(r.status, 503, "{r:?}");
    // Without a cookie there is nothing to look up: sign in first.
    assert_eq!(g.get("app.home.lab", "/home", &[HTML]).status, 302);
    // Bypass and deny rules need no store.
    assert_eq!(g.get("app.home.lab", "/public/x", &[]).status, 200);
    assert_eq!(g.get("app.home.lab", "/closed/x", &[]).status, 403);
    assert_eq!(g.admin_get("/readyz").status, 503);
    assert_eq!(g.admin_get("/healthz").status, 200);
}

#[test]
fn tls_listener_serves_https_and_says_so_upstream() {
    use pingora::tls::ssl::{SslConnector, SslMethod, SslVerifyMode};
    use std::io::{Read, Write};
    let echo = EchoUpstream::start();
    let config = TestConfig::new();
    let (cert, key) = crate::kit::self_signed(config.dir(), "tls");
    let tls_port = crate::kit::free_port();
    let g = TestGateway::start(rules(config.tls(tls_port, &cert, &key), &echo, UNTRUSTED));
    crate::kit::wait_for_port(([127, 0, 0, 1], tls_port).into());
    let https_get = |path: &str, extra: &str| -> crate::kit::Response {
        let mut b = match SslConnector::builder(SslMethod::tls()) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        b.set_verify(SslVerifyMode::NONE);
        let connector = b.build();
        let tcp = match std::net::TcpStream::connect(("127.0.0.1", tls_port)) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let mut s = match connector.connect("app.home.lab", tcp) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: app.home.lab\r\nConnection: close\r\n{extra}\r\n"
        );
        assert!(s.write_all(req.as_bytes()).is_ok());
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        match crate::kit::parse_responses(&all).into_iter().next() {
            Some(r) => r,
            None => panic!("no response over TLS: {:?}", String::from_utf8_lossy(&all)),
        }
    };
    let r = https_get("/public/x", "X-Forwarded-Proto: http\r\n");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("x-forwarded-proto"), vec!["https"]);
    let r = https_get("/home", "Accept: text/html\r\n");
    assert_eq!(r.status, 302);
    assert_login_redirect(
        &r,
        "http://auth.home.lab/.stepgate/login?rd=https%3A%2F%2Fapp%2Ehome%2Elab%2Fhome",
    );
    // The plain listener keeps working beside it.
    assert_eq!(g.get("app.home.lab", "/public/x", &[]).status, 200);

    // A renewed certificate applies at the next handshake, without a restart;
    // a key that does not match its certificate is refused and the old pair stays.
    let peer_cn = || {
        let mut b = match SslConnector::builder(SslMethod::tls()) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        b.set_verify(SslVerifyMode::NONE);
        let tcp = match std::net::TcpStream::connect(("127.0.0.1", tls_port)) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let s = match b.build().connect("app.home.lab", tcp) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let cert = s
            .ssl()
            .peer_certificate()
            .unwrap_or_else(|| panic!("no peer certificate"));
        let cn = cert
            .subject_name()
            .entries()
            .next()
            .and_then(|e| e.data().to_string().ok());
        cn.unwrap_or_default()
    };
    assert_eq!(peer_cn(), "tls");
    let (cert2, key2) = crate::kit::self_signed(g.dir.path(), "renewed");
    let current = g.gw.snapshot();
    let with_tls = |cert: &std::path::Path, key: &std::path::Path| {
        let mut rt = current.config.clone();
        if let Some(t) = rt.tls.as_mut() {
            t.cert = cert.to_path_buf();
            t.key = key.to_path_buf();
        }
        rt
    };
    assert!(
        g.gw.apply(with_tls(&cert2, &key)).is_err(),
        "a mismatched key must be refused"
    );
    assert_eq!(peer_cn(), "tls");
    assert!(g.gw.apply(with_tls(&cert2, &key2)).is_ok());
    assert_eq!(peer_cn(), "renewed");
}

#[test]
fn serve_binary_finishes_in_flight_requests_on_sigterm() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::{Duration, Instant};
    // An upstream that takes 1.5 s to answer.
    let slow = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let slow_addr = slow.local_addr().ok();
    std::thread::spawn(move || {
        for mut c in slow.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                std::thread::sleep(Duration::from_millis(1500));
                let _ = c.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow",
                );
            });
        }
    });
    let port = crate::kit::free_port();
    let admin = crate::kit::free_port();
    let config = TestConfig::new().body(&format!(
        "upstreams: {{ slow: \"http://{}\" }}\nrules:\n  - {{ name: slow, hosts: [\"*\"], upstream: slow, policy: bypass }}\n",
        slow_addr.map(|a| a.to_string()).unwrap_or_default()
    ));
    let yaml = config.yaml(
        ([127, 0, 0, 1], port).into(),
        Some(([127, 0, 0, 1], admin).into()),
    );
    let file = config.path("stepgate.yaml");
    assert!(std::fs::write(&file, yaml).is_ok());
    let mut child = crate::kit::binary::serve(&file);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    crate::kit::wait_for_port(addr);
    crate::kit::wait_for_port(([127, 0, 0, 1], admin).into());
    let in_flight = std::thread::spawn(move || {
        crate::kit::raw_request(
            addr,
            "GET /x HTTP/1.1\nHost: app.home.lab\nConnection: close\n\n",
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    let killed = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status();
    assert!(killed.is_ok_and(|s| s.success()));
    let r = match in_flight.join() {
        Ok(r) => r,
        Err(_) => panic!("request thread panicked"),
    };
    assert_eq!(r.status, 200, "the in-flight request finished: {r:?}");
    assert_eq!(r.body, "slow");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => break None,
        }
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "stepgate exits 0 after SIGTERM: {status:?}"
    );
}

#[test]
fn sighup_reloads_the_config_and_a_bad_file_keeps_the_running_one() {
    use std::time::{Duration, Instant};
    let port = crate::kit::free_port();
    let admin = crate::kit::free_port();
    let config = TestConfig::new().body("upstreams: { who: builtin:whoami }\n");
    let head = config.yaml(
        ([127, 0, 0, 1], port).into(),
        Some(([127, 0, 0, 1], admin).into()),
    );
    let with_policy = |p: &str| {
        format!("{head}rules:\n  - {{ name: x, hosts: [\"*\"], upstream: who, policy: {p} }}\n")
    };
    let file = config.path("stepgate.yaml");
    assert!(std::fs::write(&file, with_policy("bypass")).is_ok());
    let child = crate::kit::binary::serve(&file);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let admin_addr: std::net::SocketAddr = ([127, 0, 0, 1], admin).into();
    crate::kit::wait_for_port(addr);
    crate::kit::wait_for_port(admin_addr);
    let status = || {
        crate::kit::raw_request(addr, "GET / HTTP/1.1\nHost: a.test\nConnection: close\n\n").status
    };
    let hup = || {
        let s = std::process::Command::new("kill")
            .arg("-HUP")
            .arg(child.0.id().to_string())
            .status();
        assert!(s.is_ok_and(|s| s.success()));
    };
    let wait_for = |want: u16| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if status() == want {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    assert_eq!(status(), 200);
    assert!(std::fs::write(&file, with_policy("deny")).is_ok());
    hup();
    assert!(wait_for(403), "SIGHUP applied the new rule");
    assert!(std::fs::write(&file, with_policy("sometimes")).is_ok());
    hup();
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let m = crate::kit::raw_request(
            admin_addr,
            "GET /metrics HTTP/1.1\nHost: admin\nConnection: close\n\n",
        );
        if counter(&m.body, "stepgate_config_reloads_total{result=\"error\"}") >= 1
            || Instant::now() > deadline
        {
            break m;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        counter(
            &metrics.body,
            "stepgate_config_reloads_total{result=\"error\"}"
        ) >= 1,
        "{}",
        metrics.body
    );
    assert!(
        counter(
            &metrics.body,
            "stepgate_config_reloads_total{result=\"ok\"}"
        ) >= 1
    );
    assert_eq!(status(), 403, "a bad file keeps the running config");
}

/// The value of one Prometheus series in a text exposition (0 when absent).
fn counter(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Two gateway instances on one Redis: a session made through one is honoured
/// by the other, and a revocation ends it on both at once (no cache stretches it).
#[test]
fn two_gateways_on_one_redis_share_sessions_and_revocations() {
    let redis = crate::kit::RedisServer::start();
    let rest = "users: { alice: { groups: [admins] } }\nupstreams: { demo: \"builtin:whoami\" }\nrules:\n  - { name: app, hosts: [app.home.lab], upstream: demo, policy: passkey }\n";
    let on_redis = || TestConfig::new().redis(&redis.url(), "multi:").body(rest);
    let a = TestGateway::start(on_redis());
    let key = a.dir.path().join("cookie.key");
    let b = TestGateway::start(on_redis().cookie_key(&key));
    let cookie = a.sign_in(
        "alice",
        "app.home.lab",
        Some(uv(a.now(), &[], false)),
        vec![],
    );
    for (name, gw) in [("a", &a), ("b", &b)] {
        let r = gw.get("app.home.lab", "/", &[("Cookie", &cookie)]);
        assert_eq!(r.status, 200, "gateway {name}: {}", r.body);
        assert_eq!(r.echoed("remote-user"), vec!["alice"], "gateway {name}");
    }
    // Revoke through a store handle of b's config, as `stepgate sessions revoke` would.
    let store = crate::kit::own_store(&b.gw);
    let ended = crate::kit::tokio_rt().block_on(store.revoke_user_sessions("alice"));
    assert!(matches!(ended, Ok(1)), "{ended:?}");
    // Both refuse it within 1 s, as promised, whatever either has cached.
    let revoked_at = std::time::Instant::now();
    for (name, gw) in [("a", &a), ("b", &b)] {
        crate::kit::until_status(
            401,
            revoked_at,
            std::time::Duration::from_secs(1),
            &format!("gateway {name} with a revoked session"),
            || gw.get("app.home.lab", "/", &[("Cookie", &cookie)]).status,
        );
    }
}

/// Two gateway instances on one Redis count ceremonies against one
/// allowance: a client alternating between them gets no more sign-in
/// attempts than from one.
#[test]
fn two_gateways_on_one_redis_share_one_rate_limit() {
    let redis = crate::kit::RedisServer::start();
    let rest = "rate_limit: { per_ip_per_minute: 6, per_user_per_minute: 30 }\nusers: { alice: {} }\nupstreams: { demo: \"builtin:whoami\" }\nrules:\n  - { name: app, hosts: [app.test], upstream: demo, policy: passkey }\n";
    let on_redis = || {
        TestConfig::behind_proxy()
            .redis(&redis.url(), "limits:")
            .body(rest)
    };
    let a = TestGateway::start(on_redis());
    let b = TestGateway::start(on_redis());
    let mut answers = Vec::new();
    for i in 0..12 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let mut browser = NetBrowser::new(gw.addr);
        let (status, _) = browser.try_api("login/begin", &serde_json::json!({ "rd": "" }));
        answers.push(status);
    }
    let allowed = answers.iter().filter(|s| **s == 200).count();
    let limited = answers.iter().filter(|s| **s == 429).count();
    assert_eq!((allowed, limited), (6, 6), "{answers:?}");
    assert!(answers[6..].iter().all(|s| *s == 429), "{answers:?}");
}
