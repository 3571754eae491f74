//! The store conformance suite: the same test code runs against SQLite (a temp
//! file) and Redis (a private `redis-server`), through `Arc<dyn Store>`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stepgate::client_token::ClientToken;
use stepgate::model::{
    AppSession, AttestationProof, Credential, Grant, Invite, PortalSession, Timestamp, Verification,
};
use stepgate::store::redis::RedisStore;
use stepgate::store::sqlite::SqliteStore;
use stepgate::store::{CounterCheck, CounterSwap, CredentialStore, Store, StoreError, TokenStore};
use uuid::Uuid;

use crate::kit::{self, RedisServer};

/// A store plus whatever must live as long as it (temp dir, redis-server).
pub struct Backend {
    pub store: Arc<dyn Store>,
    _guard: Box<dyn std::any::Any + Send>,
}

pub fn sqlite_backend() -> Backend {
    let dir = kit::temp_dir();
    let store = match SqliteStore::open(&dir.path().join("db").join("stepgate.db")) {
        Ok(s) => s,
        Err(e) => panic!("open sqlite: {e}"),
    };
    Backend {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
}

pub fn redis_backend() -> Backend {
    let server = RedisServer::start();
    let store = match RedisStore::open(&server.url(), "test:") {
        Ok(s) => s,
        Err(e) => panic!("open redis: {e}"),
    };
    Backend {
        store: Arc::new(store),
        _guard: Box::new(server),
    }
}

fn now() -> Timestamp {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn ok<T>(r: Result<T, StoreError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("store error: {e}"),
    }
}

pub fn credential(id: &str, user: &str) -> Credential {
    Credential {
        id: id.to_string(),
        user: user.to_string(),
        label: format!("{id} key"),
        passkey: format!("{{\"cred\":\"{id}\"}}"),
        counter: 5,
        aaguid: Uuid::from_u128(0xcb69481e_8ff7_4039_93ec_0a2729a154a8),
        attestation: Some(AttestationProof {
            format: "packed".into(),
            root: "ab".repeat(32),
            aaguid: Uuid::from_u128(0xcb69481e_8ff7_4039_93ec_0a2729a154a8),
        }),
        backup_eligible: true,
        backup_state: false,
        created_at: now() - 100,
        last_used_at: None,
        expires_at: Some(now() + 86_400),
        flagged: false,
    }
}

pub fn verification(cred: &str) -> Verification {
    Verification {
        at: now(),
        credential_id: cred.to_string(),
        credential_label: format!("{cred} key"),
        aaguid: Uuid::nil(),
        backup_eligible: false,
    }
}

pub fn portal(id: &str, user: &str, uv: Option<&str>) -> PortalSession {
    let t = now();
    PortalSession {
        id: id.to_string(),
        user: user.to_string(),
        created_at: t,
        last_seen_at: t,
        expires_at: t + 3600,
        signed_in_with: uv.map(str::to_string),
        client: None,
        last_uv: uv.map(verification),
    }
}

pub fn app(id: &str, p: &PortalSession, host: &str) -> AppSession {
    AppSession {
        id: id.to_string(),
        portal_id: p.id.clone(),
        user: p.user.clone(),
        host: host.to_string(),
        created_at: p.created_at,
        last_seen_at: p.last_seen_at,
        expires_at: p.expires_at,
    }
}

fn grant(rule: &str, cred: &str) -> Grant {
    Grant {
        rule: rule.to_string(),
        verification: verification(cred),
    }
}

// ---------------------------------------------------------------- the suite

async fn once_items_are_read_once(s: Arc<dyn Store>) {
    ok(s.put_once("state:1", b"hello", Duration::from_secs(60))
        .await);
    assert_eq!(ok(s.take_once("state:1").await), Some(b"hello".to_vec()));
    assert_eq!(ok(s.take_once("state:1").await), None);
    assert_eq!(ok(s.take_once("never-put").await), None);
    // Binary values survive.
    let bytes: Vec<u8> = (0..=255).collect();
    ok(s.put_once("bin", &bytes, Duration::from_secs(60)).await);
    assert_eq!(ok(s.take_once("bin").await), Some(bytes));
}

async fn once_items_expire(s: Arc<dyn Store>) {
    ok(s.put_once("short", b"x", Duration::from_millis(300)).await);
    ok(s.put_once("long", b"y", Duration::from_secs(60)).await);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(ok(s.take_once("short").await), None);
    assert_eq!(ok(s.take_once("long").await), Some(b"y".to_vec()));
}

async fn once_items_have_one_winner_among_100(s: Arc<dyn Store>) {
    for round in 0..3 {
        let key = format!("code:{round}");
        ok(s.put_once(&key, b"the code", Duration::from_secs(60)).await);
        let barrier = Arc::new(tokio::sync::Barrier::new(100));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (s, key, barrier) = (Arc::clone(&s), key.clone(), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                s.take_once(&key).await
            }));
        }
        let mut winners = 0;
        for t in tasks {
            match t.await {
                Ok(Ok(Some(v))) => {
                    assert_eq!(v, b"the code");
                    winners += 1;
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => panic!("take_once failed under contention: {e}"),
                Err(e) => panic!("task: {e}"),
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one taker must win");
    }
}

async fn invites_are_single_use_and_expire(s: Arc<dyn Store>) {
    let t = now();
    let inv = Invite {
        user: "alice".into(),
        credential_ttl: Some(86_400),
        expires_at: t + 3600,
    };
    ok(s.add_invite("h1", &inv).await);
    assert_eq!(ok(s.take_invite("h1", t).await), Some(inv.clone()));
    assert_eq!(ok(s.take_invite("h1", t).await), None);

    // Past its expiry (as the caller's clock sees it) an invite is worthless, and gone.
    ok(s.add_invite("h2", &inv).await);
    assert_eq!(ok(s.take_invite("h2", t + 3600).await), None);
    assert_eq!(ok(s.take_invite("h2", t).await), None);

    // Native expiry.
    let short = Invite {
        user: "bob".into(),
        credential_ttl: None,
        expires_at: t + 1,
    };
    ok(s.add_invite("h3", &short).await);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(ok(s.take_invite("h3", t).await), None);

    // 100 concurrent takers: one enrollment.
    ok(s.add_invite("h4", &inv).await);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move { s.take_invite("h4", t).await }));
    }
    let mut winners = 0;
    for task in tasks {
        if let Ok(Ok(Some(_))) = task.await {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn credentials_round_trip(s: Arc<dyn Store>) {
    let a = credential("cred-a", "alice");
    let mut b = credential("cred-b", "alice");
    b.attestation = None;
    b.expires_at = None;
    b.last_used_at = Some(now());
    b.backup_state = true;
    let c = credential("cred-c", "bob");
    for x in [&a, &b, &c] {
        ok(s.add_credential(x).await);
    }
    assert!(matches!(
        s.add_credential(&a).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(ok(s.credential("cred-a").await), Some(a.clone()));
    assert_eq!(ok(s.credential("cred-b").await), Some(b.clone()));
    assert_eq!(ok(s.credential("nope").await), None);
    assert_eq!(ok(s.count_credentials().await), 3);
    let alice = ok(s.credentials(Some("alice")).await);
    let mut ids: Vec<_> = alice.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["cred-a", "cred-b"]);
    assert_eq!(ok(s.credentials(None).await).len(), 3);
    assert!(ok(s.credentials(Some("carol")).await).is_empty());

    assert!(ok(s.rename_credential("cred-a", "laptop").await));
    assert!(!ok(s.rename_credential("nope", "x").await));
    assert_eq!(
        ok(s.credential("cred-a").await).map(|c| c.label),
        Some("laptop".to_string())
    );
}

async fn counters_move_forward_only(s: Arc<dyn Store>) {
    let t = now();
    ok(s.add_credential(&credential("k", "alice")).await); // counter 5
    assert_eq!(
        ok(s.record_use("k", 6, true, t).await),
        CounterCheck::Accepted
    );
    let c = ok(s.credential("k").await);
    assert_eq!(
        c.as_ref()
            .map(|c| (c.counter, c.backup_state, c.last_used_at, c.flagged)),
        Some((6, true, Some(t), false))
    );
    assert_eq!(
        ok(s.record_use("k", 6, true, t + 1).await),
        CounterCheck::Regressed
    );
    let c = ok(s.credential("k").await);
    assert_eq!(
        c.as_ref().map(|c| (c.counter, c.flagged, c.last_used_at)),
        Some((6, true, Some(t)))
    );
    assert_eq!(c.map(|c| c.is_usable(t)), Some(false));
    assert_eq!(
        ok(s.record_use("missing", 1, false, t).await),
        CounterCheck::Missing
    );

    // Authenticators without counters: 0 stays 0 and that is fine.
    let mut z = credential("z", "alice");
    z.counter = 0;
    ok(s.add_credential(&z).await);
    for _ in 0..3 {
        assert_eq!(
            ok(s.record_use("z", 0, false, t).await),
            CounterCheck::Accepted
        );
    }
    // ...but once it counted, going back to 0 is a regression.
    assert_eq!(
        ok(s.record_use("z", 3, false, t).await),
        CounterCheck::Accepted
    );
    assert_eq!(
        ok(s.record_use("z", 0, false, t).await),
        CounterCheck::Regressed
    );

    // Atomic compare: 100 concurrent uses with the same counter, one is accepted.
    ok(s.add_credential(&credential("race", "alice")).await); // counter 5
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            s.record_use("race", 10, false, t).await
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(CounterCheck::Accepted)) => accepted += 1,
            Ok(Ok(CounterCheck::Regressed)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted, 1);
    let c = ok(s.credential("race").await);
    assert_eq!(c.map(|c| (c.counter, c.flagged)), Some((10, true)));
}

async fn portal_sessions_rotate(s: Arc<dyn Store>) {
    let p = portal("p1", "alice", Some("cred-a"));
    ok(s.add_portal_session("tok1", &p).await);
    assert_eq!(ok(s.portal_session("tok1").await), Some(p.clone()));
    assert_eq!(ok(s.portal_session("other").await), None);

    // Rotation without a ceremony keeps last_uv.
    let r = ok(s.rotate_portal_session("tok1", "tok2", None).await);
    assert_eq!(r, Some(p.clone()));
    assert_eq!(ok(s.portal_session("tok1").await), None);
    assert_eq!(ok(s.portal_session("tok2").await), Some(p.clone()));

    // Rotation with a ceremony records it.
    let mut uv = verification("cred-b");
    uv.at += 5;
    let r = ok(s.rotate_portal_session("tok2", "tok3", Some(&uv)).await);
    let mut want = p.clone();
    want.last_uv = Some(uv.clone());
    assert_eq!(r, Some(want.clone()));
    assert_eq!(ok(s.portal_session("tok3").await), Some(want));
    assert_eq!(ok(s.portal_session("tok2").await), None);

    // An old token cannot be rotated again.
    assert_eq!(
        ok(s.rotate_portal_session("tok2", "tok4", None).await),
        None
    );
    assert_eq!(ok(s.portal_session("tok4").await), None);

    // Touch moves the idle clock forward only.
    ok(s.touch_portal_session("p1", p.last_seen_at + 120).await);
    ok(s.touch_portal_session("p1", p.last_seen_at + 60).await);
    assert_eq!(
        ok(s.portal_session("tok3").await).map(|x| x.last_seen_at),
        Some(p.last_seen_at + 120)
    );
    // A session without a ceremony.
    let q = portal("p2", "bob", None);
    ok(s.add_portal_session("tq", &q).await);
    assert_eq!(ok(s.portal_session("tq").await), Some(q));
}

async fn app_sessions_resolve_with_grants(s: Arc<dyn Store>) {
    let p = portal("p1", "alice", Some("cred-a"));
    ok(s.add_portal_session("ptok", &p).await);
    let a = app("a1", &p, "git.home.lab");
    let grants = vec![grant("gitea-admin", "cred-a"), grant("gitea", "cred-b")];
    ok(s.add_app_session("atok", &a, &grants).await);
    let view = ok(s.app_session("atok").await);
    let Some(view) = view else {
        panic!("app session not found")
    };
    assert_eq!(view.app, a);
    assert_eq!(view.portal, p);
    assert_eq!(view.grants, grants);
    assert_eq!(
        ok(s.app_session("ptok").await),
        None,
        "portal token is no app token"
    );
    assert_eq!(
        ok(s.portal_session("atok").await),
        None,
        "app token is no portal token"
    );

    // Touch is visible and monotonic.
    ok(s.touch_app_session("a1", a.last_seen_at + 90).await);
    ok(s.touch_app_session("a1", a.last_seen_at + 30).await);
    let seen = ok(s.app_session("atok").await).map(|v| v.app.last_seen_at);
    assert_eq!(seen, Some(a.last_seen_at + 90));

    // The portal's rotation and new ceremony show through the app view.
    let uv = verification("cred-c");
    ok(s.rotate_portal_session("ptok", "ptok2", Some(&uv)).await);
    let v = ok(s.app_session("atok").await);
    assert_eq!(v.and_then(|v| v.portal.last_uv), Some(uv));

    let b = app("a2", &p, "wiki.home.lab");
    ok(s.add_app_session("btok", &b, &[]).await);
    let listed: Vec<String> = ok(s.app_sessions("p1").await)
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&"a1".to_string()) && listed.contains(&"a2".to_string()));
    assert_eq!(
        ok(s.app_session("btok").await).map(|v| v.grants),
        Some(vec![])
    );

    ok(s.remove_app_session("a1").await);
    assert_eq!(ok(s.app_session("atok").await), None);
    assert!(ok(s.app_session("btok").await).is_some());
    assert_eq!(ok(s.app_sessions("p1").await).len(), 1);

    // An app session for a portal session that is gone resolves to nothing.
    let ghost = portal("ghost", "alice", None);
    ok(
        s.add_app_session("gtok", &app("g1", &ghost, "x.home.lab"), &[])
            .await,
    );
    assert_eq!(ok(s.app_session("gtok").await), None);
}

