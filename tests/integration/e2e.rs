//! End to end through the real pingora server: enroll a software passkey,
//! sign in, follow the callback on the app host, reach the app with identity
//! headers, then a step-up rule, its `max_age` expiry and a new step-up, all
//! over HTTP (the gateway sits behind a trusted proxy that says https).

use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::kit::{NetBrowser, TestConfig, TestGateway};

#[test]
fn enroll_sign_in_step_up_and_expiry_through_the_server() {
    let g = TestGateway::start(TestConfig::behind_proxy().body(
        r#"
users:
  alice: { name: Alice, email: alice@test, groups: [admins] }
upstreams: { demo: "builtin:whoami" }
rules:
  - name: pin
    hosts: [app.test]
    paths: [/admin, /admin/**]
    upstream: demo
    policy: passkey
    step_up: { max_age: 5m, scope: rule }
  - { name: app, hosts: [app.test], upstream: demo, policy: passkey }
"#,
    ));
    let mut b = NetBrowser::new(g.addr);
    // Not signed in: to the portal.
    let r = b.get("https://app.test/inbox?x=1");
    assert_eq!(r.status, 302);
    let location = r.header("location").unwrap_or_default();
    assert!(
        location.starts_with(
            "https://auth.test/.stepgate/login?rd=https%3A%2F%2Fapp%2Etest%2Finbox%3Fx%3D1&state="
        ),
        "{location}"
    );
    let mut key = SoftPasskey::new(true);
    b.enroll_by_invite(&g, &mut key);
    // Sign in for the app; the callback sets the host-only app cookie.
    let landed = b.sign_in(&mut key, "https://app.test/inbox?x=1");
    assert_eq!(landed, "https://app.test/inbox?x=1");
    assert!(
        b.jar
            .get("app.test")
            .is_some_and(|j| j.contains_key("__Host-stepgate_app"))
    );
    let r = b.get("https://app.test/inbox?x=1");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("remote-user"), vec!["alice"]);
    assert_eq!(r.echoed("remote-email"), vec!["alice@test"]);
    assert_eq!(r.echoed("stepgate-rule"), vec!["app"]);
    assert_eq!(r.echoed("x-forwarded-proto"), vec!["https"]);
    assert!(
        r.echoed("cookie").iter().all(|c| !c.contains("stepgate")),
        "our cookie never reaches the app: {}",
        r.body
    );
    // The step-up rule wants its own ceremony.
    let r = b.get("https://app.test/admin/users");
    assert_eq!(r.status, 302, "{r:?}");
    let landed = b.sign_in(&mut key, "https://app.test/admin/users");
    assert_eq!(landed, "https://app.test/admin/users");
    let r = b.get("https://app.test/admin/users");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("stepgate-rule"), vec!["pin"]);
    let at: i64 = r
        .echoed("stepgate-verified-at")
        .first()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((g.now() - at).abs() <= 5, "verified just now: {at}");
    // Five minutes later the step-up has expired; the app itself still opens.
    g.clock.advance(301);
    assert_eq!(b.get("https://app.test/admin/users").status, 302);
    assert_eq!(b.get("https://app.test/inbox").status, 200);
    // A new ceremony opens it again.
    b.sign_in(&mut key, "https://app.test/admin/users");
    assert_eq!(b.get("https://app.test/admin/users").status, 200);
}
