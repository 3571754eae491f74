//! Helpers for the portal tests: a gateway on a real SQLite store in a temp
//! dir, a browser-like client that calls `portal::handle` in-process (cookie
//! jar per host, `Origin` on POSTs), and a software-authenticator driver that
//! writes `clientDataJSON` itself so tests control origin, `crossOrigin`,
//! `topOrigin` and the UV request.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::util::clock::OffsetClock;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use stepgate::gateway::{Clock, Facts, Gateway, Reply};
use stepgate::session::{Invite, new_token, token_hash};
use webauthn_authenticator_rs::AuthenticatorBackendHashedClientData;
use webauthn_rs_core::proto::{
    PublicKeyCredentialCreationOptions, PublicKeyCredentialRequestOptions,
};

pub const PORTAL: &str = "https://auth.test";

/// A config with a portal at `https://auth.test`; `extra` is appended (more
/// `authenticators:` etc.), `rules` replaces the default rules.
pub fn config_yaml(db: &Path, authenticators: &str, rate: (u32, u32)) -> String {
    config_yaml_store(
        db,
        &format!("sqlite: {{ path: \"{}\" }}", db.display()),
        authenticators,
        rate,
    )
}

/// [`config_yaml`] with another `store:` body (e.g. `redis: { url: … }`).
pub fn config_yaml_store(db: &Path, store: &str, authenticators: &str, rate: (u32, u32)) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
portal: {{ url: "{PORTAL}", rp_name: Test }}
secrets: {{ cookie_keys: ["{keys}"] }}
store: {{ {store} }}
users:
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
        keys = db.with_file_name("cookie.key").display(),
        ip = rate.0,
        user = rate.1,
    )
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
    server: Option<stepgate::server::ServerHandle>,
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
        let dir = crate::util::temp_dir();
        crate::gateway_util::write_key(&dir);
        let section = unrelated_softkey_set(dir.path());
        let store = format!("redis: {{ url: \"{url}\", prefix: \"portaltest:\" }}");
        let yaml = config_yaml_store(
            &dir.path().join("stepgate.db"),
            &store,
            &section,
            (1000, 1000),
        );
        Self::from_yaml(dir, &yaml).await
    }

    /// `authenticators` gets the temp dir (to write CA files into) and returns the YAML section.
    pub async fn with(authenticators: impl FnOnce(&Path) -> String, rate: (u32, u32)) -> Harness {
        let dir = crate::util::temp_dir();
        crate::gateway_util::write_key(&dir);
        let section = authenticators(dir.path());
        let yaml = config_yaml(&dir.path().join("stepgate.db"), &section, rate);
        Self::from_yaml(dir, &yaml).await
    }

    /// A harness whose gateway also serves HTTP with pingora on a free
    /// 127.0.0.1 port, trusting 127.0.0.1's `X-Forwarded-Proto` (as behind a
    /// TLS front), so [`Harness::fetch`] reaches the app hosts as a browser
    /// would. `dir` may already hold `cookie.key` (to share it with another
    /// instance); `store` is a `store:` body (default: SQLite in `dir`).
    pub async fn serving(
        dir: tempfile::TempDir,
        authenticators: &str,
        store: Option<&str>,
    ) -> Harness {
        if !dir.path().join("cookie.key").exists() {
            crate::gateway_util::write_key(&dir);
        }
        let db = dir.path().join("stepgate.db");
        let store = store.map_or_else(
            || format!("sqlite: {{ path: \"{}\" }}", db.display()),
            str::to_string,
        );
        let section = format!("{authenticators}\ntrusted_proxies: [127.0.0.1/32]\n");
        let mut dir = dir;
        for _attempt in 0..5 {
            let addr: std::net::SocketAddr = ([127, 0, 0, 1], crate::util::free_port()).into();
            let yaml = config_yaml_store(&db, &store, &section, (1000, 1000))
                .replace("listen: 127.0.0.1:0", &format!("listen: {addr}"));
            let mut h = Self::from_yaml(dir, &yaml).await;
            let opts = stepgate::server::ServeOptions {
                threads: 1,
                grace_period: std::time::Duration::from_secs(0),
                ..stepgate::server::ServeOptions::default()
            };
            match stepgate::server::spawn(h.gw.clone(), opts) {
                Ok(handle) => {
                    crate::gateway_util::wait_for_port(addr);
                    h.addr = Some(addr);
                    h.server = Some(handle);
                    return h;
                }
                Err(stepgate::server::ServeError::Bind { .. }) => dir = h.dir,
                Err(e) => panic!("server: {e}"),
            }
        }
        panic!("could not serve on a free port");
    }

    /// `GET https://{host}{path}` through the served gateway (a browser
    /// navigation, with `cookie` as its `Cookie` header).
    pub fn fetch(&self, host: &str, path: &str, cookie: &str) -> crate::gateway_util::Response {
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
        crate::gateway_util::raw_request(addr, &req)
    }

    async fn from_yaml(dir: tempfile::TempDir, yaml: &str) -> Harness {
        let runtime = match stepgate::config::check_str("test.yaml", yaml, 0) {
            Ok(c) => c.runtime,
            Err(e) => panic!("test config: {e}"),
        };
        let clock = Arc::new(OffsetClock::default());
        let store = match stepgate::store::open(&runtime.store, clock.clone()) {
            Ok(s) => s,
            Err(e) => panic!("store: {e}"),
        };
        let gw = match Gateway::build(runtime, store, clock.clone()).await {
            Ok(g) => g,
            Err(e) => panic!("gateway: {e}"),
        };
        Harness {
            gw: Arc::new(gw),
            clock,
            dir,
            yaml: yaml.to_string(),
            addr: None,
            server: None,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The store key of a signed session cookie value (portal or app).
    pub fn hash_of(&self, cookie_value: &str) -> String {
        use stepgate::session::cookie::CookieKind;
        let keys = self.gw.cookie_keys.load();
        for kind in [CookieKind::Portal, CookieKind::App] {
            if let Some(t) = keys.open(kind, cookie_value) {
                return token_hash(&t);
            }
        }
        panic!("not a signed session cookie")
    }

    /// An invite token for `user` (what `stepgate invite` prints in its URL).
    pub async fn invite(&self, user: &str, credential_ttl: Option<u64>) -> String {
        let token = new_token();
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
            method: method.into(),
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
        let reply = stepgate::portal::handle(&self.gw, &facts, Bytes::copy_from_slice(body)).await;
        for (name, value) in &reply.headers {
            if name == http::header::SET_COOKIE {
                let v = value.to_str().unwrap_or("");
                let first = v.split(';').next().unwrap_or("");
                if let Some((k, val)) = first.split_once('=') {
                    let jar = self.jar.entry(host.clone()).or_default();
                    if val.is_empty() || v.contains("Max-Age=0") {
                        jar.remove(k);
                    } else {
                        jar.insert(k.into(), val.into());
                    }
                }
            }
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

/// How the "browser" builds `clientDataJSON`, and what it asks the authenticator.
#[derive(Debug, Clone)]
pub struct Client {
    pub origin: String,
    /// Raw JSON members appended to clientData (e.g. `,"crossOrigin":true`).
    pub extra: String,
    /// Ask the authenticator for UV (false: `discouraged`, the authenticator answers UV=0).
    pub uv: bool,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            origin: PORTAL.into(),
            extra: String::new(),
            uv: true,
        }
    }
}

fn client_data(kind: &str, challenge: &str, c: &Client) -> Vec<u8> {
    format!(
        r#"{{"type":"{kind}","challenge":"{challenge}","origin":"{}"{}}}"#,
        c.origin, c.extra
    )
    .into_bytes()
}

/// Run `navigator.credentials.create()` on a software authenticator.
pub fn create(
    auth: &mut impl AuthenticatorBackendHashedClientData,
    options: &Value,
    c: &Client,
) -> Value {
    let mut options = options.clone();
    if !c.uv {
        options["authenticatorSelection"]["userVerification"] = "discouraged".into();
    }
    let challenge = options["challenge"].as_str().unwrap_or("").to_string();
    let opts: PublicKeyCredentialCreationOptions = match serde_json::from_value(options) {
        Ok(o) => o,
        Err(e) => panic!("creation options: {e}"),
    };
    let cdj = client_data("webauthn.create", &challenge, c);
    let hash = Sha256::digest(&cdj).to_vec();
    let mut reg = match auth.perform_register(hash, opts, 60_000) {
        Ok(r) => r,
        Err(e) => panic!("authenticator register: {e:?}"),
    };
    reg.response.client_data_json = cdj;
    serde_json::to_value(&reg).unwrap_or(Value::Null)
}

/// Run `navigator.credentials.get()` on a software authenticator.
pub fn get(
    auth: &mut impl AuthenticatorBackendHashedClientData,
    options: &Value,
    c: &Client,
) -> Value {
    let mut options = options.clone();
    if !c.uv {
        options["userVerification"] = "discouraged".into();
    }
    let challenge = options["challenge"].as_str().unwrap_or("").to_string();
    let opts: PublicKeyCredentialRequestOptions = match serde_json::from_value(options) {
        Ok(o) => o,
        Err(e) => panic!("request options: {e}"),
    };
    let cdj = client_data("webauthn.get", &challenge, c);
    let hash = Sha256::digest(&cdj).to_vec();
    let mut a = match auth.perform_auth(hash, opts, 60_000) {
        Ok(r) => r,
        Err(e) => panic!("authenticator get: {e:?}"),
    };
    a.response.client_data_json = cdj;
    serde_json::to_value(&a).unwrap_or(Value::Null)
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
    let cred = create(auth, &begun["publicKey"], c);
    b.api(
        "enroll/finish",
        &serde_json::json!({"ceremony": begun["ceremony"], "credential": cred}),
    )
    .await
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
            .or_insert_with(new_token)
            .clone();
        let origin = u.origin().ascii_serialization();
        Some(self.gw.cookie_keys.load().browser_binding(&state, &origin))
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
    let cred = get(auth, &begun["publicKey"], c);
    login_finish(b, &begun["ceremony"], &cred).await
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