async fn ending_a_portal_session_ends_its_apps(s: Arc<dyn Store>) {
    let p = portal("p1", "alice", Some("cred-a"));
    let q = portal("p2", "alice", Some("cred-a"));
    ok(s.add_portal_session("pt1", &p).await);
    ok(s.add_portal_session("pt2", &q).await);
    ok(s.add_app_session("at1", &app("a1", &p, "one.lab"), &[])
        .await);
    ok(
        s.add_app_session("at2", &app("a2", &p, "two.lab"), &[grant("r", "cred-a")])
            .await,
    );
    ok(s.add_app_session("at3", &app("a3", &q, "one.lab"), &[])
        .await);

    assert!(ok(s.revoke_session("p1").await));
    assert_eq!(ok(s.portal_session("pt1").await), None);
    assert_eq!(ok(s.app_session("at1").await), None);
    assert_eq!(ok(s.app_session("at2").await), None);
    assert!(ok(s.app_sessions("p1").await).is_empty());
    // The other session is untouched.
    assert!(ok(s.portal_session("pt2").await).is_some());
    assert!(ok(s.app_session("at3").await).is_some());
    assert!(!ok(s.revoke_session("p1").await));
    assert!(!ok(s.revoke_session("nope").await));
    let ids: Vec<String> = ok(s.portal_sessions(None).await)
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, ["p2"]);
}

