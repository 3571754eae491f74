//! A real stepgate server on free 127.0.0.1 ports, in a thread, on a clock
//! the test moves ([`TestGateway`]), and sessions made directly in its store
//! ([`sign_in`], with credentials of chosen traits from [`uv`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use stepgate::client_token::{self, TokenRequest};
use stepgate::gateway::Gateway;
use stepgate::model::{
    AppSession, AttestationProof, Credential, Grant, PortalSession, Verification,
};
use stepgate::server::{self, ServeOptions, ServerHandle};
use stepgate::store::{Store, StoreError};

use super::clock::OffsetClock;
use super::config::{TestConfig, runtime, write_key};
use super::http::{Response, raw_request, send_bytes};
use super::{free_port, tokio_rt, wait_for_port};

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

impl TestGateway {
    /// Start a gateway on free ports with `config`, in its temp dir.
    pub fn start(config: TestConfig) -> TestGateway {
        let served = serve_on_free_ports(&|listen, admin| config.yaml(listen, Some(admin)));
        Self::running(served, config.into_dir())
    }

    /// Start a gateway on free ports with the config text `make(listen,
    /// admin)` returns, in `dir` (for a shipped config file the test edits).
    pub fn start_yaml(
        dir: tempfile::TempDir,
        make: &dyn Fn(SocketAddr, SocketAddr) -> String,
    ) -> TestGateway {
        write_key(dir.path());
        Self::running(serve_on_free_ports(make), dir)
    }

    fn running(
        (served, addr, admin): (Served, SocketAddr, SocketAddr),
        dir: tempfile::TempDir,
    ) -> TestGateway {
        TestGateway {
            addr,
            admin,
            gw: served.gw,
            clock: served.clock,
            store: served.store,
            dir,
            handle: Some(served.handle),
        }
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

    /// Store the minting passkey of `user` (once, id `token-minting-key-USER`)
    /// and a client token for `rules` minted at `at` for `days`, as the
    /// account page would; returns the token's id and secret.
    pub fn stored_token(&self, user: &str, rules: &[&str], at: i64, days: u64) -> (String, String) {
        let cred = Credential {
            id: format!("{TOKEN_CREDENTIAL}-{user}"),
            user: user.into(),
            label: "key".into(),
            passkey: "{}".into(),
            counter: 0,
            aaguid: uuid::Uuid::nil(),
            attestation: None,
            backup_eligible: true,
            backup_state: false,
            created_at: at,
            last_used_at: None,
            expires_at: None,
            flagged: false,
        };
        let verification = Verification {
            at,
            credential_id: cred.id.clone(),
            credential_label: cred.label.clone(),
            aaguid: cred.aaguid,
            backup_eligible: true,
        };
        let request = TokenRequest {
            user: user.into(),
            label: "test".into(),
            rules: rules.iter().map(|r| r.to_string()).collect(),
            lifetime: Some(Duration::from_secs(days * 86_400)),
        };
        let minted = client_token::mint(request, verification, at, Duration::MAX);
        let stored = tokio_rt().block_on(async {
            let store = own_store(&self.gw);
            match store.add_credential(&cred).await {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e),
            }
            store.add_token(&minted.token_hash, &minted.record).await
        });
        assert!(stored.is_ok(), "{stored:?}");
        (minted.record.id, minted.secret.expose().to_string())
    }
}

/// The id prefix of the passkey [`TestGateway::stored_token`] mints with.
pub const TOKEN_CREDENTIAL: &str = "token-minting-key";

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.stop();
        }
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

/// The fingerprint of the first certificate in the PEM file at `path`, as
/// an attestation proof records its root.
fn root_fingerprint(path: &std::path::Path) -> Option<String> {
    let pem = std::fs::read(path).ok()?;
    let list = webauthn_rs_core::proto::AttestationCaList::try_from(pem.as_slice()).ok()?;
    list.cas().values().find_map(stepgate::trust::fingerprint)
}

