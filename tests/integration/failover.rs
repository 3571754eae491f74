//! Redis Sentinel failover under load: a real primary, replica and three
//! sentinels, two stepgate servers on the Sentinel form of `store.redis`, a
//! passkey sign-in through the portal, then the primary is SIGKILLed while
//! both servers answer a steady request loop.

use std::time::{Duration, Instant};

use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::kit::NetBrowser;
use crate::kit::sentinel::{MASTER_NAME, SentinelGroup};
use crate::kit::traffic::{RequestLoop, Sample};
use crate::kit::{TestConfig, TestGateway, tokio_rt};

/// The config of one server on the group's sentinels.
fn config(sentinels: &str) -> TestConfig {
    TestConfig::behind_proxy()
        .store(&format!(
            "redis: {{ sentinels: {sentinels}, master_name: {MASTER_NAME}, prefix: \"failover:\" }}"
        ))
        .body(
            r#"users: { alice: { name: Alice } }
upstreams: { demo: "builtin:whoami" }
rules:
  - { name: app, hosts: [app.test], upstream: demo, policy: passkey }
"#,
        )
}

/// Enroll a software passkey by invite and sign in through `g`'s portal over
/// HTTP; returns the app cookie the callback set on `app.test`.
fn sign_in_through_the_portal(g: &TestGateway) -> String {
    let mut b = NetBrowser::new(g.addr);
    let mut key = SoftPasskey::new(true);
    b.enroll_by_invite(g, &mut key);
    let landed = b.sign_in(&mut key, "https://app.test/");
    assert_eq!(landed, "https://app.test/");
    match b
        .jar
        .get("app.test")
        .and_then(|j| j.get("__Host-stepgate_app"))
    {
        Some(v) => format!("__Host-stepgate_app={v}"),
        None => panic!("no app cookie after sign-in: {:?}", b.jar),
    }
}

/// A browser navigation to the app: a lost session would answer 302, not 401.
fn app_request(cookie: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\nX-Forwarded-Proto: https\r\nAccept: text/html\r\nCookie: {cookie}\r\n\r\n"
    )
}

/// What one server answered around the failover.
struct Judged {
    unavailable: usize,
    /// 503s before the kill (store calls that timed out under load).
    slow_before: usize,
    allowed: usize,
    /// First and last 503 after the kill, relative to it.
    window: Option<(Duration, Duration)>,
    /// The first 200 after the kill and after the last 503, relative to the kill.
    back: Option<Duration>,
}

/// Check every answer: never a 200 without alice, only 200 or 503.
fn judge(name: &str, samples: &[Sample], killed: Instant) -> Judged {
    let mut j = Judged {
        unavailable: 0,
        slow_before: 0,
        allowed: 0,
        window: None,
        back: None,
    };
    for s in samples {
        let r = match &s.outcome {
            Ok(r) => r,
            Err(e) => panic!("gateway {name}: connection error: {e}"),
        };
        let since = s.at.checked_duration_since(killed);
        match r.status {
            200 => {
                assert_eq!(
                    r.echoed("remote-user"),
                    vec!["alice"],
                    "gateway {name}: 200 without alice: {}",
                    r.body
                );
                j.allowed += 1;
                if let Some(t) = since {
                    j.back.get_or_insert(t);
                }
            }
            // Before the kill a 503 can only mean a store call that outran its
            // timeout on a loaded machine: failing closed, as it must.
            503 if since.is_none() => j.slow_before += 1,
            503 => {
                let t = since.unwrap_or_default();
                j.unavailable += 1;
                j.window = Some((j.window.map_or(t, |w| w.0), t));
                j.back = None;
            }
            other => panic!(
                "gateway {name}: {other} during the failover (only 200 or 503 may be): {r:?}"
            ),
        }
    }
    j
}

/// Judge one server's samples, check it recovered in time and steadily, print its figures.
fn check_recovery(name: &str, samples: &[Sample], killed: Instant, promoted: Duration) {
    let j = judge(name, samples, killed);
    let back = j
        .back
        .unwrap_or_else(|| panic!("gateway {name}: no 200 after the failover"));
    assert!(
        back <= promoted + Duration::from_secs(15),
        "gateway {name}: back {back:?} after the kill"
    );
    let mut tail = samples.iter().rev().take_while(|s| s.at > killed + back);
    assert!(
        tail.all(|s| matches!(&s.outcome, Ok(r) if r.status == 200)),
        "gateway {name} flapped after recovery"
    );
    println!(
        "failover: gateway {name}: {} requests, {} allowed (all as alice), {} answered 503 ({} of them before the kill), 503 window {:?}, serving again {back:?} after the kill",
        samples.len(),
        j.allowed,
        j.unavailable + j.slow_before,
        j.slow_before,
        j.window.map(|(first, last)| last.saturating_sub(first)),
    );
}