async fn revoking_a_credential_ends_sessions_resting_on_it(s: Arc<dyn Store>) {
    ok(s.add_credential(&credential("x", "alice")).await);
    ok(s.add_credential(&credential("y", "alice")).await);
    // A: signed in with x.
    let a = portal("pa", "alice", Some("x"));
    ok(s.add_portal_session("ta", &a).await);
    ok(s.add_app_session("taa", &app("aa", &a, "one.lab"), &[])
        .await);
    // B: signed in with y, but an app grant came from x.
    let b = portal("pb", "alice", Some("y"));
    ok(s.add_portal_session("tb", &b).await);
    ok(
        s.add_app_session("tba", &app("ba", &b, "one.lab"), &[grant("admin", "x")])
            .await,
    );
    // C: signed in with x, then stepped up with y (last_uv is y now).
    let c = portal("pc", "alice", Some("x"));
    ok(s.add_portal_session("tc", &c).await);
    ok(
        s.rotate_portal_session("tc", "tc2", Some(&verification("y")))
            .await,
    );
    // D: only y.
    let d = portal("pd", "alice", Some("y"));
    ok(s.add_portal_session("td", &d).await);
    ok(
        s.add_app_session("tda", &app("da", &d, "one.lab"), &[grant("admin", "y")])
            .await,
    );
    // E: signed in with y, stepped up with x later.
    let e = portal("pe", "alice", Some("y"));
    ok(s.add_portal_session("te", &e).await);
    ok(
        s.rotate_portal_session("te", "te2", Some(&verification("x")))
            .await,
    );

    assert!(ok(s.revoke_credential("x").await));
    assert_eq!(ok(s.credential("x").await), None);
    assert_eq!(ok(s.count_credentials().await), 1);
    for t in ["ta", "tb", "tc2", "te2"] {
        assert_eq!(ok(s.portal_session(t).await), None, "{t} rests on x");
    }
    for t in ["taa", "tba"] {
        assert_eq!(ok(s.app_session(t).await), None, "{t} rests on x");
    }
    assert!(ok(s.portal_session("td").await).is_some());
    assert!(ok(s.app_session("tda").await).is_some());
    assert!(!ok(s.revoke_credential("x").await));
}

