//! The audit trail: a sign-in, a step-up, a denial and a revocation each leave
//! one JSON event with who, what, rule, credential label, outcome and client
//! address — and no cookie, token or code value anywhere in the log.

use std::io::Write;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, StatusCode};
use serde_json::Value;
use stepgate::request::Facts;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::kit::portal::*;

/// A `MakeWriter` that appends to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).to_string())
            .unwrap_or_default()
    }

    /// The audit events, parsed.
    fn events(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == stepgate::audit::TARGET)
            .collect()
    }
}

fn find<'a>(events: &'a [Value], event: &str, kind: Option<&str>) -> &'a Value {
    events
        .iter()
        .find(|e| e["fields"]["event"] == event && kind.is_none_or(|k| e["fields"]["kind"] == k))
        .unwrap_or_else(|| panic!("no {event} {kind:?} event in {events:#?}"))
}

#[tokio::test]
async fn audit_events_hold_who_what_and_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // tracing-core treats "one registered dispatcher" as "the current thread's
    // default decides": a callsite first hit on another test thread (no
    // subscriber there) would then be cached as never-enabled, and this
    // thread would miss it. A second live dispatcher makes registration ask
    // every dispatcher, this one included.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());

    let h = Harness::new().await;
    let mut b = h.browser();
    let mut key = SoftPasskey::new(true);
    let token = h.invite("alice", None).await;
    let (s, v) = enroll(&mut b, &mut key, &token, "laptop", &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Sign-in for the app, then the callback (a grant).
    let mut b2 = h.browser();
    let (s, v) = login(
        &mut b2,
        &mut key,
        "https://app.test/",
        Some("alice"),
        &Client::default(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let callback = v["redirect"].as_str().unwrap_or_default().to_string();
    let code = callback
        .split("code=")
        .nth(1)
        .unwrap_or_default()
        .split('&')
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(b2.get(&callback).await.status, StatusCode::SEE_OTHER);

    // A step-up for a rule with step_up.
    let (s, v) = login(
        &mut b2,
        &mut key,
        "https://bound.test/",
        None,
        &Client::default(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // A denial: no rule covers this host.
    let facts = Facts {
        method: http::Method::GET,
        host: "nothing.test".into(),
        port: None,
        path: "/secret".into(),
        query: None,
        https: true,
        client_ip: [192, 0, 2, 7].into(),
        headers: HeaderMap::new(),
    };
    let snapshot = h.gw.snapshot();
    let verdict = stepgate::access::judge(&h.gw, &snapshot, &facts).await;
    assert_eq!(verdict.map(|v| v.outcome()).ok(), Some("deny"));

    // A revocation: sign out everywhere from the account page.
    let portal = b2
        .cookie("auth.test", "__Host-stepgate_portal")
        .unwrap_or_default();
    let csrf = stepgate::portal::guard::csrf_token(&h.hash_of(&portal));
    let r = b2
        .post_form(
            &format!("{PORTAL}/.stepgate/account/end-all"),
            &[("csrf", &csrf)],
        )
        .await;
    assert!(
        r.status.is_redirection() || r.status == StatusCode::OK,
        "{:?}",
        r.status
    );

    let events = captured.events();
    let enroll = find(&events, "ceremony", Some("enroll"));
    assert_eq!(enroll["fields"]["user"], "alice");
    assert_eq!(enroll["fields"]["credential"], "laptop");
    assert_eq!(enroll["fields"]["outcome"], "ok");

    let sign_in = find(&events, "ceremony", Some("sign_in"));
    assert_eq!(sign_in["fields"]["user"], "alice");
    assert_eq!(sign_in["fields"]["rule"], "app");
    assert_eq!(sign_in["fields"]["credential"], "laptop");
    assert_eq!(sign_in["fields"]["outcome"], "ok");
    assert!(
        sign_in["fields"]["client_ip"]
            .as_str()
            .is_some_and(|ip| !ip.is_empty())
    );

    let grant = find(&events, "grant", None);
    assert_eq!(grant["fields"]["user"], "alice");
    assert_eq!(grant["fields"]["rule"], "app");
    assert_eq!(grant["fields"]["host"], "app.test");

    let step_up = find(&events, "ceremony", Some("step_up"));
    assert_eq!(step_up["fields"]["user"], "alice");
    assert_eq!(step_up["fields"]["rule"], "bound");
    assert_eq!(step_up["fields"]["credential"], "laptop");

    let denial = find(&events, "denial", None);
    assert_eq!(denial["fields"]["outcome"], "no_rule");
    assert_eq!(denial["fields"]["host"], "nothing.test");
    assert_eq!(denial["fields"]["client_ip"], "192.0.2.7");

    let revocation = find(&events, "revocation", None);
    assert_eq!(revocation["fields"]["user"], "alice");
    assert_eq!(revocation["fields"]["what"], "all_sessions");
    // It says what it left alive: client tokens are kept unless the form asks.
    assert_eq!(
        revocation["fields"]["target"],
        "2 session(s); 0 token(s) kept"
    );
    assert_eq!(revocation["fields"]["by"], "account");

    // No secret anywhere in the whole log (audit or not).
    let log = captured.text();
    let app_cookie = b2
        .cookie("app.test", "__Host-stepgate_app")
        .unwrap_or_default();
    for (what, secret) in [
        ("invite token", token.as_str()),
        ("portal cookie", portal.as_str()),
        ("app cookie", app_cookie.as_str()),
        ("callback code", code.as_str()),
        ("csrf token", csrf.as_str()),
    ] {
        assert!(secret.len() >= 16, "{what} too short to check: {secret:?}");
        assert!(!log.contains(secret), "the log holds the {what}");
    }
}

/// The real binary at the most verbose level: invite tokens, callback codes
/// and cookies appear in no log line, including pingora's own line for a
/// request whose upstream failed (its request summary names no query).
#[test]
fn no_secret_reaches_the_log_at_any_level() {
    use crate::kit::{TestConfig, binary::Process, free_port, raw_request, wait_for_port};
    let config = TestConfig::new()
        .portal_on_listen_port("http://auth.localhost")
        .body(
            r#"users: { alice: {} }
upstreams: { dead: "http://127.0.0.1:1", who: "builtin:whoami" }
rules:
  - { name: dead, hosts: [dead.localhost], upstream: dead, policy: bypass }
  - { name: app, hosts: [app.localhost], upstream: who, policy: passkey }
"#,
        );
    let port = free_port();
    let file = config.path("stepgate.yaml");
    let yaml = config.yaml(([127, 0, 0, 1], port).into(), None);
    if let Err(e) = std::fs::write(&file, yaml) {
        panic!("{e}");
    }
    let f = file.display().to_string();
    let proc = Process::start_env(
        config.dir(),
        &["serve", "-c", &f],
        config.dir().join("stepgate.log"),
        &[("RUST_LOG", "trace")],
    );
    let addr = ([127, 0, 0, 1], port).into();
    wait_for_port(addr);
    // An invite, as `stepgate invite` prints it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(["invite", "-c", &f, "alice"])
        .output();
    let url = out
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let invite = url.split("token=").nth(1).unwrap_or_default().to_string();
    assert!(invite.len() >= 16, "no invite token in {url:?}");
    let code = "Sup3rSecretCallbackCode0123456789ab";
    let cookie = "stepgate_app=AAAAsecretcookievalue00000000000000000000000000000000000000000000";
    let app_cookie = "session=AppOwnCookieSecret42";
    let query = "code=QuerySecretCode77&token=QuerySecretToken88";
    let host = |h: &str| format!("{h}.localhost:{port}");
    let requests = [
        format!(
            "GET /.stepgate/enroll?token={invite} HTTP/1.1\nHost: {}\n",
            host("auth")
        ),
        format!(
            "GET /.stepgate/callback?code={code}&rd=x HTTP/1.1\nHost: {}\nCookie: {cookie}\n",
            host("app")
        ),
        format!(
            "GET /page HTTP/1.1\nHost: {}\nCookie: {cookie}; {app_cookie}\nAccept: text/html\n",
            host("app")
        ),
        format!(
            "GET /x?{query} HTTP/1.1\nHost: {}\nCookie: {app_cookie}\n",
            host("dead")
        ),
    ];
    for r in &requests {
        let _ = raw_request(addr, &format!("{r}Connection: close\n\n"));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = proc.log_text();
    assert!(
        log.contains("judged") && log.lines().count() > 10,
        "the log should be verbose here: {log}"
    );
    assert!(
        log.contains("127.0.0.1:1") || log.to_ascii_lowercase().contains("fail"),
        "the failed upstream is logged: {log}"
    );
    for secret in [
        invite.as_str(),
        code,
        "secretcookievalue",
        "AppOwnCookieSecret42",
        "QuerySecretCode77",
        "QuerySecretToken88",
        "enroll?token=",
    ] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
}
