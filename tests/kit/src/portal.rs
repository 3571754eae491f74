//! The portal tests' harness: a gateway on a real store in a temp dir
//! ([`Harness`], optionally served over HTTP), and a browser that calls
//! `portal::handle` in-process ([`Browser`]: a cookie jar per host, `Origin`
//! on POSTs), with the ceremonies it runs through the
//! [`super::authenticator`] driver.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;
use stepgate::clock::Clock;
use stepgate::gateway::Gateway;
use stepgate::model::{Invite, new_secret, token_hash};
use stepgate::reply::Reply;
use stepgate::request::Facts;
use webauthn_authenticator_rs::AuthenticatorBackendHashedClientData;

use super::authenticator::{assertion, registration};
use super::clock::OffsetClock;
use super::config::TestConfig;
use super::gateway::{build, spawn_server};
use super::http::{Response, raw_request};
use super::{free_port, remember, wait_for_port};

pub use super::authenticator::{Client, PORTAL, create, get};

/// The portal tests' sections after `authenticators`: four users (one that
/// expires in an hour), rate limits `rate` (per IP, per user), and rules for
/// a plain app, a model-bound step-up, a device-bound step-up, an admins-only
/// host and a session-scoped step-up.
pub fn portal_body(authenticators: &str, rate: (u32, u32)) -> String {
    format!(
        r#"users:
  alice: {{ name: Alice, groups: [admins] }}
  bob: {{ name: Bob }}
  carol: {{ name: Carol }}
  temp: {{ name: Temporary, expires: "{temp_expires}" }}
{authenticators}
rate_limit: {{ per_ip_per_minute: {ip}, per_user_per_minute: {user} }}
upstreams: {{ demo: "builtin:whoami" }}
rules:
  - {{ name: app, hosts: [app.test], upstream: demo, policy: passkey }}
  - name: admin
    hosts: [admin.test]
    upstream: demo
    policy: passkey
    step_up: {{ max_age: 5m, scope: rule, authenticators: [softkey] }}
  - name: bound
    hosts: [bound.test]
    upstream: demo
    policy: passkey
    step_up: {{ max_age: 5m, device_bound: true }}
  - {{ name: admins-only, hosts: [ops.test], upstream: demo, policy: passkey, allow: [group:admins] }}
  - name: sess
    hosts: [sess.test]
    upstream: demo
    policy: passkey
    step_up: {{ max_age: 5m, scope: session }}
"#,
        temp_expires = in_one_hour(),
        ip = rate.0,
        user = rate.1,
    )
}

/// `config` with the portal at [`PORTAL`] and the portal tests' sections.
pub fn portal_config(config: TestConfig, authenticators: &str, rate: (u32, u32)) -> TestConfig {
    config
        .portal(PORTAL)
        .body(&portal_body(authenticators, rate))
}

/// The AAGUID of webauthn-authenticator-rs's SoftToken.
pub const SOFTTOKEN_AAGUID: &str = "0fb9bcbc-a0d4-4042-bbb0-559bc1631e28";

/// `authenticators:` listing the SoftToken model with `ca` as its root.
pub fn softkey_set(ca: &Path) -> String {
    format!(
        "authenticators:\n  softkey:\n    aaguids: [{SOFTTOKEN_AAGUID}]\n    ca_files: [\"{}\"]\n",
        ca.display()
    )
}

pub struct Harness {
    /// Stopped first when the harness is dropped (fields drop in order).
    _server: Option<stepgate::server::ServerHandle>,
    /// Where the gateway serves HTTP (pingora), for a harness made by [`Harness::serving`].
    pub addr: Option<std::net::SocketAddr>,
    pub gw: Arc<Gateway>,
    pub clock: Arc<OffsetClock>,
    pub dir: tempfile::TempDir,
    /// The config text the gateway was built from.
    pub yaml: String,
}

