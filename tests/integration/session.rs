//! Session lifecycle through a real store: cookie → live session, host binding,
//! idle and absolute limits, idle refresh at most once a minute.

use std::sync::Arc;
use std::time::Duration;

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use stepgate::config::SessionLimits;
use stepgate::session::cookie::{CookieKeys, CookieKind};
use stepgate::session::{new_app_session, new_portal_session, resolve_app_cached, resolve_portal};
use stepgate::store::{Store, StoreError};

use crate::store::{Backend, redis_backend, sqlite_backend, verification};

const LIMITS: SessionLimits = SessionLimits {
    idle_timeout: Duration::from_secs(8 * 3600),
    max_lifetime: Duration::from_secs(7 * 86_400),
};

fn keys() -> CookieKeys {
    match CookieKeys::from_keys(vec![vec![42; 32]]) {
        Some(k) => k,
        None => panic!("keys"),
    }
}

fn cookie(name: &str, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("other=1; {name}={value}")) {
        h.insert(COOKIE, v);
    }
    h
}

fn ok<T>(r: Result<T, StoreError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("store error: {e}"),
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn lifecycle(s: Arc<dyn Store>) {
    let k = keys();
    let t = now();
    let portal = new_portal_session("alice", Some(verification("x")), None, &LIMITS, t);
    assert_eq!(portal.expires_at, t + 7 * 86_400);
    let pm = k.mint(CookieKind::Portal);
    ok(s.add_portal_session(&pm.token_hash, &portal).await);
    let app = new_app_session(&portal, "git.home.lab", &LIMITS, t);
    let am = k.mint(CookieKind::App);
    ok(s.add_app_session(&am.token_hash, &app, &[]).await);

    let secure = true;
    let h = cookie(CookieKind::App.name(secure), &am.cookie_value);
    let view =
        ok(resolve_app_cached(s.as_ref(), None, &k, &LIMITS, &h, secure, "git.home.lab", t).await);
    assert_eq!(view.as_ref().map(|v| &v.app), Some(&app));
    assert_eq!(view.as_ref().map(|v| &v.portal), Some(&portal));

    // Another host, another scheme's cookie name, a portal cookie: no session.
    assert_eq!(
        ok(resolve_app_cached(
            s.as_ref(),
            None,
            &k,
            &LIMITS,
            &h,
            secure,
            "wiki.home.lab",
            t
        )
        .await),
        None
    );
    assert_eq!(
        ok(resolve_app_cached(s.as_ref(), None, &k, &LIMITS, &h, false, "git.home.lab", t).await),
        None
    );
    let hp = cookie(CookieKind::App.name(secure), &pm.cookie_value);
    assert_eq!(
        ok(resolve_app_cached(
            s.as_ref(),
            None,
            &k,
            &LIMITS,
            &hp,
            secure,
            "git.home.lab",
            t
        )
        .await),
        None
    );
    // A cookie signed by another key: no session.
    let other = match CookieKeys::from_keys(vec![vec![1; 32]]) {
        Some(k) => k,
        None => panic!("keys"),
    };
    assert_eq!(
        ok(resolve_app_cached(
            s.as_ref(),
            None,
            &other,
            &LIMITS,
            &h,
            secure,
            "git.home.lab",
            t
        )
        .await),
        None
    );

    // Within a minute: no write.
    let v = ok(resolve_app_cached(
        s.as_ref(),
        None,
        &k,
        &LIMITS,
        &h,
        secure,
        "git.home.lab",
        t + 59,
    )
    .await);
    assert_eq!(v.map(|v| v.app.last_seen_at), Some(t));
    let stored = ok(s.app_session(&am.token_hash).await)
        .map(|v| (v.app.last_seen_at, v.portal.last_seen_at));
    assert_eq!(stored, Some((t, t)));
    // After a minute: both clocks move, in the store too.
    let v = ok(resolve_app_cached(
        s.as_ref(),
        None,
        &k,
        &LIMITS,
        &h,
        secure,
        "git.home.lab",
        t + 61,
    )
    .await);
    assert_eq!(
        v.map(|v| (v.app.last_seen_at, v.portal.last_seen_at)),
        Some((t + 61, t + 61))
    );
    let stored = ok(s.app_session(&am.token_hash).await)
        .map(|v| (v.app.last_seen_at, v.portal.last_seen_at));
    assert_eq!(stored, Some((t + 61, t + 61)));

    // Idle: 8 h after the last activity the session is dead.
    let idle = 8 * 3600;
    assert!(
        ok(resolve_app_cached(
            s.as_ref(),
            None,
            &k,
            &LIMITS,
            &h,
            secure,
            "git.home.lab",
            t + 61 + idle - 1
        )
        .await)
        .is_some()
    );
    // (that call refreshed it; idle again from there)
    let last = t + 61 + idle - 1;
    assert_eq!(
        ok(resolve_app_cached(
            s.as_ref(),
            None,
            &k,
            &LIMITS,
            &h,
            secure,
            "git.home.lab",
            last + idle
        )
        .await),
        None
    );

    // Portal cookie.
    let hp = cookie(CookieKind::Portal.name(secure), &pm.cookie_value);
    let p = ok(resolve_portal(s.as_ref(), &k, &LIMITS, &hp, secure, last).await);
    assert_eq!(
        p.as_ref().map(|p| p.token_hash.clone()),
        Some(pm.token_hash.clone())
    );
    assert_eq!(p.map(|p| p.session.id), Some(portal.id.clone()));
    assert_eq!(
        ok(resolve_portal(s.as_ref(), &k, &LIMITS, &h, secure, last).await),
        None
    );

    // Revoking the portal session ends the app session's resolution at once.
    assert!(ok(s.revoke_session(&portal.id).await));
    assert_eq!(
        ok(resolve_app_cached(
            s.as_ref(),
            None,
            &k,
            &LIMITS,
            &h,
            secure,
            "git.home.lab",
            last
        )
        .await),
        None
    );
    assert_eq!(
        ok(resolve_portal(s.as_ref(), &k, &LIMITS, &hp, secure, last).await),
        None
    );
}

async fn guest_sessions_end_with_their_credential(s: Arc<dyn Store>) {
    let k = keys();
    let t = now();
    let portal = new_portal_session("guest", None, Some(t + 3600), &LIMITS, t);
    assert_eq!(portal.expires_at, t + 3600);
    let app = new_app_session(&portal, "media.home.lab", &LIMITS, t);
    assert_eq!(app.expires_at, t + 3600);
    let pm = k.mint(CookieKind::Portal);
    ok(s.add_portal_session(&pm.token_hash, &portal).await);
    let am = k.mint(CookieKind::App);
    ok(s.add_app_session(&am.token_hash, &app, &[]).await);
    let h = cookie(CookieKind::App.name(false), &am.cookie_value);
    assert!(
        ok(resolve_app_cached(
            s.as_ref(),
            None,
            &k,
            &LIMITS,
            &h,
            false,
            "media.home.lab",
            t + 3599
        )
        .await)
        .is_some()
    );
    assert_eq!(
        ok(resolve_app_cached(
            s.as_ref(),
            None,
            &k,
            &LIMITS,
            &h,
            false,
            "media.home.lab",
            t + 3600
        )
        .await),
        None
    );
}

type Suite = fn(Arc<dyn Store>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Run one suite against SQLite, then against a private Redis.
async fn both(f: Suite) {
    for b in [sqlite_backend as fn() -> Backend, redis_backend] {
        let backend = b();
        f(Arc::clone(&backend.store)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_app_and_portal_on_both_backends() {
    both(|s| Box::pin(lifecycle(s))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_sessions_end_with_their_credential_on_both_backends() {
    both(|s| Box::pin(guest_sessions_end_with_their_credential(s))).await;
}