async fn revoking_a_user_ends_all_their_sessions(s: Arc<dyn Store>) {
    let a1 = portal("a1", "alice", Some("x"));
    let a2 = portal("a2", "alice", None);
    let b1 = portal("b1", "bob", None);
    ok(s.add_portal_session("ta1", &a1).await);
    ok(s.add_portal_session("ta2", &a2).await);
    ok(s.add_portal_session("tb1", &b1).await);
    ok(
        s.add_app_session("xa1", &app("app-a1", &a1, "one.lab"), &[])
            .await,
    );
    ok(
        s.add_app_session("xa2", &app("app-a2", &a2, "two.lab"), &[])
            .await,
    );
    ok(
        s.add_app_session("xb1", &app("app-b1", &b1, "one.lab"), &[])
            .await,
    );
    assert_eq!(ok(s.portal_sessions(Some("alice")).await).len(), 2);

    assert_eq!(ok(s.revoke_user_sessions("alice").await), 2);
    for t in ["ta1", "ta2"] {
        assert_eq!(ok(s.portal_session(t).await), None);
    }
    for t in ["xa1", "xa2"] {
        assert_eq!(ok(s.app_session(t).await), None);
    }
    assert!(ok(s.portal_sessions(Some("alice")).await).is_empty());
    assert!(ok(s.app_session("xb1").await).is_some());
    assert_eq!(ok(s.portal_sessions(None).await).len(), 1);
    assert_eq!(ok(s.revoke_user_sessions("alice").await), 0);
}

async fn sessions_end_at_their_absolute_expiry(s: Arc<dyn Store>) {
    let mut p = portal("p", "alice", None);
    p.expires_at = now() + 1;
    ok(s.add_portal_session("tp", &p).await);
    let mut a = app("a", &p, "one.lab");
    a.expires_at = p.expires_at;
    ok(s.add_app_session("ta", &a, &[]).await);
    assert!(ok(s.app_session("ta").await).is_some());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(ok(s.portal_session("tp").await), None);
    assert_eq!(ok(s.app_session("ta").await), None);
    assert!(ok(s.portal_sessions(None).await).is_empty());
    assert_eq!(ok(s.rotate_portal_session("tp", "tp2", None).await), None);

    // Already expired on arrival: nothing to find.
    let mut old = portal("old", "alice", None);
    old.expires_at = now() - 10;
    ok(s.add_portal_session("told", &old).await);
    assert_eq!(ok(s.portal_session("told").await), None);
}

pub fn client_token(id: &str, user: &str, cred: &str, rules: &[&str]) -> ClientToken {
    let t = now();
    ClientToken {
        id: id.to_string(),
        user: user.to_string(),
        label: format!("{id} on laptop"),
        rules: rules.iter().map(|r| r.to_string()).collect(),
        created_at: t,
        expires_at: t + 30 * 86_400,
        verification: verification(cred),
    }
}

