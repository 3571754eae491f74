//! End to end through the real pingora server: enroll a software passkey,
//! sign in, follow the callback on the app host, reach the app with identity
//! headers, then a step-up rule, its `max_age` expiry and a new step-up, all
//! over HTTP (the gateway sits behind a trusted proxy that says https).

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::{Value, json};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::gateway_util::{Response, TestGateway, send_bytes, tokio_rt};
use crate::portal_util::{Client, create, get};

/// A browser speaking HTTP to the gateway: one cookie jar per host, every
/// request carrying `X-Forwarded-Proto: https` as the TLS-terminating proxy would.
pub(crate) struct NetBrowser {
    pub(crate) addr: SocketAddr,
    pub(crate) jar: HashMap<String, HashMap<String, String>>,
}

impl NetBrowser {
    pub(crate) fn request(&mut self, method: &str, url: &str, body: &str, ct: &str) -> Response {
        let u = match url::Url::parse(url) {
            Ok(u) => u,
            Err(e) => panic!("{url}: {e}"),
        };
        let host = u.host_str().unwrap_or("").to_string();
        let target = match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        };
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nX-Forwarded-Proto: https\r\nAccept: text/html,application/json\r\n"
        );
        if let Some(jar) = self.jar.get(&host).filter(|j| !j.is_empty()) {
            let c: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req.push_str(&format!("Cookie: {}\r\n", c.join("; ")));
        }
        if method == "POST" {
            req.push_str(&format!(
                "Content-Type: {ct}\r\nOrigin: https://auth.test\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        let r = send_bytes(self.addr, req.as_bytes());
        for (k, v) in &r.headers {
            if !k.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let first = v.split(';').next().unwrap_or("");
            if let Some((name, value)) = first.split_once('=') {
                let jar = self.jar.entry(host.clone()).or_default();
                if value.is_empty() || v.contains("Max-Age=0") {
                    jar.remove(name);
                } else {
                    jar.insert(name.to_string(), value.to_string());
                }
            }
        }
        r
    }

    pub(crate) fn get(&mut self, url: &str) -> Response {
        self.request("GET", url, "", "")
    }

    pub(crate) fn api(&mut self, path: &str, body: &Value) -> Value {
        let r = self.request(
            "POST",
            &format!("https://auth.test/.stepgate/api/{path}"),
            &body.to_string(),
            "application/json",
        );
        assert_eq!(r.status, 200, "{path}: {r:?}");
        serde_json::from_str(&r.body).unwrap_or(Value::Null)
    }

    /// Enroll `key` for alice with an invite (the token `stepgate invite` would print).
    pub(crate) fn enroll_by_invite(&mut self, g: &TestGateway, key: &mut SoftPasskey) {
        let token = stepgate::session::new_token();
        let invite = stepgate::session::Invite {
            user: "alice".into(),
            credential_ttl: None,
            expires_at: g.now() + 3600,
        };
        let added = tokio_rt().block_on(async {
            let store = stepgate::store::open(&g.gw.config.load().store)?;
            store
                .add_invite(&stepgate::session::token_hash(&token), &invite)
                .await
        });
        assert!(added.is_ok(), "{added:?}");
        let begun = self.api(
            "enroll/begin",
            &json!({ "token": token, "label": "laptop" }),
        );
        let cred = create(key, &begun["publicKey"], &Client::default());
        self.api(
            "enroll/finish",
            &json!({ "ceremony": begun["ceremony"], "credential": cred }),
        );
    }

    /// Sign in (or step up) for `rd` and follow the callback; returns where it lands.
    pub(crate) fn sign_in(&mut self, key: &mut SoftPasskey, rd: &str) -> String {
        let begun = self.api("login/begin", &json!({ "rd": rd, "username": "alice" }));
        let cred = get(key, &begun["publicKey"], &Client::default());
        let done = self.api(
            "login/finish",
            &json!({ "ceremony": begun["ceremony"], "credential": cred }),
        );
        let redirect = done["redirect"].as_str().unwrap_or("").to_string();
        assert!(redirect.contains("/.stepgate/callback?code="), "{done}");
        let cb = self.get(&redirect);
        assert_eq!(cb.status, 303, "{cb:?}");
        cb.header("location").unwrap_or("").to_string()
    }
}

#[test]
fn enroll_sign_in_step_up_and_expiry_through_the_server() {
    let dir = crate::util::temp_dir();
    let d = dir.path().display().to_string();
    let g = TestGateway::start_with(dir, &|listen, admin| {
        format!(
            r#"
listen: {listen}
admin_listen: {admin}
trusted_proxies: [127.0.0.1/32]
portal: {{ url: "https://auth.test", rp_name: Test }}
secrets: {{ cookie_keys: ["{d}/cookie.key"] }}
store: {{ sqlite: {{ path: "{d}/stepgate.db" }} }}
users:
  alice: {{ name: Alice, email: alice@test, groups: [admins] }}
upstreams: {{ demo: "builtin:whoami" }}
rules:
  - name: pin
    hosts: [app.test]
    paths: [/admin, /admin/**]
    upstream: demo
    policy: passkey
    step_up: {{ max_age: 5m, scope: rule }}
  - {{ name: app, hosts: [app.test], upstream: demo, policy: passkey }}
"#
        )
    });
    let mut b = NetBrowser {
        addr: g.addr,
        jar: HashMap::new(),
    };
    // Not signed in: to the portal.
    let r = b.get("https://app.test/inbox?x=1");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://auth.test/.stepgate/login?rd=https%3A%2F%2Fapp%2Etest%2Finbox%3Fx%3D1")
    );
    let mut key = SoftPasskey::new(true);
    b.enroll_by_invite(&g, &mut key);
    // Sign in for the app; the callback sets the host-only app cookie.
    let landed = b.sign_in(&mut key, "https://app.test/inbox?x=1");
    assert_eq!(landed, "https://app.test/inbox?x=1");
    assert!(
        b.jar
            .get("app.test")
            .is_some_and(|j| j.contains_key("__Host-stepgate_app"))
    );
    let r = b.get("https://app.test/inbox?x=1");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("remote-user"), vec!["alice"]);
    assert_eq!(r.echoed("remote-email"), vec!["alice@test"]);
    assert_eq!(r.echoed("stepgate-rule"), vec!["app"]);
    assert_eq!(r.echoed("x-forwarded-proto"), vec!["https"]);
    assert!(
        r.echoed("cookie").iter().all(|c| !c.contains("stepgate")),
        "our cookie never reaches the app: {}",
        r.body
    );
    // The step-up rule wants its own ceremony.
    let r = b.get("https://app.test/admin/users");
    assert_eq!(r.status, 302, "{r:?}");
    let landed = b.sign_in(&mut key, "https://app.test/admin/users");
    assert_eq!(landed, "https://app.test/admin/users");
    let r = b.get("https://app.test/admin/users");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("stepgate-rule"), vec!["pin"]);
    let at: i64 = r
        .echoed("stepgate-verified-at")
        .first()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((g.now() - at).abs() <= 5, "verified just now: {at}");
    // Five minutes later the step-up has expired; the app itself still opens.
    g.clock.advance(301);
    assert_eq!(b.get("https://app.test/admin/users").status, 302);
    assert_eq!(b.get("https://app.test/inbox").status, 200);
    // A new ceremony opens it again.
    b.sign_in(&mut key, "https://app.test/admin/users");
    assert_eq!(b.get("https://app.test/admin/users").status, 200);
}
