//! A real browser through the whole flow: headless Chromium (from the distro,
//! never downloaded) driven over the DevTools protocol with its WebAuthn
//! virtual authenticator, against a real stepgate server on 127.0.0.1.
//!
//! Invite URL → enroll → protected page on `builtin:whoami` showing
//! `Remote-User: alice`; then with `isUserVerified: false` no access; then
//! with the page's call swapped to `userVerification: "discouraged"` (the
//! browser then sends UV=0) the server still refuses. Screenshots of the
//! account and login pages go to `target/test-artifacts/`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::kit::{TestConfig, TestGateway, temp_dir};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium with a fresh profile and a DevTools websocket; killed on drop.
struct Chromium {
    child: Child,
    ws_url: String,
    _profile: tempfile::TempDir,
}

impl Chromium {
    fn launch() -> Chromium {
        if !std::path::Path::new(CHROMIUM).exists() {
            panic!("{CHROMIUM} not found: apt-get install chromium");
        }
        let profile = temp_dir();
        let mut child = match Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=412,915",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!("cannot start {CHROMIUM}: {e}"),
        };
        let Some(stderr) = child.stderr.take() else {
            panic!("no stderr from chromium")
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("ws://") {
                    let _ = tx.send(line[i..].trim().to_string());
                }
            }
        });
        let ws_url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                panic!("chromium did not print its DevTools address within 60 s")
            }
        };
        Chromium {
            child,
            ws_url,
            _profile: profile,
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A minimal DevTools protocol client on one page session.
struct Cdp {
    ws: Ws,
    next: u64,
    session: Option<String>,
}

impl Cdp {
    async fn connect(url: &str) -> Cdp {
        let (ws, _) = match tokio_tungstenite::connect_async(url).await {
            Ok(x) => x,
            Err(e) => panic!("DevTools websocket: {e}"),
        };
        Cdp {
            ws,
            next: 1,
            session: None,
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        match self.try_call(method, params).await {
            Ok(v) => v,
            Err(e) => panic!("{method}: {e}"),
        }
    }

    async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next;
        self.next += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = s.clone().into();
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = tokio::time::timeout(left, self.ws.next())
                .await
                .map_err(|_| "no answer within 60 s".to_string())?;
            let Some(Ok(Message::Text(text))) = next else {
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
            if v["id"].as_u64() == Some(id) {
                if !v["error"].is_null() {
                    return Err(v["error"].to_string());
                }
                return Ok(v["result"].clone());
            }
        }
    }

    /// A new page (tab) with the WebAuthn domain on and a UV-capable virtual
    /// authenticator; returns the session and the authenticator's id.
    async fn page_with_authenticator(chrome: &Chromium) -> (Cdp, Value) {
        let mut cdp = Cdp::connect(&chrome.ws_url).await;
        let target = cdp
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = cdp
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        cdp.session = attached["sessionId"].as_str().map(String::from);
        cdp.call("Page.enable", json!({})).await;
        cdp.call("Runtime.enable", json!({})).await;
        cdp.call("Network.enable", json!({})).await;
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 412, "height": 915, "deviceScaleFactor": 1, "mobile": true}),
        )
        .await;
        cdp.call("WebAuthn.enable", json!({"enableUI": false}))
            .await;
        let added = cdp
            .call(
                "WebAuthn.addVirtualAuthenticator",
                json!({"options": {
                    "protocol": "ctap2", "transport": "internal",
                    "hasResidentKey": true, "hasUserVerification": true,
                    "isUserVerified": true, "automaticPresenceSimulation": true
                }}),
            )
            .await;
        let auth_id = added["authenticatorId"].clone();
        // The virtual authenticator answers a conditional-UI request by itself
        // (a person would have to pick the passkey from the autofill list):
        // turn that path off so each ceremony here is one the test started.
        cdp.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": "if (window.PublicKeyCredential) { PublicKeyCredential.isConditionalMediationAvailable = async () => false; }"}),
        )
        .await;
        (cdp, auth_id)
    }

    /// How many assertions the virtual authenticator has signed so far.
    async fn sign_count(&mut self, auth_id: &Value) -> u64 {
        let creds = self
            .call(
                "WebAuthn.getCredentials",
                json!({"authenticatorId": auth_id}),
            )
            .await;
        creds["credentials"].as_array().map_or(0, |a| {
            a.iter().filter_map(|c| c["signCount"].as_u64()).sum()
        })
    }

    /// Evaluate an expression in the page (promises awaited), by value.
    async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Poll `expr` until it is `true`; on timeout fail with `what` and the page state.
    async fn wait_for(&mut self, expr: &str, secs: u64, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            // A page navigating away answers with an error: not yet.
            let r = self
                .try_call(
                    "Runtime.evaluate",
                    json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
                )
                .await;
            if r.is_ok_and(|v| v["result"]["value"] == Value::Bool(true)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let state = self
            .eval("location.href + ' | status: ' + ((document.getElementById('status')||{}).textContent||'') + ' | body: ' + (document.body ? document.body.innerText.slice(0, 400) : '')")
            .await;
        panic!("timed out waiting for {what}: {state}");
    }

    async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.wait_for("document.readyState === 'complete'", 20, "page load")
            .await;
    }

    async fn screenshot(&mut self, name: &str) -> PathBuf {
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or(""))
            .unwrap_or_default();
        assert!(png.len() > 1000, "screenshot {name} is empty");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, png) {
            panic!("write {}: {e}", path.display());
        }
        path
    }

    /// Names of the cookies the browser holds for `url`.
    async fn cookie_names(&mut self, url: &str) -> Vec<String> {
        let r = self
            .call("Network.getCookies", json!({"urls": [url]}))
            .await;
        r["cookies"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The rules of the first test: one app.
const ONE_APP: &str =
    "  - { name: app, hosts: [app.localhost], upstream: demo, policy: passkey }\n";

/// A stepgate server whose portal is `http://auth.localhost:PORT` (Chromium
/// resolves `*.localhost` to loopback), with `rules`.
fn start_server(rules: &str) -> TestGateway {
    TestGateway::start(
        TestConfig::new()
            .portal_on_listen_port("http://auth.localhost")
            .body(&format!(
                "users:\n  alice: {{ name: Alice, email: alice@home.lab, groups: [admins] }}\nupstreams: {{ demo: \"builtin:whoami\" }}\nrules:\n{rules}"
            )),
    )
}

#[test]
fn chromium_enrolls_signs_in_and_uv_is_enforced() {
    let srv = start_server(ONE_APP);
    let port = srv.addr.port();
    let portal = format!("http://auth.localhost:{port}");
    let app = format!("http://app.localhost:{port}/hello");
    let invite = crate::kit::tokio_rt()
        .block_on(stepgate::portal::bootstrap(&srv.gw))
        .ok()
        .flatten();
    let invite = invite.unwrap_or_else(|| panic!("no bootstrap invite"));
    assert!(invite.starts_with(&format!("{portal}/.stepgate/enroll?token=")));

    let chrome = Chromium::launch();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("runtime: {e}"),
    };
    rt.block_on(async {
        let (mut cdp, auth_id) = Cdp::page_with_authenticator(&chrome).await;

        // 1. Enroll from the invite link (registering is no PIN check: the page says so).
        cdp.navigate(&invite).await;
        let page = cdp.eval("document.body.innerText").await;
        assert!(
            page.as_str().unwrap_or("").contains("now confirm with your passkey"),
            "{page}"
        );
        cdp.eval("document.getElementById('label').value = 'laptop'; document.getElementById('enroll').requestSubmit(); true")
            .await;
        cdp.wait_for(
            "location.pathname === '/.stepgate/account' && document.readyState === 'complete'",
            30,
            "the account page after enrolling",
        )
        .await;
        let text = cdp.eval("document.body.innerText").await;
        let text = text.as_str().unwrap_or("");
        assert!(text.contains("laptop") && text.contains("alice"), "{text}");
        let creds = cdp
            .call("WebAuthn.getCredentials", json!({"authenticatorId": auth_id}))
            .await;
        assert_eq!(creds["credentials"].as_array().map(Vec::len), Some(1));
        cdp.screenshot("account.png").await;

        // 2. Registering signed the browser in: the app opens with no ceremony.
        cdp.navigate(&app).await;
        cdp.wait_for(
            &format!("location.href === '{app}' && /remote-user: alice/i.test(document.body.innerText)"),
            30,
            "the app right after enrolling",
        )
        .await;
        // Without cookies, the protected app sends the browser to the portal; sign in; whoami.
        cdp.call("Network.clearBrowserCookies", json!({})).await;
        cdp.navigate(&app).await;
        cdp.wait_for(
            "location.pathname === '/.stepgate/login'",
            10,
            "the login page",
        )
        .await;
        cdp.screenshot("login.png").await;
        cdp.eval("document.getElementById('signin').click(); true").await;
        cdp.wait_for(
            &format!("location.href === '{app}' && document.body && /remote-user: alice/i.test(document.body.innerText)"),
            30,
            "whoami with Remote-User: alice",
        )
        .await;
        let body = cdp.eval("document.body.innerText").await;
        let body = body.as_str().unwrap_or("").to_ascii_lowercase();
        assert!(body.contains("remote-user: alice"), "{body}");
        assert!(body.contains("stepgate-rule: app"), "{body}");
        assert!(cdp.cookie_names(&app).await.contains(&"stepgate_app".to_string()));

        // 3. An authenticator that does not verify the user: no access.
        cdp.call("Network.clearBrowserCookies", json!({})).await;
        cdp.call(
            "WebAuthn.setUserVerified",
            json!({"authenticatorId": auth_id, "isUserVerified": false}),
        )
        .await;
        cdp.navigate(&app).await;
        cdp.wait_for("location.pathname === '/.stepgate/login'", 10, "the login page")
            .await;
        cdp.eval("document.getElementById('signin').click(); true").await;
        cdp.wait_for(
            "document.getElementById('status').className === 'error'",
            150,
            "an error after a ceremony without UV",
        )
        .await;
        assert!(!cdp.cookie_names(&app).await.contains(&"stepgate_app".to_string()));
        let href = cdp.eval("location.pathname").await;
        assert_eq!(href, "/.stepgate/login");

        // 4. The page's call swapped to ask for `discouraged`: the browser
        //    sends UV=0 and the server refuses it.
        let swapped = "(() => { const get = navigator.credentials.get.bind(navigator.credentials); \
            navigator.credentials.get = (o) => { o.publicKey.userVerification = 'discouraged'; return get(o); }; \
            document.getElementById('status').textContent = ''; document.getElementById('status').className = ''; \
            document.getElementById('signin').click(); return true; })()";
        cdp.eval(swapped).await;
        cdp.wait_for(
            "document.getElementById('status').className === 'error'",
            30,
            "the server's refusal of UV=0",
        )
        .await;
        let status = cdp.eval("document.getElementById('status').textContent").await;
        let status = status.as_str().unwrap_or("");
        assert!(status.contains("must ask for your PIN or fingerprint"), "{status}");
        assert!(!cdp.cookie_names(&app).await.contains(&"stepgate_app".to_string()));
        cdp.screenshot("login-uv-refused.png").await;
    });
}

/// Two app hosts, a `scope: rule` step-up and a `scope: session` step-up.
const TWO_APPS: &str = "  - { name: app, hosts: [app.localhost], upstream: demo, policy: passkey }
  - name: photos-admin
    hosts: [photos.localhost]
    paths: [/admin, /admin/**]
    upstream: demo
    policy: passkey
    step_up: { max_age: 5m, scope: rule }
  - name: photos-recent
    hosts: [photos.localhost]
    paths: [/recent/**]
    upstream: demo
    policy: passkey
    step_up: { max_age: 1m, scope: session }
  - { name: photos, hosts: [photos.localhost], upstream: demo, policy: passkey }
";

/// Sign in once: a ceremony at one app opens a second app with no WebAuthn
/// call at all (the virtual authenticator's sign count does not move), a
/// `scope: rule` step-up there still asks, a `scope: session` one opens
/// silently while the last assertion is young and asks once it is not, and
/// signing out at the portal ends both app sessions.
#[test]
fn chromium_signs_in_once_and_step_up_still_asks() {
    let srv = start_server(TWO_APPS);
    let port = srv.addr.port();
    let portal = format!("http://auth.localhost:{port}");
    let app = format!("http://app.localhost:{port}/");
    let photos = format!("http://photos.localhost:{port}/albums");
    let admin = format!("http://photos.localhost:{port}/admin");
    let recent = format!("http://photos.localhost:{port}/recent/today");
    let invite = crate::kit::tokio_rt()
        .block_on(stepgate::portal::bootstrap(&srv.gw))
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no bootstrap invite"));
    let chrome = Chromium::launch();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("runtime: {e}"),
    };
    rt.block_on(async {
        let (mut cdp, auth_id) = Cdp::page_with_authenticator(&chrome).await;
        let shows = |url: &str, rule: &str| {
            format!(
                "location.href === '{url}' && document.body && /stepgate-rule: {rule}\\n/i.test(document.body.innerText + '\\n')"
            )
        };
        let on_login = "location.pathname === '/.stepgate/login' && !!document.getElementById('signin')";
        // Enroll, then start from a ceremony at the first app.
        cdp.navigate(&invite).await;
        cdp.eval("document.getElementById('label').value = 'laptop'; document.getElementById('enroll').requestSubmit(); true")
            .await;
        cdp.wait_for("location.pathname === '/.stepgate/account'", 30, "the account page")
            .await;
        cdp.call("Network.clearBrowserCookies", json!({})).await;
        cdp.navigate(&app).await;
        cdp.wait_for(on_login, 10, "the login page").await;
        cdp.eval("document.getElementById('signin').click(); true").await;
        cdp.wait_for(&shows(&app, "app"), 30, "the first app").await;
        let after_sign_in = cdp.sign_count(&auth_id).await;
        assert!(after_sign_in >= 1);

        // The second app: no ceremony at all.
        cdp.navigate(&photos).await;
        cdp.wait_for(&shows(&photos, "photos"), 30, "the second app, silently").await;
        assert_eq!(cdp.sign_count(&auth_id).await, after_sign_in, "a WebAuthn call was made");
        cdp.screenshot("second-app-silent.png").await;

        // A `scope: session` step-up opens while the sign-in assertion is young.
        cdp.navigate(&recent).await;
        cdp.wait_for(&shows(&recent, "photos-recent"), 30, "the young-session step-up").await;
        assert_eq!(cdp.sign_count(&auth_id).await, after_sign_in);

        // A `scope: rule` step-up asks.
        cdp.navigate(&admin).await;
        cdp.wait_for(on_login, 10, "the login page for the step-up").await;
        cdp.screenshot("step-up-asks.png").await;
        cdp.eval("document.getElementById('signin').click(); true").await;
        cdp.wait_for(&shows(&admin, "photos-admin"), 30, "the step-up rule").await;
        assert_eq!(cdp.sign_count(&auth_id).await, after_sign_in + 1);

        // A minute later the `scope: session` rule asks again.
        srv.clock.advance(90);
        cdp.navigate(&recent).await;
        cdp.wait_for(on_login, 10, "the login page once the assertion is old").await;

        // Signing out at the portal ends both app sessions.
        cdp.navigate(&format!("{portal}/.stepgate/logout")).await;
        cdp.eval("document.querySelector('form button').click(); true").await;
        cdp.wait_for("/signed out/i.test(document.body.innerText)", 10, "the signed-out page")
            .await;
        for url in [&app, &photos] {
            cdp.navigate(url).await;
            cdp.wait_for(on_login, 10, "the login page after signing out").await;
        }
    });
}

#[path = "browser_tokens.rs"]
mod tokens;