async fn tokens_round_trip(s: Arc<dyn Store>) {
    let mut a = client_token("tok-a", "alice", "cred-a", &["git", "dav"]);
    let mut b = client_token("tok-b", "alice", "cred-b", &["git"]);
    b.created_at -= 10;
    a.verification.backup_eligible = false;
    let c = client_token("tok-c", "bob", "cred-c", &[]);
    ok(s.add_token("hash-a", &a).await);
    ok(s.add_token("hash-b", &b).await);
    ok(s.add_token("hash-c", &c).await);
    assert_eq!(
        ok(s.token("hash-a").await),
        Some(a.clone()),
        "the whole record"
    );
    assert_eq!(ok(s.token("hash-c").await), Some(c.clone()));
    assert_eq!(ok(s.token("tok-a").await), None, "an id is no secret");
    assert_eq!(ok(s.token("nope").await), None);
    // The same id or the same secret twice is refused, and changes nothing.
    let mut again = client_token("tok-a", "mallory", "cred-m", &["admin"]);
    assert!(matches!(
        s.add_token("hash-new", &again).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(ok(s.token("hash-new").await), None);
    again.id = "tok-new".into();
    assert!(matches!(
        s.add_token("hash-a", &again).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(ok(s.token("hash-a").await), Some(a.clone()));

    let ids = |v: Vec<ClientToken>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(ok(s.tokens(None).await)), ["tok-b", "tok-a", "tok-c"]);
    assert_eq!(ids(ok(s.tokens(Some("alice")).await)), ["tok-b", "tok-a"]);
    assert!(ok(s.tokens(Some("carol")).await).is_empty());
    // Tokens are no sessions, and sessions are no tokens.
    assert!(ok(s.portal_sessions(None).await).is_empty());
    assert_eq!(ok(s.app_session("hash-a").await), None);
}

async fn tokens_are_revoked_by_id_and_by_user(s: Arc<dyn Store>) {
    for (id, user) in [
        ("a1", "alice"),
        ("a2", "alice"),
        ("a3", "alice"),
        ("b1", "bob"),
    ] {
        let t = client_token(id, user, "cred", &["git"]);
        ok(s.add_token(&format!("h-{id}"), &t).await);
    }
    assert!(ok(s.revoke_token("a1").await));
    assert_eq!(ok(s.token("h-a1").await), None);
    assert!(!ok(s.revoke_token("a1").await), "already revoked");
    assert!(!ok(s.revoke_token("nope").await));
    assert_eq!(ok(s.tokens(Some("alice")).await).len(), 2);

    assert_eq!(ok(s.revoke_user_tokens("alice").await), 2);
    for h in ["h-a2", "h-a3"] {
        assert_eq!(ok(s.token(h).await), None);
    }
    assert!(ok(s.tokens(Some("alice")).await).is_empty());
    assert_eq!(ok(s.revoke_user_tokens("alice").await), 0);
    assert!(ok(s.token("h-b1").await).is_some(), "bob's token stays");
    assert_eq!(ok(s.tokens(None).await).len(), 1);
    // Revoking a user's sessions is not revoking their tokens (and the reverse).
    assert_eq!(ok(s.revoke_user_sessions("bob").await), 0);
    assert!(ok(s.token("h-b1").await).is_some());
}

async fn tokens_end_at_their_expiry(s: Arc<dyn Store>) {
    let mut t = client_token("short", "alice", "cred", &["git"]);
    t.expires_at = now() + 1;
    ok(s.add_token("h-short", &t).await);
    assert!(ok(s.token("h-short").await).is_some());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(ok(s.token("h-short").await), None);
    assert!(ok(s.tokens(None).await).is_empty());
    assert!(
        !ok(s.revoke_token("short").await),
        "an expired token is gone"
    );

    // Already expired on arrival: nothing to find.
    let mut old = client_token("old", "alice", "cred", &["git"]);
    old.expires_at = now() - 10;
    ok(s.add_token("h-old", &old).await);
    assert_eq!(ok(s.token("h-old").await), None);
    assert!(ok(s.tokens(Some("alice")).await).is_empty());
}

async fn revoking_a_credential_ends_its_tokens(s: Arc<dyn Store>) {
    ok(s.add_credential(&credential("x", "alice")).await);
    ok(s.add_credential(&credential("y", "alice")).await);
    ok(
        s.add_token("h-x1", &client_token("x1", "alice", "x", &["git"]))
            .await,
    );
    ok(
        s.add_token("h-x2", &client_token("x2", "alice", "x", &["dav"]))
            .await,
    );
    ok(
        s.add_token("h-y1", &client_token("y1", "alice", "y", &["git"]))
            .await,
    );
    assert!(ok(s.revoke_credential("x").await));
    assert_eq!(ok(s.token("h-x1").await), None);
    assert_eq!(ok(s.token("h-x2").await), None);
    assert!(ok(s.token("h-y1").await).is_some());
    let left: Vec<String> = ok(s.tokens(None).await).into_iter().map(|t| t.id).collect();
    assert_eq!(left, ["y1"]);
}

/// What one handle (a gateway instance, the CLI) revokes, another's next lookup misses.
async fn token_revocation_reaches_another_handle(one: Arc<dyn Store>, two: Arc<dyn Store>) {
    ok(one
        .add_token("h-1", &client_token("t1", "alice", "x", &["git"]))
        .await);
    ok(one
        .add_token("h-2", &client_token("t2", "alice", "x", &["git"]))
        .await);
    assert!(ok(two.token("h-1").await).is_some());
    assert!(ok(two.revoke_token("t1").await));
    assert_eq!(ok(one.token("h-1").await), None);
    assert_eq!(ok(one.revoke_user_tokens("alice").await), 1);
    assert_eq!(ok(two.token("h-2").await), None);
}

/// The app session lookup returns, in the same call, the current standing of
/// the credentials its grants, last assertion and sign-in name.
async fn app_sessions_carry_credential_standing(s: Arc<dyn Store>) {
    let mut a = credential("cred-a", "alice");
    a.backup_eligible = false;
    ok(s.add_credential(&a).await);
    let mut b = credential("cred-b", "alice");
    b.attestation = None;
    b.expires_at = None;
    ok(s.add_credential(&b).await);
    // cred-gone is never stored.
    let p = portal("p1", "alice", Some("cred-a"));
    ok(s.add_portal_session("ptok", &p).await);
    let grants = vec![grant("r1", "cred-b"), grant("r2", "cred-gone")];
    ok(
        s.add_app_session("atok", &app("a1", &p, "one.lab"), &grants)
            .await,
    );
    let Some(view) = ok(s.app_session("atok").await) else {
        panic!("app session not found")
    };
    let mut ids: Vec<&str> = view.credentials.iter().map(|c| c.id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["cred-a", "cred-b"],
        "a credential that is gone is absent"
    );
    assert_eq!(view.standing("cred-a"), Some(&a.standing()));
    assert_eq!(view.standing("cred-b"), Some(&b.standing()));
    assert_eq!(view.standing("cred-gone"), None);

    // A session made by registering names its credential without any assertion.
    ok(s.add_credential(&credential("cred-r", "bob")).await);
    let mut reg = portal("p2", "bob", None);
    reg.signed_in_with = Some("cred-r".into());
    ok(s.add_portal_session("rtok", &reg).await);
    ok(s.add_app_session("artok", &app("a2", &reg, "one.lab"), &[])
        .await);
    let view = ok(s.app_session("artok").await);
    assert_eq!(
        view.as_ref()
            .map(|v| (v.portal.last_uv.is_none(), v.credentials.len())),
        Some((true, 1))
    );
    // ...and revoking that credential ends it.
    assert!(ok(s.revoke_credential("cred-r").await));
    assert_eq!(ok(s.app_session("artok").await), None);
}

/// A counter that goes back flags the credential (it stays, flagged) and ends
/// every session any ceremony with it touched; a session made with it later
/// sees it flagged.
async fn a_counter_regression_ends_sessions_resting_on_it(s: Arc<dyn Store>) {
    let t = now();
    ok(s.add_credential(&credential("k", "alice")).await); // counter 5
    ok(s.add_credential(&credential("other", "alice")).await);
    let a = portal("pa", "alice", Some("k"));
    ok(s.add_portal_session("ta", &a).await);
    ok(s.add_app_session("taa", &app("aa", &a, "one.lab"), &[])
        .await);
    let b = portal("pb", "alice", Some("other"));
    ok(s.add_portal_session("tb", &b).await);
    ok(
        s.add_app_session("tba", &app("ba", &b, "one.lab"), &[grant("admin", "k")])
            .await,
    );
    let c = portal("pc", "alice", Some("other"));
    ok(s.add_portal_session("tc", &c).await);
    ok(s.add_app_session("tca", &app("ca", &c, "one.lab"), &[])
        .await);

    assert_eq!(
        ok(s.record_use("k", 5, false, t).await),
        CounterCheck::Regressed
    );
    for tok in ["taa", "tba"] {
        assert_eq!(ok(s.app_session(tok).await), None, "{tok} rests on k");
    }
    assert_eq!(ok(s.portal_session("ta").await), None);
    assert!(ok(s.app_session("tca").await).is_some(), "untouched by k");
    assert_eq!(ok(s.credential("k").await).map(|c| c.flagged), Some(true));

    let d = portal("pd", "alice", Some("k"));
    ok(s.add_portal_session("td", &d).await);
    ok(s.add_app_session("tda", &app("da", &d, "one.lab"), &[])
        .await);
    let flagged = ok(s.app_session("tda").await).and_then(|v| v.standing("k").map(|c| c.flagged));
    assert_eq!(flagged, Some(true));
}

/// Every list comes in the one order the `Store` docs name, whatever order
/// the records went in (ties on creation time fall to the id).
async fn lists_come_in_one_order(s: Arc<dyn Store>) {
    let t = now();
    let ids = |v: Vec<String>| v.join(" ");
    for (id, user, at) in [
        ("c-b", "bob", t),
        ("c-9", "alice", t + 1),
        ("c-3", "alice", t),
        ("c-1", "alice", t),
    ] {
        let mut c = credential(id, user);
        c.created_at = at;
        ok(s.add_credential(&c).await);
    }
    let listed = ok(s.credentials(None).await);
    assert_eq!(
        ids(listed.into_iter().map(|c| c.id).collect()),
        "c-1 c-3 c-9 c-b"
    );
    let listed = ok(s.credentials(Some("alice")).await);
    assert_eq!(
        ids(listed.into_iter().map(|c| c.id).collect()),
        "c-1 c-3 c-9"
    );

    let mut portals = Vec::new();
    for (id, user, at) in [
        ("p-b", "bob", t),
        ("p-9", "alice", t + 1),
        ("p-3", "alice", t),
        ("p-1", "alice", t),
    ] {
        let mut p = portal(id, user, Some("c-3"));
        p.created_at = at;
        ok(s.add_portal_session(&format!("tok-{id}"), &p).await);
        portals.push(p);
    }
    let listed = ok(s.portal_sessions(None).await);
    assert_eq!(
        ids(listed.into_iter().map(|p| p.id).collect()),
        "p-1 p-3 p-9 p-b"
    );

    let p = &portals[1];
    for (id, at, grants) in [
        ("a-9", t, vec![grant("r-2", "c-9"), grant("r-1", "c-1")]),
        ("a-1", t + 1, vec![]),
        ("a-5", t, vec![]),
    ] {
        let mut a = app(id, p, "one.lab");
        a.created_at = at;
        ok(s.add_app_session(&format!("tok-{id}"), &a, &grants).await);
    }
    let listed = ok(s.app_sessions(&p.id).await);
    assert_eq!(
        ids(listed.into_iter().map(|a| a.id).collect()),
        "a-5 a-9 a-1"
    );
    let Some(view) = ok(s.app_session("tok-a-9").await) else {
        panic!("app session not found")
    };
    let rules = |g: Vec<Grant>| ids(g.into_iter().map(|g| g.rule).collect());
    assert_eq!(rules(view.grants), "r-2 r-1", "grants in the order given");
    assert_eq!(rules(ok(s.grants_of("a-9").await)), "r-2 r-1");
    assert_eq!(
        ids(view.credentials.into_iter().map(|c| c.id).collect()),
        "c-1 c-3 c-9",
        "standings by credential id"
    );

    for (id, user, at) in [
        ("t-b", "bob", t),
        ("t-9", "alice", t + 1),
        ("t-3", "alice", t),
        ("t-1", "alice", t),
    ] {
        let mut k = client_token(id, user, "c-1", &["git"]);
        k.created_at = at;
        ok(s.add_token(&format!("h-{id}"), &k).await);
    }
    let listed = ok(s.tokens(None).await);
    assert_eq!(
        ids(listed.into_iter().map(|k| k.id).collect()),
        "t-1 t-3 t-9 t-b"
    );
}

/// The primitives `record_use` is built on: a compare-and-set of the counter
/// that reports the counter it found, and a flag that ends the sessions
/// indexed under the credential in the same step.
async fn counter_primitives_compare_and_flag(s: Arc<dyn Store>) {
    let t = now();
    ok(s.add_credential(&credential("k", "alice")).await); // counter 5
    assert_eq!(
        ok(s.set_counter_if("k", 4, 9, true, t).await),
        CounterSwap::Moved(5)
    );
    assert_eq!(
        ok(s.set_counter_if("k", 5, 9, true, t).await),
        CounterSwap::Set
    );
    assert_eq!(
        ok(s.credential("k").await).map(|c| (c.counter, c.backup_state, c.last_used_at)),
        Some((9, true, Some(t)))
    );
    assert_eq!(
        ok(s.set_counter_if("nope", 0, 1, false, t).await),
        CounterSwap::Missing
    );

    let p = portal("p1", "alice", Some("k"));
    ok(s.add_portal_session("ptok", &p).await);
    assert!(ok(s.flag_credential("k").await));
    assert_eq!(ok(s.portal_session("ptok").await), None);
    assert_eq!(ok(s.credential("k").await).map(|c| c.flagged), Some(true));
    assert!(!ok(s.flag_credential("nope").await));
}

async fn store_answers_ping(s: Arc<dyn Store>) {
    ok(s.ping().await);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let b = super::sqlite_backend();
                    super::$name(std::sync::Arc::clone(&b.store)).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let b = super::redis_backend();
                    super::$name(std::sync::Arc::clone(&b.store)).await;
                }
            )*
        }
    };
}