/// Poll `g` until it answers `want`; any other status than `also` fails, and so does `deadline`.
fn wait_for_status(
    name: &str,
    g: &TestGateway,
    cookie: &str,
    want: u16,
    also: &[u16],
    deadline: Instant,
) {
    loop {
        let r = crate::kit::try_send(g.addr, app_request(cookie).as_bytes());
        let status = r.as_ref().map_or(0, |r| r.status);
        if status == want {
            return;
        }
        assert!(also.contains(&status), "gateway {name}: {r:?}");
        assert!(
            Instant::now() < deadline,
            "gateway {name}: no {want} in time: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sentinel_failover_fails_closed_then_serves_the_same_session() {
    let mut group = SentinelGroup::start();
    let sentinels = group.yaml_list();
    let a = TestGateway::start(config(&sentinels));
    let b = TestGateway::start(config(&sentinels).cookie_key(&a.dir.path().join("cookie.key")));
    let gateways = [("a", &a), ("b", &b)];
    let cookie = sign_in_through_the_portal(&a);
    // The sign-in is on the replica too before the primary dies.
    group.wait_replicated();
    for (name, g) in gateways {
        wait_for_status(
            name,
            g,
            &cookie,
            200,
            &[],
            Instant::now() + Duration::from_secs(5),
        );
    }

    let pause = Duration::from_millis(20);
    let loops =
        gateways.map(|(_, g)| RequestLoop::start(g.addr, app_request(&cookie), pause, 3000));
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    group.primary.kill();
    let promoted = group.wait_for_promotion(killed, Duration::from_secs(30));
    // Both serve the session again within 15 s of the promotion; then 1 s more of traffic.
    for (name, g) in gateways {
        wait_for_status(
            name,
            g,
            &cookie,
            200,
            &[503],
            killed + promoted + Duration::from_secs(15),
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    println!("failover: sentinels promoted the replica {promoted:?} after the primary was killed");
    for ((name, _), samples) in gateways.iter().zip(loops.map(RequestLoop::finish)) {
        check_recovery(name, &samples, killed, promoted);
    }

    // A revocation after the failover reaches both servers within 1 s.
    let store = crate::kit::own_store(&b.gw);
    let ended = tokio_rt().block_on(store.revoke_user_sessions("alice"));
    assert!(matches!(ended, Ok(1)), "{ended:?}");
    let revoked = Instant::now();
    for (name, g) in gateways {
        wait_for_status(
            name,
            g,
            &cookie,
            302,
            &[200],
            revoked + Duration::from_secs(1),
        );
    }
    println!(
        "failover: revocation refused by both servers {:?} after it was made",
        revoked.elapsed()
    );
}

/// In the Sentinel form a revocation or a flagged passkey must survive a
/// failover: a connected replica confirms it (`WAIT`), or it is reported as
/// not done (503, retry). With no replica connected there is nothing a failover
/// could promote over it, so it stands.
#[test]
fn revocations_and_flags_wait_for_a_replica() {
    use crate::store::{credential, portal};
    use stepgate::store::{CounterCheck, StoreError};

    let mut group = SentinelGroup::start();
    let config = TestConfig::new().store(&format!(
        "redis: {{ sentinels: {}, master_name: {MASTER_NAME}, prefix: \"durable:\" }}",
        group.yaml_list()
    ));
    let yaml = config.yaml(([127, 0, 0, 1], 0).into(), None);
    let store = match stepgate::store::open(
        &crate::kit::runtime(&yaml).boot.store,
        std::sync::Arc::new(stepgate::clock::SystemClock),
    ) {
        Ok(s) => s,
        Err(e) => panic!("store: {e}"),
    };
    let rt = tokio_rt();
    let add = |id: &str| {
        let r = rt
            .block_on(store.add_portal_session(&format!("hash-{id}"), &portal(id, "alice", None)));
        assert!(r.is_ok(), "{r:?}");
    };
    add("p1");
    assert!(matches!(rt.block_on(store.revoke_session("p1")), Ok(true)));
    assert!(
        rt.block_on(store.add_credential(&credential("c1", "alice")))
            .is_ok()
    );
    assert!(matches!(
        rt.block_on(store.record_use("c1", 7, false, 1)),
        Ok(CounterCheck::Accepted)
    ));

    // A stalled replica: connected, acknowledging nothing.
    group.replica.signal("STOP");
    add("p2");
    let r = rt.block_on(store.revoke_session("p2"));
    assert!(
        matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("no replica confirmed")),
        "{r:?}"
    );
    // Done on the primary all the same: the session is gone there.
    assert!(matches!(
        rt.block_on(store.portal_session("hash-p2")),
        Ok(None)
    ));
    // A counter that goes back flags the passkey: also confirmed, or reported.
    let r = rt.block_on(store.record_use("c1", 3, false, 2));
    assert!(matches!(&r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(matches!(rt.block_on(store.credential("c1")), Ok(Some(c)) if c.flagged));
    // An ordinary counter step waits for no replica.
    assert!(matches!(
        rt.block_on(store.record_use("c1", 9, false, 3)),
        Ok(CounterCheck::Accepted)
    ));

    // Gone for good (no replica connected): nothing could be promoted over a write.
    group.replica.kill();
    add("p3");
    assert!(matches!(rt.block_on(store.revoke_session("p3")), Ok(true)));
}