/// The credential a [`uv`] names, as registration would have stored it.
fn test_credential(gw: &Gateway, user: &str, v: &Verification) -> Credential {
    let snapshot = gw.snapshot();
    let rt = &snapshot.config;
    let sets = v.credential_id.splitn(3, '-').nth(2).unwrap_or("");
    let attestation = sets.split('+').find(|s| !s.is_empty()).map(|set| {
        let aaguid = rt
            .authenticators
            .get(set)
            .and_then(|a| a.aaguids.first().copied())
            .unwrap_or_else(|| panic!("no authenticator set {set} in the test config"));
        let root = rt
            .authenticators
            .get(set)
            .and_then(|a| a.ca_files.first())
            .and_then(|ca| root_fingerprint(&ca.path));
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
    let portal_token = stepgate::model::new_secret();
    let app_token = stepgate::model::new_secret();
    let creds: Vec<Credential> = last_uv
        .iter()
        .chain(grants.iter().map(|g| &g.verification))
        .map(|v| test_credential(gw, user, v))
        .collect();
    let portal = PortalSession {
        id: stepgate::model::new_public_id(),
        user: user.into(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + 7 * 86400,
        signed_in_with: last_uv.as_ref().map(|v| v.credential_id.clone()),
        client: None,
        last_uv,
    };
    let app = AppSession {
        id: stepgate::model::new_public_id(),
        portal_id: portal.id.clone(),
        user: user.into(),
        host: host.into(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + 7 * 86400,
    };
    let store = own_store(gw);
    let rt = tokio_rt();
    let result = rt.block_on(async {
        for c in &creds {
            match store.add_credential(c).await {
                Ok(()) | Err(stepgate::store::StoreError::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        store
            .add_portal_session(&stepgate::model::token_hash(&portal_token), &portal)
            .await?;
        store
            .add_app_session(&stepgate::model::token_hash(&app_token), &app, &grants)
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
    match gw.snapshot().keys.seal(CookieKind::App, token) {
        Ok(value) => format!("{}={value}", CookieKind::App.name(false)),
        Err(e) => panic!("seal: {e}"),
    }
}

/// A gateway built from config text, on a store and a clock it shares.
pub struct Built {
    pub gw: Arc<Gateway>,
    pub clock: Arc<OffsetClock>,
    pub store: Arc<dyn Store>,
}

/// Build a gateway from `yaml`: its store and the gateway read one [`OffsetClock`].
pub async fn build(yaml: &str) -> Built {
    let rt = runtime(yaml);
    let clock = Arc::new(OffsetClock::default());
    let store = match stepgate::store::open(&rt.boot.store, clock.clone()) {
        Ok(s) => s,
        Err(e) => panic!("store: {e}"),
    };
    match Gateway::build(rt, store.clone(), clock.clone()).await {
        Ok(gw) => Built {
            gw: Arc::new(gw),
            clock,
            store,
        },
        Err(e) => panic!("gateway: {e}"),
    }
}

/// Serve `gw` with pingora (one thread, no grace period); `None` when its
/// ports were taken meanwhile.
pub fn spawn_server(gw: &Arc<Gateway>) -> Option<ServerHandle> {
    let opts = ServeOptions {
        threads: 1,
        grace_period: Duration::from_secs(0),
        ..ServeOptions::default()
    };
    match server::spawn(gw.clone(), opts) {
        Ok(handle) => Some(handle),
        Err(server::ServeError::Bind { .. }) => None,
        Err(e) => panic!("server: {e}"),
    }
}

/// A gateway built and served.
pub struct Served {
    pub gw: Arc<Gateway>,
    pub clock: Arc<OffsetClock>,
    pub store: Arc<dyn Store>,
    pub handle: ServerHandle,
}

/// [`build`] and [`spawn_server`] from a synchronous test.
pub fn serve(yaml: &str) -> Option<Served> {
    let built = tokio_rt().block_on(build(yaml));
    let handle = spawn_server(&built.gw)?;
    Some(Served {
        gw: built.gw,
        clock: built.clock,
        store: built.store,
        handle,
    })
}

/// [`serve`] the config `make(listen, admin)` on free ports (trying again
/// when a port was taken meanwhile), once both accept connections.
fn serve_on_free_ports(
    make: &dyn Fn(SocketAddr, SocketAddr) -> String,
) -> (Served, SocketAddr, SocketAddr) {
    for _attempt in 0..5 {
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        if let Some(served) = serve(&make(listen, admin)) {
            wait_for_port(listen);
            wait_for_port(admin);
            return (served, listen, admin);
        }
    }
    panic!("could not start a gateway on free ports");
}

/// A store handle of its own on `gw`'s store, living in the caller's runtime
/// (as the CLI's would): the server's handle belongs to the server's runtime.
pub fn own_store(gw: &Gateway) -> Arc<dyn Store> {
    match stepgate::store::open(&gw.snapshot().config.boot.store, gw.clock.clone()) {
        Ok(s) => s,
        Err(e) => panic!("store: {e}"),
    }
}
