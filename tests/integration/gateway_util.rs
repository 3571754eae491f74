//! Helpers for the gateway tests: a real stepgate server on free 127.0.0.1
//! ports (in a thread, with an injectable clock), a raw HTTP/1.1 client, a
//! small echoing upstream, and sessions created through the real SQLite store.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::clock::OffsetClock;
use stepgate::config::{Runtime, check_str};
use stepgate::gateway::Gateway;
use stepgate::server::{self, ServeOptions, ServerHandle};
use stepgate::session::{
    AppSession, AttestationProof, Credential, Grant, PortalSession, Verification,
};
use stepgate::store::Store;

use serde_json::{Value, json};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::portal_util::{Client, create, get};
use crate::util::{free_port, temp_dir};

/// A running gateway and everything a test needs to poke it.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub gw: Arc<Gateway>,
    pub clock: Arc<OffsetClock>,
    pub store: Arc<dyn Store>,
    pub dir: tempfile::TempDir,
    handle: Option<ServerHandle>,
}

/// The config head every test shares; `{LISTEN}`, `{ADMIN}` and `{DIR}` are filled in.
pub const BASE: &str = r#"
listen: {LISTEN}
admin_listen: {ADMIN}
portal: { url: http://auth.home.lab, rp_name: Test }
secrets: { cookie_keys: [{DIR}/cookie.key] }
session: { idle_timeout: 8h, max_lifetime: 7d }
"#;

impl TestGateway {
    /// Start a gateway whose config is [`BASE`] + `rest` (which must name a
    /// store only if it is not the default SQLite file in the temp dir).
    pub fn start(rest: &str) -> TestGateway {
        let dir = temp_dir();
        Self::start_in(dir, rest)
    }

    pub fn start_in(dir: tempfile::TempDir, rest: &str) -> TestGateway {
        let d = dir.path().display().to_string();
        if rest.contains("{DIR}/yubico.pem") {
            self_signed(dir.path(), "yubico");
        }
        let store_yaml = if rest.contains("\nstore:") {
            String::new()
        } else {
            format!("store: {{ sqlite: {{ path: {d}/stepgate.db }} }}\n")
        };
        let rest = rest.replace("{DIR}", &d);
        Self::start_with(dir, &|listen, admin| {
            BASE.replace("{LISTEN}", &listen.to_string())
                .replace("{ADMIN}", &admin.to_string())
                .replace("{DIR}", &d)
                + &store_yaml
                + &rest
        })
    }

    /// Start a gateway on free ports with the config `make(listen, admin)`
    /// returns; `dir/cookie.key` exists by then.
    pub fn start_with(
        dir: tempfile::TempDir,
        make: &dyn Fn(SocketAddr, SocketAddr) -> String,
    ) -> TestGateway {
        write_key(&dir);
        for _attempt in 0..5 {
            let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let yaml = make(listen, admin);
            let rt = runtime(&yaml);
            let clock = Arc::new(OffsetClock::default());
            let store = match stepgate::store::open(&rt.store, clock.clone()) {
                Ok(s) => s,
                Err(e) => panic!("store: {e}"),
            };
            let gw = match tokio_rt().block_on(Gateway::build(rt, store.clone(), clock.clone())) {
                Ok(gw) => Arc::new(gw),
                Err(e) => panic!("gateway: {e}"),
            };
            let opts = ServeOptions {
                threads: 1,
                grace_period: Duration::from_secs(0),
                ..ServeOptions::default()
            };
            let handle = match server::spawn(gw.clone(), opts) {
                Ok(h) => h,
                Err(server::ServeError::Bind { .. }) => continue,
                Err(e) => panic!("server: {e}"),
            };
            wait_for_port(listen);
            wait_for_port(admin);
            return TestGateway {
                addr: listen,
                admin,
                gw,
                clock,
                store,
                dir,
                handle: Some(handle),
            };
        }
        panic!("could not start a gateway on free ports");
    }

    /// Send a raw request (its text, `\n` line ends are turned into CRLF) and read one response.
    pub fn raw(&self, request: &str) -> Response {
        raw_request(self.addr, request)
    }

    /// `GET path` on `host` with extra header lines.
    pub fn get(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", host, path, headers, "")
    }

    pub fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body);
        send_bytes(self.addr, req.as_bytes())
    }

    /// A GET on the admin listener.
    pub fn admin_get(&self, path: &str) -> Response {
        send_bytes(
            self.admin,
            format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }

    /// Sign `user` in on `host` through the store: a portal session whose last
    /// ceremony is `last_uv` and an app session holding `grants`. Returns the
    /// `Cookie` header value a browser would send to `host`.
    pub fn sign_in(
        &self,
        user: &str,
        host: &str,
        last_uv: Option<Verification>,
        grants: Vec<Grant>,
    ) -> String {
        sign_in(&self.gw, user, host, last_uv, grants)
    }

    pub fn now(&self) -> i64 {
        self.gw.now()
    }

    pub fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.stop();
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.stop();
        }
    }
}