impl Harness {
    /// A harness whose `softkey` set trusts an unrelated test CA.
    pub async fn new() -> Harness {
        Self::with(unrelated_softkey_set, (1000, 1000)).await
    }

    /// A harness on a Redis store at `url`.
    pub async fn on_redis(url: &str) -> Harness {
        let config = TestConfig::new().redis(url, "portaltest:");
        let section = unrelated_softkey_set(config.dir());
        Self::built(portal_config(config, &section, (1000, 1000))).await
    }

    /// `authenticators` gets the temp dir (to write CA files into) and returns the YAML section.
    pub async fn with(authenticators: impl FnOnce(&Path) -> String, rate: (u32, u32)) -> Harness {
        let config = TestConfig::new();
        let section = authenticators(config.dir());
        Self::built(portal_config(config, &section, rate)).await
    }

    /// A harness whose gateway also serves HTTP with pingora on a free
    /// 127.0.0.1 port, trusting 127.0.0.1's `X-Forwarded-Proto` (as behind a
    /// TLS front), so [`Harness::fetch`] reaches the app hosts as a browser
    /// would. `config` says the store and cookie key (to share them with
    /// another instance); `authenticators` is its `authenticators:` section.
    pub async fn serving(config: TestConfig, authenticators: &str) -> Harness {
        let config = portal_config(config.trusting_loopback(), authenticators, (1000, 1000));
        for _attempt in 0..5 {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let yaml = config.yaml(addr, None);
            let built = build(&yaml).await;
            if let Some(handle) = spawn_server(&built.gw) {
                wait_for_port(addr);
                return Harness {
                    _server: Some(handle),
                    addr: Some(addr),
                    gw: built.gw,
                    clock: built.clock,
                    dir: config.into_dir(),
                    yaml,
                };
            }
        }
        panic!("could not serve on a free port");
    }

    /// `GET https://{host}{path}` through the served gateway (a browser
    /// navigation, with `cookie` as its `Cookie` header).
    pub fn fetch(&self, host: &str, path: &str, cookie: &str) -> Response {
        let Some(addr) = self.addr else {
            panic!("this harness does not serve HTTP (use Harness::serving)")
        };
        let mut req = format!(
            "GET {path} HTTP/1.1\nHost: {host}\nX-Forwarded-Proto: https\nAccept: text/html\nConnection: close\n"
        );
        if !cookie.is_empty() {
            req.push_str(&format!("Cookie: {cookie}\n"));
        }
        req.push('\n');
        raw_request(addr, &req)
    }

