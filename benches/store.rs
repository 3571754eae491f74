//! Median latency of an app-session lookup, SQLite vs Redis.
//!
//! `store/app_session`: one `Store::app_session` call (app + portal + grants).
//! `resolve_app`: what the gateway does per request: find and verify the cookie
//! (HMAC), look the session up, check liveness (no idle write: it is fresh).
//! Redis runs as a private `redis-server` on a free port (it must be installed).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use stepgate::config::SessionLimits;
use stepgate::model::{AttestationProof, Credential, Grant, Verification};
use stepgate::session::cookie::{CookieKeys, CookieKind};
use stepgate::session::{new_app_session, new_portal_session, resolve_app_cached};
use stepgate::store::Store;
use stepgate::store::redis::RedisStore;
use stepgate::store::sqlite::SqliteStore;

const LIMITS: SessionLimits = SessionLimits {
    idle_timeout: Duration::from_secs(8 * 3600),
    max_lifetime: Duration::from_secs(7 * 86_400),
};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A signed-in session with one app session and three grants; returns the
/// app token hash and a request's headers carrying its cookie.
fn seed(rt: &tokio::runtime::Runtime, store: &dyn Store, keys: &CookieKeys) -> (String, HeaderMap) {
    let t = now();
    let uv = Verification {
        at: t,
        credential_id: "credential-id-0123456789abcdef".into(),
        credential_label: "yubikey".into(),
        aaguid: uuid::Uuid::nil(),
        backup_eligible: false,
    };
    // The credential the grants rest on: every lookup reads its standing too.
    let cred = Credential {
        id: uv.credential_id.clone(),
        user: "alice".into(),
        label: uv.credential_label.clone(),
        passkey: "{}".into(),
        counter: 1,
        aaguid: uuid::Uuid::nil(),
        attestation: Some(AttestationProof {
            format: "packed".into(),
            root: "ab".repeat(32),
            aaguid: uuid::Uuid::nil(),
        }),
        backup_eligible: false,
        backup_state: false,
        created_at: t,
        last_used_at: None,
        expires_at: None,
        flagged: false,
    };
    let portal = new_portal_session("alice", Some(uv.clone()), None, &LIMITS, t);
    let app = new_app_session(&portal, "git.home.lab", &LIMITS, t);
    let grants: Vec<Grant> = ["gitea", "gitea-admin", "gitea-api"]
        .iter()
        .map(|r| Grant {
            rule: r.to_string(),
            verification: uv.clone(),
        })
        .collect();
    let pm = keys.mint(CookieKind::Portal);
    let am = keys.mint(CookieKind::App);
    rt.block_on(async {
        match store.add_credential(&cred).await {
            Ok(()) | Err(stepgate::store::StoreError::Conflict) => {}
            Err(e) => return Err(e),
        }
        store.add_portal_session(&pm.token_hash, &portal).await?;
        store.add_app_session(&am.token_hash, &app, &grants).await
    })
    .unwrap_or_else(|e| panic!("seed: {e}"));
    let mut h = HeaderMap::new();
    let cookie = format!(
        "_ga=GA1.2.3; {}={}; theme=dark",
        CookieKind::App.name(true),
        am.cookie_value
    );
    h.insert(
        http::header::COOKIE,
        HeaderValue::from_str(&cookie).unwrap_or_else(|e| panic!("{e}")),
    );
    (am.token_hash, h)
}

fn bench_store(c: &mut Criterion, name: &str, rt: &tokio::runtime::Runtime, store: Arc<dyn Store>) {
    let keys = CookieKeys::from_keys(vec![vec![7; 32]]).unwrap_or_else(|| panic!("keys"));
    let (hash, headers) = seed(rt, store.as_ref(), &keys);
    let mut g = c.benchmark_group(name);
    g.bench_function("store/app_session", |b| {
        b.iter(|| {
            let v = rt.block_on(store.app_session(black_box(&hash)));
            assert!(matches!(v, Ok(Some(_))));
        })
    });
    g.bench_function("resolve_app", |b| {
        b.iter(|| {
            let t = now();
            let v = rt.block_on(resolve_app_cached(
                store.as_ref(),
                None,
                &keys,
                &LIMITS,
                black_box(&headers),
                true,
                "git.home.lab",
                t,
            ));
            assert!(matches!(v, Ok(Some(_))));
        })
    });
    g.finish();
}

fn lookups(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));

    let sqlite = SqliteStore::open(&dir.path().join("bench.db")).unwrap_or_else(|e| panic!("{e}"));
    bench_store(c, "sqlite", &rt, Arc::new(sqlite));

    let server = stepgate_kit::RedisServer::start();
    let redis = RedisStore::open(&server.url(), "bench:").unwrap_or_else(|e| panic!("{e}"));
    bench_store(c, "redis", &rt, Arc::new(redis));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = lookups
}
criterion_main!(benches);