conformance!(
    store_answers_ping,
    once_items_are_read_once,
    once_items_expire,
    once_items_have_one_winner_among_100,
    invites_are_single_use_and_expire,
    credentials_round_trip,
    counters_move_forward_only,
    portal_sessions_rotate,
    app_sessions_resolve_with_grants,
    ending_a_portal_session_ends_its_apps,
    revoking_a_credential_ends_sessions_resting_on_it,
    app_sessions_carry_credential_standing,
    a_counter_regression_ends_sessions_resting_on_it,
    revoking_a_user_ends_all_their_sessions,
    sessions_end_at_their_absolute_expiry,
    tokens_round_trip,
    tokens_are_revoked_by_id_and_by_user,
    tokens_end_at_their_expiry,
    revoking_a_credential_ends_its_tokens,
    lists_come_in_one_order,
    counter_primitives_compare_and_flag,
);

// ------------------------------------------------------- backend-specific

fn redis_store(url: &str, prefix: &str) -> Arc<dyn Store> {
    match RedisStore::open(url, prefix) {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("open redis: {e}"),
    }
}

/// A credential stored before its hash had a `standing` field still reports
/// its standing (read from its `data`), with no model proven.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_credentials_stored_without_standing_still_stand() {
    let server = RedisServer::start();
    let s = redis_store(&server.url(), "old:");
    let mut c = credential("x", "alice");
    c.expires_at = Some(now() + 60);
    ok(s.add_credential(&c).await);
    let client = ::redis::Client::open(server.url()).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let removed: i64 = ::redis::cmd("HDEL")
        .arg("old:cred:x")
        .arg("standing")
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(removed, 1);
    let p = portal("p", "alice", Some("x"));
    ok(s.add_portal_session("ptok", &p).await);
    ok(s.add_app_session("atok", &app("a", &p, "one.lab"), &[])
        .await);
    let standing = ok(s.app_session("atok").await).and_then(|v| v.standing("x").cloned());
    // The credential's data holds the same fields; a legacy one would lack `attestation`.
    assert_eq!(standing, Some(c.standing()));
}

