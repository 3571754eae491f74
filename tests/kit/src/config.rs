//! The one builder of test configs. [`TestConfig`] owns the test's temp dir
//! and writes the head every gateway needs — listen and admin addresses, the
//! portal, the cookie key, the store, session limits, TLS — from typed fields;
//! the test adds the sections it is about (users, upstreams, rules,
//! authenticators…) as YAML with [`TestConfig::body`], naming files by the
//! paths [`TestConfig::path`] gives.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use stepgate::config::{Runtime, check_str};

use super::temp_dir;

/// Where the portal is.
#[derive(Debug, Clone)]
enum Portal {
    /// A fixed URL.
    Url(String),
    /// `BASE:PORT`, PORT being the gateway's own listen port (a browser then
    /// reaches the portal at the address the gateway listens on).
    OnListenPort(String),
}

/// A test config and the temp dir it lives in.
#[derive(Debug)]
pub struct TestConfig {
    dir: tempfile::TempDir,
    portal: Portal,
    behind_proxy: bool,
    cookie_key: PathBuf,
    /// The `store:` mapping's body.
    store: String,
    session: Option<String>,
    tls: Option<String>,
    body: String,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl TestConfig {
    /// A fresh temp dir with a cookie key; the portal at
    /// `http://auth.home.lab`, SQLite in the dir, sessions 8h idle / 7d.
    pub fn new() -> TestConfig {
        let dir = temp_dir();
        write_key(dir.path());
        let d = dir.path().to_path_buf();
        TestConfig {
            portal: Portal::Url("http://auth.home.lab".into()),
            behind_proxy: false,
            cookie_key: d.join("cookie.key"),
            store: sqlite_store(&d.join("stepgate.db")),
            session: Some("{ idle_timeout: 8h, max_lifetime: 7d }".into()),
            tls: None,
            body: String::new(),
            dir,
        }
    }

    /// [`TestConfig::new`] with the portal at `https://auth.test` behind a
    /// TLS-terminating proxy on 127.0.0.1 (as [`super::NetBrowser`] talks to
    /// it), and the default session limits.
    pub fn behind_proxy() -> TestConfig {
        TestConfig {
            portal: Portal::Url("https://auth.test".into()),
            behind_proxy: true,
            session: None,
            ..TestConfig::new()
        }
    }

    /// The temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path in the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The portal at `url`.
    pub fn portal(mut self, url: &str) -> Self {
        self.portal = Portal::Url(url.to_string());
        self
    }

    /// The portal at `base:PORT`, PORT being the gateway's listen port.
    pub fn portal_on_listen_port(mut self, base: &str) -> Self {
        self.portal = Portal::OnListenPort(base.to_string());
        self
    }

    /// Believe `X-Forwarded-*` from 127.0.0.1 (`trusted_proxies`).
    pub fn trusting_loopback(mut self) -> Self {
        self.behind_proxy = true;
        self
    }

    /// Sign cookies with the key file at `path` (another instance's, to share sessions).
    pub fn cookie_key(mut self, path: &Path) -> Self {
        self.cookie_key = path.to_path_buf();
        self
    }

    /// SQLite at `path` (another instance's database, to share it).
    pub fn sqlite(mut self, path: &Path) -> Self {
        self.store = sqlite_store(path);
        self
    }

    /// Redis at `url`, every key under `prefix`.
    pub fn redis(mut self, url: &str, prefix: &str) -> Self {
        self.store = format!("redis: {{ url: \"{url}\", prefix: \"{prefix}\" }}");
        self
    }

    /// Any other `store:` body (Redis through Sentinel).
    pub fn store(mut self, body: &str) -> Self {
        self.store = body.to_string();
        self
    }

    /// `session:` limits.
    pub fn session(mut self, idle_timeout: &str, max_lifetime: &str) -> Self {
        self.session = Some(format!(
            "{{ idle_timeout: {idle_timeout}, max_lifetime: {max_lifetime} }}"
        ));
        self
    }

    /// An HTTPS listener on `port` with this certificate and key.
    pub fn tls(mut self, port: u16, cert: &Path, key: &Path) -> Self {
        self.tls = Some(format!(
            "{{ listen: 127.0.0.1:{port}, cert: \"{}\", key: \"{}\" }}",
            cert.display(),
            key.display()
        ));
        self
    }

    /// Append sections (users, upstreams, rules, authenticators, …).
    pub fn body(mut self, yaml: &str) -> Self {
        self.body.push_str(yaml);
        if !self.body.ends_with('\n') {
            self.body.push('\n');
        }
        self
    }

    /// The config text for a gateway listening on `listen` (and `admin`).
    pub fn yaml(&self, listen: SocketAddr, admin: Option<SocketAddr>) -> String {
        let portal = match &self.portal {
            Portal::Url(u) => u.clone(),
            Portal::OnListenPort(base) => format!("{base}:{}", listen.port()),
        };
        let mut out = format!("listen: {listen}\n");
        if let Some(a) = admin {
            out.push_str(&format!("admin_listen: {a}\n"));
        }
        if self.behind_proxy {
            out.push_str("trusted_proxies: [127.0.0.1/32]\n");
        }
        out.push_str(&format!(
            "portal: {{ url: \"{portal}\", rp_name: Test }}\nsecrets: {{ cookie_keys: [\"{}\"] }}\nstore: {{ {} }}\n",
            self.cookie_key.display(),
            self.store
        ));
        if let Some(s) = &self.session {
            out.push_str(&format!("session: {s}\n"));
        }
        if let Some(t) = &self.tls {
            out.push_str(&format!("tls: {t}\n"));
        }
        out.push_str(&self.body);
        out
    }

    /// Give up the temp dir (to the gateway that runs in it).
    pub fn into_dir(self) -> tempfile::TempDir {
        self.dir
    }
}

fn sqlite_store(path: &Path) -> String {
    format!("sqlite: {{ path: \"{}\" }}", path.display())
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
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
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
pub fn write_key(dir: &Path) {
    let mut out = Vec::new();
    if let Err(e) = stepgate::commands::gen_key(&mut out) {
        panic!("gen-key: {e}");
    }
    if let Err(e) = std::fs::write(dir.join("cookie.key"), out) {
        panic!("write key: {e}");
    }
}