/// Compile config text or fail the test with every diagnostic.
pub fn runtime(yaml: &str) -> Runtime {
    match check_str(
        "test.yaml",
        yaml,
        time::OffsetDateTime::now_utc().unix_timestamp(),
    ) {
        Ok(c) => c.runtime,
        Err(e) => panic!("config does not compile:\n{e}\n---\n{yaml}"),
    }
}

/// A self-signed certificate `dir/NAME.pem` with its key `dir/NAME.key` (openssl CLI).
pub fn self_signed(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => (cert, key),
        other => panic!("openssl req failed (is the openssl CLI installed?): {other:?}"),
    }
}

/// Write a cookie key into `dir/cookie.key`.
pub fn write_key(dir: &tempfile::TempDir) {
    let mut out = Vec::new();
    if let Err(e) = stepgate::commands::gen_key(&mut out) {
        panic!("gen-key: {e}");
    }
    if let Err(e) = std::fs::write(dir.path().join("cookie.key"), out) {
        panic!("write key: {e}");
    }
}

/// A UV assertion at `at` with a test credential of the given traits: proven
/// (packed attestation chained to the set's root) to be of model `sets[0]`,
/// if any, and backup eligible or not. [`sign_in`] stores that credential.
pub fn uv(at: i64, sets: &[&str], backup_eligible: bool) -> Verification {
    let kind = if backup_eligible { "synced" } else { "bound" };
    Verification {
        at,
        credential_id: format!("test-{kind}-{}", sets.join("+")),
        credential_label: "test key".into(),
        aaguid: uuid::Uuid::nil(),
        backup_eligible,
    }
}

/// The credential a [`uv`] names, as registration would have stored it.
fn test_credential(gw: &Gateway, user: &str, v: &Verification) -> Credential {
    let rt = gw.config.load();
    let sets = v.credential_id.splitn(3, '-').nth(2).unwrap_or("");
    let attestation = sets.split('+').find(|s| !s.is_empty()).map(|set| {
        let aaguid = rt
            .authenticators
            .get(set)
            .and_then(|a| a.aaguids.first().copied())
            .unwrap_or_else(|| panic!("no authenticator set {set} in the test config"));
        let root = rt.trust.roots_of(set).into_iter().next();
        AttestationProof {
            format: "packed".into(),
            root: root.unwrap_or_else(|| panic!("set {set} has no root")),
            aaguid,
        }
    });
    Credential {
        id: v.credential_id.clone(),
        user: user.into(),
        label: v.credential_label.clone(),
        passkey: "{}".into(),
        counter: 0,
        aaguid: attestation.as_ref().map_or(uuid::Uuid::nil(), |a| a.aaguid),
        attestation,
        backup_eligible: v.backup_eligible,
        backup_state: false,
        created_at: gw.now(),
        last_used_at: None,
        expires_at: None,
        flagged: false,
    }
}

pub fn grant(rule: &str, v: Verification) -> Grant {
    Grant {
        rule: rule.into(),
        verification: v,
    }
}