    /// A harness on `config`, not serving HTTP (requests go to `portal::handle`).
    async fn built(config: TestConfig) -> Harness {
        let yaml = config.yaml(([127, 0, 0, 1], 0).into(), None);
        let built = build(&yaml).await;
        Harness {
            gw: built.gw,
            clock: built.clock,
            dir: config.into_dir(),
            yaml,
            addr: None,
            _server: None,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The store key of a signed session cookie value (portal or app).
    pub fn hash_of(&self, cookie_value: &str) -> String {
        use stepgate::session::cookie::CookieKind;
        let snapshot = self.gw.snapshot();
        let keys = &snapshot.keys;
        for kind in [CookieKind::Portal, CookieKind::App] {
            if let Some(t) = keys.open(kind, cookie_value) {
                return token_hash(&t);
            }
        }
        panic!("not a signed session cookie")
    }

    /// An invite token for `user` (what `stepgate invite` prints in its URL).
    pub async fn invite(&self, user: &str, credential_ttl: Option<u64>) -> String {
        let token = new_secret();
        let invite = Invite {
            user: user.into(),
            credential_ttl,
            expires_at: self.now() + 3600,
        };
        if let Err(e) = self.gw.store.add_invite(&token_hash(&token), &invite).await {
            panic!("add_invite: {e}");
        }
        token
    }

    /// The CSRF token of `b`'s portal session (what the account page's forms carry).
    pub fn csrf(&self, b: &Browser) -> String {
        let portal = b
            .cookie("auth.test", "__Host-stepgate_portal")
            .unwrap_or_default();
        stepgate::portal::guard::csrf_token(&self.hash_of(&portal))
    }

    /// The id of `user`'s credential labelled `label` ("" when there is none).
    pub async fn credential_id(&self, user: &str, label: &str) -> String {
        let creds = self
            .gw
            .store
            .credentials(Some(user))
            .await
            .unwrap_or_default();
        creds
            .iter()
            .find(|c| c.label == label)
            .map(|c| c.id.clone())
            .unwrap_or_default()
    }

    pub fn browser(&self) -> Browser {
        Browser {
            gw: self.gw.clone(),
            jar: HashMap::new(),
            origin: Some(PORTAL.into()),
        }
    }
}

/// A browser: one cookie jar per host.
pub struct Browser {
    gw: Arc<Gateway>,
    pub jar: HashMap<String, HashMap<String, String>>,
    /// The `Origin` header sent on POSTs (`None`: none).
    pub origin: Option<String>,
}

impl Browser {
    pub async fn request(&mut self, method: &str, url: &str, body: &[u8], ct: &str) -> Reply {
        let u = match url::Url::parse(url) {
            Ok(u) => u,
            Err(e) => panic!("bad test url {url}: {e}"),
        };
        let host = u.host_str().unwrap_or("").to_string();
        let mut headers = HeaderMap::new();
        if let Some(jar) = self.jar.get(&host) {
            let c: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if !c.is_empty() {
                headers.insert("cookie", hv(&c.join("; ")));
            }
        }
        headers.insert("accept", hv("text/html,application/json"));
        if method == "POST" {
            headers.insert("content-type", hv(ct));
            if let Some(o) = &self.origin {
                headers.insert("origin", hv(o));
            }
        }
        let facts = Facts {
            method: http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::GET),
            host: host.clone(),
            port: u.port(),
            path: u.path().into(),
            query: u.query().map(String::from),
            https: u.scheme() == "https",
            client_ip: "127.0.0.1"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
            headers,
        };
        let snapshot = self.gw.snapshot();
        let body = Bytes::copy_from_slice(body);
        let reply = stepgate::portal::handle(&self.gw, &snapshot, &facts, body).await;
        let jar = self.jar.entry(host).or_default();
        for (_, v) in reply
            .headers
            .iter()
            .filter(|(k, _)| k == http::header::SET_COOKIE)
        {
            remember(jar, v.to_str().unwrap_or(""));
        }
        reply
    }

    pub async fn get(&mut self, url: &str) -> Reply {
        self.request("GET", url, b"", "").await
    }

    pub async fn post_form(&mut self, url: &str, fields: &[(&str, &str)]) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.request(
            "POST",
            url,
            body.as_bytes(),
            "application/x-www-form-urlencoded",
        )
        .await
    }

    /// POST JSON to `/.stepgate/api/{path}` on the portal.
    pub async fn api(&mut self, path: &str, body: &Value) -> (StatusCode, Value) {
        let url = format!("{PORTAL}/.stepgate/api/{path}");
        let r = self
            .request(
                "POST",
                &url,
                body.to_string().as_bytes(),
                "application/json",
            )
            .await;
        let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    }