/// Kill Redis mid-run: lookups fail closed within 1 s; once it is back (with its
/// append-only file), the same cookie works again without signing in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_unavailable_then_recovers() {
    let mut server = RedisServer::start_persistent();
    let s = redis_store(&server.url(), "stepgate:");
    let p = portal("p", "alice", Some("x"));
    ok(s.add_portal_session("ptok", &p).await);
    ok(
        s.add_app_session("atok", &app("a", &p, "one.lab"), &[grant("r", "x")])
            .await,
    );
    let before = ok(s.app_session("atok").await);
    assert!(before.is_some());

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let r = s.app_session("atok").await;
        let took = started.elapsed();
        assert!(
            matches!(r, Err(StoreError::Unavailable(_))),
            "expected Unavailable, got {r:?}"
        );
        assert!(took <= Duration::from_secs(1), "took {took:?}");
    }
    let started = Instant::now();
    assert!(matches!(s.ping().await, Err(StoreError::Unavailable(_))));
    assert!(started.elapsed() <= Duration::from_secs(1));

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        match s.app_session("atok").await {
            Ok(v) => break v,
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("store did not recover: {e}"),
        }
    };
    assert_eq!(after, before, "the same session works again");
}

/// A Redis that is not there at all: `Unavailable` within 1 s, never a hang.
#[tokio::test]
async fn redis_absent_is_unavailable_quickly() {
    let s = redis_store(&format!("redis://127.0.0.1:{}/0", kit::free_port()), "x:");
    let started = Instant::now();
    assert!(matches!(s.ping().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(
        s.app_session("whatever").await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(started.elapsed() <= Duration::from_secs(2));
}

/// Two gateway instances on one Redis see each other's sessions and revocations at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_handles_share_revocations() {
    let server = RedisServer::start();
    let one = redis_store(&server.url(), "stepgate:");
    let two = redis_store(&server.url(), "stepgate:");
    let p = portal("p", "alice", Some("x"));
    ok(one.add_credential(&credential("x", "alice")).await);
    ok(one.add_portal_session("ptok", &p).await);
    ok(one
        .add_app_session("atok", &app("a", &p, "one.lab"), &[])
        .await);
    assert!(ok(two.app_session("atok").await).is_some());
    assert!(ok(two.revoke_session("p").await));
    assert_eq!(ok(one.app_session("atok").await), None);

    let q = portal("q", "alice", Some("x"));
    ok(two.add_portal_session("qtok", &q).await);
    ok(two
        .add_app_session("btok", &app("b", &q, "one.lab"), &[])
        .await);
    assert!(ok(one.app_session("btok").await).is_some());
    assert!(ok(one.revoke_credential("x").await));
    assert_eq!(ok(two.app_session("btok").await), None);
    assert_eq!(ok(two.credential("x").await), None);

    token_revocation_reaches_another_handle(Arc::clone(&one), Arc::clone(&two)).await;

    // Another prefix is another world.
    let other = redis_store(&server.url(), "other:");
    ok(one.put_once("k", b"v", Duration::from_secs(60)).await);
    assert_eq!(ok(other.take_once("k").await), None);
    assert_eq!(ok(one.take_once("k").await), Some(b"v".to_vec()));
}

/// The CLI and the server open the same SQLite file: each sees the other's
/// writes at once, and single reads stay single across connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_handles_share_one_file() {
    let dir = kit::temp_dir();
    let path = dir.path().join("stepgate.db");
    let open = || -> Arc<dyn Store> {
        match SqliteStore::open(&path) {
            Ok(s) => Arc::new(s),
            Err(e) => panic!("open: {e}"),
        }
    };
    let (one, two) = (open(), open());
    let p = portal("p", "alice", None);
    ok(one.add_portal_session("ptok", &p).await);
    ok(one
        .add_app_session("atok", &app("a", &p, "one.lab"), &[])
        .await);
    assert!(ok(two.app_session("atok").await).is_some());
    assert!(ok(two.revoke_session("p").await));
    assert_eq!(ok(one.app_session("atok").await), None);
    token_revocation_reaches_another_handle(Arc::clone(&one), Arc::clone(&two)).await;

    let handles: Vec<Arc<dyn Store>> = (0..4).map(|_| open()).collect();
    ok(one.put_once("code", b"c", Duration::from_secs(60)).await);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let s = Arc::clone(&handles[i % 4]);
        tasks.push(tokio::spawn(async move { s.take_once("code").await }));
    }
    let mut winners = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(Some(_))) => winners += 1,
            Ok(Ok(None)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners, 1);
}