/// Create the sessions of a signed-in user directly in the store, with the
/// credentials their assertions name.
pub fn sign_in(
    gw: &Gateway,
    user: &str,
    host: &str,
    last_uv: Option<Verification>,
    grants: Vec<Grant>,
) -> String {
    let now = gw.now();
    let portal_token = stepgate::session::new_token();
    let app_token = stepgate::session::new_token();
    let creds: Vec<Credential> = last_uv
        .iter()
        .chain(grants.iter().map(|g| &g.verification))
        .map(|v| test_credential(gw, user, v))
        .collect();
    let portal = PortalSession {
        id: stepgate::session::new_public_id(),
        user: user.into(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + 7 * 86400,
        signed_in_with: last_uv.as_ref().map(|v| v.credential_id.clone()),
        client: None,
        last_uv,
    };
    let app = AppSession {
        id: stepgate::session::new_public_id(),
        portal_id: portal.id.clone(),
        user: user.into(),
        host: host.into(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + 7 * 86400,
    };
    // A store handle of its own, living in this runtime (as the CLI would):
    // the server's handle belongs to the server's runtime.
    let store = match stepgate::store::open(&gw.config.load().store, gw.clock.clone()) {
        Ok(s) => s,
        Err(e) => panic!("store: {e}"),
    };
    let rt = tokio_rt();
    let result = rt.block_on(async {
        for c in &creds {
            match store.add_credential(c).await {
                Ok(()) | Err(stepgate::store::StoreError::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        store
            .add_portal_session(&stepgate::session::token_hash(&portal_token), &portal)
            .await?;
        store
            .add_app_session(&stepgate::session::token_hash(&app_token), &app, &grants)
            .await
    });
    if let Err(e) = result {
        panic!("store: {e}");
    }
    app_cookie(gw, &app_token)
}

/// The `Cookie` header value carrying an app token (over plain http).
pub fn app_cookie(gw: &Gateway, token: &str) -> String {
    use stepgate::session::cookie::CookieKind;
    match gw.cookie_keys.load().seal(CookieKind::App, token) {
        Ok(value) => format!("{}={value}", CookieKind::App.name(false)),
        Err(e) => panic!("seal: {e}"),
    }
}

pub fn tokio_rt() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("tokio: {e}"),
    }
}

/// Wait until something accepts connections on `addr` (at most 10 s).
pub fn wait_for_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {addr}");
}

/// One parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Lines of a whoami / echo body whose header name matches `name` (case-insensitively).
    pub fn echoed(&self, name: &str) -> Vec<String> {
        self.body
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    /// The request line an echoing upstream saw.
    pub fn echoed_request_line(&self) -> &str {
        self.body.lines().next().unwrap_or("")
    }
}

/// Assert `r` sends the browser to `login` (the portal's login URL with its
/// `rd`) carrying the app host's browser binding, and return that binding.
pub fn assert_login_redirect(r: &Response, login: &str) -> String {
    let location = r.header("location").unwrap_or_default();
    let state = location
        .strip_prefix(login)
        .and_then(|rest| rest.strip_prefix("&state="))
        .unwrap_or_else(|| panic!("expected a redirect to {login}&state=…, got {location:?}"));
    assert_eq!(state.len(), 32, "a browser binding: {state:?}");
    state.to_string()
}

/// Send raw text (`\n` turned into CRLF) and read one response; the connection is closed after.
pub fn raw_request(addr: SocketAddr, text: &str) -> Response {
    let text = text.replace("\r\n", "\n").replace('\n', "\r\n");
    send_bytes(addr, text.as_bytes())
}

/// Send bytes, read until the server closes, parse the first response.
pub fn send_bytes(addr: SocketAddr, bytes: &[u8]) -> Response {
    let all = exchange(addr, bytes);
    match parse_responses(&all).into_iter().next() {
        Some(r) => r,
        None => panic!(
            "no response from {addr}; got {:?}",
            String::from_utf8_lossy(&all)
        ),
    }
}

/// Send bytes and read everything until the server closes (or 5 s of silence).
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => panic!("connect {addr}: {e}"),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if let Err(e) = s.write_all(bytes) {
        panic!("write: {e}");
    }
    let mut all = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    all
}

/// Parse every complete response in `data` (Content-Length or chunked bodies).
pub fn parse_responses(mut data: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while let Some(end) = find(data, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&data[..end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut rest = &data[end + 4..];
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let body: Vec<u8>;
        if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut b = Vec::new();
            while let Some(le) = find(rest, b"\r\n") {
                let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..le]).trim(), 16)
                    .unwrap_or(0);
                rest = &rest[le + 2..];
                if size == 0 {
                    rest = rest.get(2..).unwrap_or(&[]);
                    break;
                }
                let take = size.min(rest.len());
                b.extend_from_slice(&rest[..take]);
                rest = rest.get(take + 2..).unwrap_or(&[]);
            }
            body = b;
        } else {
            let n = get("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(if status == 304 || status == 204 {
                    0
                } else {
                    rest.len()
                });
            let n = n.min(rest.len());
            body = rest[..n].to_vec();
            rest = &rest[n..];
        }
        out.push(Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).to_string(),
        });
        data = rest;
    }
    out
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// A small HTTP/1.1 upstream on 127.0.0.1:0 that answers every request with
/// its request line, headers and body length (keep-alive, Content-Length).
/// `101` is answered to WebSocket upgrades, then bytes are echoed.
pub struct EchoUpstream {
    pub addr: SocketAddr,
    /// How many TCP connections it accepted (to see upstream keep-alive).
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    /// Every request line it received, in order (to see what was smuggled).
    pub requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl EchoUpstream {
    /// The request lines received so far.
    pub fn seen(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn start() -> EchoUpstream {
        Self::start_with(false)
    }

    /// One that answers 403 to a WebSocket upgrade instead of 101.
    pub fn start_refusing_upgrades() -> EchoUpstream {
        Self::start_with(true)
    }

    fn start_with(refuse_upgrades: bool) -> EchoUpstream {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("addr: {e}"),
        };
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let counter = connections.clone();
        let seen = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let seen = seen.clone();
                std::thread::spawn(move || serve_echo(conn, &seen, refuse_upgrades));
            }
        });
        EchoUpstream {
            addr,
            connections,
            requests,
        }
    }
}