    pub fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.jar.get(host).and_then(|j| j.get(name)).cloned()
    }

    /// The `Cookie` header this browser sends to `host` ("" when none).
    pub fn cookie_header(&self, host: &str) -> String {
        self.jar.get(host).map_or_else(String::new, |j| {
            j.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

fn hv(s: &str) -> HeaderValue {
    match HeaderValue::from_str(s) {
        Ok(v) => v,
        Err(e) => panic!("header value {s:?}: {e}"),
    }
}

pub fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.as_str() == name)
        .and_then(|(_, v)| v.to_str().ok())
}

pub fn body_text(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Enroll through the API; returns the finish status and body.
pub async fn enroll(
    b: &mut Browser,
    auth: &mut impl AuthenticatorBackendHashedClientData,
    token: &str,
    label: &str,
    c: &Client,
) -> (StatusCode, Value) {
    let (s, begun) = b
        .api(
            "enroll/begin",
            &serde_json::json!({"token": token, "label": label}),
        )
        .await;
    if s != StatusCode::OK {
        return (s, begun);
    }
    b.api("enroll/finish", &registration(auth, &begun, c)).await
}

impl Browser {
    /// What an app host does before sending this browser to the portal for
    /// `rd`: keep a browser-state cookie on the app host (made if missing)
    /// and return the binding the login URL carries. `None` for portal URLs.
    pub fn app_binding(&mut self, rd: &str) -> Option<String> {
        use stepgate::session::cookie::state_name;
        let u = url::Url::parse(rd).ok()?;
        let host = u.host_str()?.to_string();
        if format!("https://{host}") == PORTAL {
            return None;
        }
        let secure = u.scheme() == "https";
        let jar = self.jar.entry(host).or_default();
        let state = jar
            .entry(state_name(secure).to_string())
            .or_insert_with(new_secret)
            .clone();
        let origin = u.origin().ascii_serialization();
        Some(self.gw.snapshot().keys.browser_binding(&state, &origin))
    }
}

impl Browser {
    /// The portal's login page for `rd` as an app host links to it (with its binding).
    pub async fn login_page(&mut self, rd: &str) -> Reply {
        let mut url = format!(
            "{PORTAL}/.stepgate/login?rd={}",
            url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
        );
        if let Some(b) = self.app_binding(rd) {
            url.push_str("&state=");
            url.push_str(&b);
        }
        self.get(&url).await
    }
}

/// Begin a sign-in the way the login page does after an app host sent the
/// browser there (with the app host's browser binding); returns (status, body).
pub async fn login_begin(b: &mut Browser, rd: &str, username: Option<&str>) -> (StatusCode, Value) {
    let state = b.app_binding(rd);
    b.api(
        "login/begin",
        &serde_json::json!({"rd": rd, "state": state, "username": username}),
    )
    .await
}

/// Finish a sign-in with `credential`.
pub async fn login_finish(
    b: &mut Browser,
    ceremony: &Value,
    credential: &Value,
) -> (StatusCode, Value) {
    b.api(
        "login/finish",
        &serde_json::json!({"ceremony": ceremony, "credential": credential}),
    )
    .await
}

/// A whole sign-in with user name; returns the finish answer.
pub async fn login(
    b: &mut Browser,
    auth: &mut impl AuthenticatorBackendHashedClientData,
    rd: &str,
    username: Option<&str>,
    c: &Client,
) -> (StatusCode, Value) {
    let (s, begun) = login_begin(b, rd, username).await;
    if s != StatusCode::OK {
        return (s, begun);
    }
    b.api("login/finish", &assertion(auth, &begun, c)).await
}

/// Write a certificate as PEM.
pub fn write_pem(path: &std::path::Path, cert: &crypto_glue::x509::Certificate) {
    use crypto_glue::traits::{EncodePem, LineEndingPem};
    let pem = cert
        .to_pem(LineEndingPem::LF)
        .unwrap_or_else(|e| panic!("pem: {e}"));
    if let Err(e) = std::fs::write(path, pem) {
        panic!("write {}: {e}", path.display());
    }
}

/// A `softkey` set whose root no test authenticator chains to.
pub fn unrelated_softkey_set(dir: &Path) -> String {
    let (_t, ca) = match webauthn_authenticator_rs::softtoken::SoftToken::new(true) {
        Ok(x) => x,
        Err(e) => panic!("{e:?}"),
    };
    let path = dir.join("unrelated-ca.pem");
    write_pem(&path, &ca);
    softkey_set(&path)
}

/// RFC 3339 time one hour from now (for a user that expires during a test).
pub fn in_one_hour() -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