/// Reopening a migrated database keeps its data; the default-style nested path is created.
#[tokio::test]
async fn sqlite_reopen_keeps_data() {
    let dir = kit::temp_dir();
    let path = dir.path().join("data").join("nested").join("stepgate.db");
    {
        let s = ok(SqliteStore::open(&path));
        ok(s.add_credential(&credential("x", "alice")).await);
    }
    let s = ok(SqliteStore::open(&path));
    assert_eq!(ok(s.count_credentials().await), 1);
    let conn = match rusqlite::Connection::open(&path) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let (v, mode): (i64, String) = match conn.query_row(
        "SELECT (SELECT user_version FROM pragma_user_version), (SELECT journal_mode FROM pragma_journal_mode)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    ) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    assert_eq!((v, mode.as_str()), (4, "wal"));
}

/// A database made by an older stepgate (schema version 1: no tokens, no attestation proofs) is
/// brought up to date on open, keeping its data.
#[tokio::test]
async fn sqlite_migrates_a_version_1_database() {
    let dir = kit::temp_dir();
    let path = dir.path().join("stepgate.db");
    {
        let s = ok(SqliteStore::open(&path));
        ok(s.add_credential(&credential("x", "alice")).await);
    }
    let sql = |q: &str| match rusqlite::Connection::open(&path).and_then(|c| c.execute_batch(q)) {
        Ok(()) => {}
        Err(e) => panic!("{q}: {e}"),
    };
    sql("DROP TABLE tokens;
         ALTER TABLE credentials DROP COLUMN attestation;
         ALTER TABLE credentials ADD COLUMN attestation_root TEXT;
         ALTER TABLE portal_sessions DROP COLUMN signed_in_with;
         ALTER TABLE portal_sessions DROP COLUMN client;
         PRAGMA user_version = 1;");
    let s = ok(SqliteStore::open(&path));
    assert!(ok(s.credential("x").await).is_some());
    ok(s.add_token("h", &client_token("t", "alice", "x", &["git"]))
        .await);
    assert!(ok(s.token("h").await).is_some());
}

/// The Redis store runs its I/O on its own runtime: the runtime that first used
/// it may go away (a start-up `block_on`) and other runtimes keep using it.
#[test]
fn redis_store_outlives_the_runtime_that_first_used_it() {
    let server = RedisServer::start();
    let s = redis_store(&server.url(), "rt:");
    let p = portal("p", "alice", None);
    let first = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => panic!("{e}"),
    };
    ok(first.block_on(s.add_portal_session("tok", &p)));
    drop(first);
    let second = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(ok(second.block_on(s.portal_session("tok"))), Some(p));
}