fn serve_echo(mut conn: TcpStream, seen: &std::sync::Mutex<Vec<String>>, refuse_upgrades: bool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        // Read a request head.
        let end = loop {
            if let Some(e) = find(&buf, b"\r\n\r\n") {
                break e;
            }
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end + 4);
        if let Ok(mut s) = seen.lock() {
            s.push(head.lines().next().unwrap_or("").to_string());
        }
        let lower = head.to_ascii_lowercase();
        let content_length = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let chunked = lower
            .lines()
            .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
        let upgrade = lower
            .lines()
            .any(|l| l.starts_with("upgrade:") && l.contains("websocket"));
        // Read the body.
        let mut body_len = 0usize;
        if let Some(n) = content_length {
            while buf.len() < n {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            buf.drain(..n);
            body_len = n;
        } else if chunked {
            loop {
                let Some(le) = find(&buf, b"\r\n") else {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                    continue;
                };
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&buf[..le])
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim(),
                    16,
                )
                .unwrap_or(0);
                while buf.len() < le + 2 + size + 2 {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                buf.drain(..le + 2 + size + 2);
                body_len += size;
                if size == 0 {
                    break;
                }
            }
        }
        if upgrade && !refuse_upgrades {
            let resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: test\r\n\r\n";
            if conn.write_all(resp.as_bytes()).is_err() {
                return;
            }
            if !buf.is_empty() && conn.write_all(&buf).is_err() {
                return;
            }
            loop {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if conn.write_all(&chunk[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        let body = format!("{head}\r\nx-echo-body-length: {body_len}\r\n");
        let status = if upgrade { "403 Forbidden" } else { "200 OK" };
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// A kept-alive client connection: send a request, read exactly one response.
pub struct Conn {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => panic!("connect {addr}: {e}"),
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        Conn {
            stream,
            pending: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            panic!("write: {e}");
        }
    }

    /// The next complete response, or `None` when the server closed first.
    pub fn read_response(&mut self) -> Option<Response> {
        let mut buf = [0u8; 16384];
        loop {
            if let Some((r, used)) = parse_one(&self.pending) {
                self.pending.drain(..used);
                return Some(r);
            }
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// One complete response with a Content-Length body at the start of `data`.
fn parse_one(data: &[u8]) -> Option<(Response, usize)> {
    let end = find(data, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&data[..end]).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    if data.len() < end + 4 + len {
        return None;
    }
    let r = parse_responses(&data[..end + 4 + len]).into_iter().next()?;
    Some((r, end + 4 + len))
}

/// A child process that is killed when the test ends, even on a failed assert.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the built `stepgate serve -c FILE`.
pub fn serve_binary(file: &std::path::Path) -> ChildGuard {
    match std::process::Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .arg("serve")
        .arg("-c")
        .arg(file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => ChildGuard(c),
        Err(e) => panic!("cannot start stepgate: {e}"),
    }
}

/// A browser speaking HTTP to the gateway: one cookie jar per host, every
/// request carrying `X-Forwarded-Proto: https` as the TLS-terminating proxy would.
pub struct NetBrowser {
    pub addr: SocketAddr,
    pub jar: HashMap<String, HashMap<String, String>>,
    /// The client address the trusted proxy reports (`X-Forwarded-For`), if any.
    pub client: Option<String>,
    /// The portal's origin (where the API is, and what `Origin` says).
    pub portal: String,
    /// Send `X-Forwarded-Proto: https`, as a TLS-terminating proxy would
    /// (false when a real front proxy sits in between and says it itself).
    pub says_https: bool,
    /// The `User-Agent` sent.
    pub user_agent: String,
}

impl NetBrowser {
    pub fn new(addr: SocketAddr) -> NetBrowser {
        NetBrowser {
            addr,
            jar: HashMap::new(),
            client: None,
            portal: "https://auth.test".into(),
            says_https: true,
            user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
                .into(),
        }
    }

    /// A browser talking to a real front proxy at `addr`, with the portal at `portal`.
    pub fn behind_front(addr: SocketAddr, portal: &str) -> NetBrowser {
        NetBrowser {
            portal: portal.to_string(),
            says_https: false,
            ..NetBrowser::new(addr)
        }
    }

    /// How the software authenticator writes `clientDataJSON` for this portal.
    pub fn client_data(&self) -> Client {
        Client {
            origin: self.portal.clone(),
            ..Client::default()
        }
    }

    /// Open `url` and follow redirects (at most 10), as a browser navigates;
    /// returns the last response and the URL it came from.
    pub fn navigate(&mut self, url: &str) -> (Response, String) {
        let mut url = url.to_string();
        for _ in 0..10 {
            let r = self.get(&url);
            let location = r.header("location").map(str::to_string);
            match (r.status, location) {
                (301 | 302 | 303 | 307, Some(next)) => {
                    url = match url::Url::parse(&url).and_then(|base| base.join(&next)) {
                        Ok(u) => u.to_string(),
                        Err(e) => panic!("bad Location {next}: {e}"),
                    };
                }
                _ => return (r, url),
            }
        }
        panic!("more than 10 redirects from {url}");
    }

    /// A browser at `client` (as the trusted proxy in front reports it).
    pub fn at(addr: SocketAddr, client: &str) -> NetBrowser {
        NetBrowser {
            client: Some(client.to_string()),
            ..NetBrowser::new(addr)
        }
    }

    pub fn request(&mut self, method: &str, url: &str, body: &str, ct: &str) -> Response {
        let u = match url::Url::parse(url) {
            Ok(u) => u,
            Err(e) => panic!("{url}: {e}"),
        };
        let host = u.host_str().unwrap_or("").to_string();
        // Cookies are kept per host (they ignore ports); Host names the port too.
        let authority = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let target = match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        };
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nAccept: text/html,application/json\r\nUser-Agent: {}\r\n",
            self.user_agent
        );
        if self.says_https {
            req.push_str("X-Forwarded-Proto: https\r\n");
        }
        if let Some(c) = &self.client {
            req.push_str(&format!("X-Forwarded-For: {c}\r\n"));
        }
        if let Some(jar) = self.jar.get(&host).filter(|j| !j.is_empty()) {
            let c: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req.push_str(&format!("Cookie: {}\r\n", c.join("; ")));
        }
        if method == "POST" {
            let origin = if host == "auth.test" || self.portal.contains(&format!("//{authority}")) {
                self.portal.clone()
            } else {
                format!("{}://{authority}", u.scheme())
            };
            req.push_str(&format!(
                "Content-Type: {ct}\r\nOrigin: {origin}\r\nContent-Length: {}\r\n",
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

    pub fn get(&mut self, url: &str) -> Response {
        self.request("GET", url, "", "")
    }

    pub fn api(&mut self, path: &str, body: &Value) -> Value {
        let (status, v) = self.try_api(path, body);
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    /// POST JSON to `/.stepgate/api/{path}` on the portal; (status, body).
    pub fn try_api(&mut self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.request(
            "POST",
            &format!("{}/.stepgate/api/{path}", self.portal),
            &body.to_string(),
            "application/json",
        );
        (
            r.status,
            serde_json::from_str(&r.body).unwrap_or(Value::Null),
        )
    }

    /// Enroll `key` for alice with an invite (the token `stepgate invite` would print).
    pub fn enroll_by_invite(&mut self, g: &TestGateway, key: &mut SoftPasskey) {
        self.enroll_as(g, key, "alice", "laptop");
    }

    /// Enroll `key` for `user`, labelled `label`, with an invite.
    pub fn enroll_as(&mut self, g: &TestGateway, key: &mut SoftPasskey, user: &str, label: &str) {
        let token = stepgate::session::new_token();
        let invite = stepgate::session::Invite {
            user: user.into(),
            credential_ttl: None,
            expires_at: g.now() + 3600,
        };
        let added = tokio_rt().block_on(async {
            let store = stepgate::store::open(&g.gw.config.load().store, g.gw.clock.clone())?;
            store
                .add_invite(&stepgate::session::token_hash(&token), &invite)
                .await
        });
        assert!(added.is_ok(), "{added:?}");
        let begun = self.api("enroll/begin", &json!({ "token": token, "label": label }));
        let cred = create(key, &begun["publicKey"], &self.client_data());
        self.api(
            "enroll/finish",
            &json!({ "ceremony": begun["ceremony"], "credential": cred }),
        );
    }

    /// The app's redirect to the portal for `url` (which must need a
    /// sign-in): the `rd` and `state` its login URL carries.
    pub fn login_params(&mut self, url: &str) -> (String, String) {
        let r = self.get(url);
        assert_eq!(
            r.status, 302,
            "{url} should send the browser to the portal: {r:?}"
        );
        let location = r.header("location").unwrap_or_default();
        let login = match url::Url::parse(location) {
            Ok(u) => u,
            Err(e) => panic!("{location}: {e}"),
        };
        let param = |name: &str| {
            login
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        (param("rd"), param("state"))
    }

    /// The ceremony at the portal for `rd` with the app's `state`; returns
    /// the finish answer's `redirect`.
    pub fn ceremony(&mut self, key: &mut SoftPasskey, rd: &str, state: &str) -> String {
        let begun = self.api(
            "login/begin",
            &json!({ "rd": rd, "state": state, "username": "alice" }),
        );
        let cred = get(key, &begun["publicKey"], &self.client_data());
        let done = self.api(
            "login/finish",
            &json!({ "ceremony": begun["ceremony"], "credential": cred }),
        );
        done["redirect"].as_str().unwrap_or("").to_string()
    }

    /// Sign in (or step up) for `url` as a browser does: open it, follow the
    /// app's redirect to the portal, do the ceremony and follow the callback;
    /// returns where it lands.
    pub fn sign_in(&mut self, key: &mut SoftPasskey, url: &str) -> String {
        let (rd, state) = self.login_params(url);
        let redirect = self.ceremony(key, &rd, &state);
        assert!(redirect.contains("/.stepgate/callback?code="), "{redirect}");
        let cb = self.get(&redirect);
        assert_eq!(cb.status, 303, "{cb:?}");
        cb.header("location").unwrap_or("").to_string()
    }
}
