//! Sign in once, through the real server: a portal session opens every app
//! whose rule it already satisfies with no page and no ceremony, while a
//! `step_up` still asks; a user outside `allow` gets a 403 page; signing out
//! (at the portal or on an app host) ends every app session; the account page
//! explains each session. Real Chromium and real Caddy/nginx run the same
//! shapes in `browser` and `front_proxies`.

use serde_json::json;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::kit::{NetBrowser, TestConfig, TestGateway, csrf_of};

/// A gateway with the portal at https://auth.test serving [`APPS`].
fn start() -> TestGateway {
    TestGateway::start(TestConfig::behind_proxy().body(APPS))
}

/// Two app hosts with plain rules, a `scope: rule` step-up, a young
/// `scope: session` step-up, and an admins-only host.
const APPS: &str = r#"users:
  alice: { name: Alice, groups: [admins] }
  bob: { name: Bob }
upstreams: { demo: "builtin:whoami" }
rules:
  - name: photos-admin
    hosts: [photos.test]
    paths: [/admin, /admin/**]
    upstream: demo
    policy: passkey
    step_up: { max_age: 5m, scope: rule }
  - name: photos-recent
    hosts: [photos.test]
    paths: [/recent/**]
    upstream: demo
    policy: passkey
    step_up: { max_age: 1m, scope: session }
  - { name: ops, hosts: [ops.test], upstream: demo, policy: passkey, allow: [group:admins] }
  - { name: photos, hosts: [photos.test], upstream: demo, policy: passkey }
  - { name: app, hosts: [app.test], upstream: demo, policy: passkey }
"#;

/// A browser of `user` with a passkey, signed in at app.test by a ceremony.
fn signed_in(g: &TestGateway, user: &str) -> (NetBrowser, SoftPasskey) {
    let mut b = NetBrowser::new(g.addr);
    let mut key = SoftPasskey::new(true);
    b.enroll_as(g, &mut key, user, "laptop");
    // Registering signs in, but this test starts from a ceremony at one app.
    b.jar.clear();
    let (rd, state) = b.login_params("https://app.test/");
    let begun = b.api(
        "login/begin",
        &json!({ "rd": rd, "state": state, "username": user }),
    );
    let cred = crate::kit::authenticator::get(&mut key, &begun["publicKey"], &b.client_data());
    let done = b.api(
        "login/finish",
        &json!({ "ceremony": begun["ceremony"], "credential": cred }),
    );
    let callback = done["redirect"].as_str().unwrap_or_default().to_string();
    assert_eq!(b.get(&callback).status, 303);
    (b, key)
}

fn counter(g: &TestGateway, series: &str) -> u64 {
    g.admin_get("/metrics")
        .body
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn a_second_app_opens_with_no_ceremony_and_step_up_still_asks() {
    let g = start();
    let (mut b, mut key) = signed_in(&g, "alice");
    let silent = "stepgate_signins_total{how=\"silent\",rule=\"photos\"}";
    let before = counter(&g, silent);
    // Another app, plain rule: straight through the callback, no login page.
    let (r, at) = b.navigate("https://photos.test/albums");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(at, "https://photos.test/albums");
    assert_eq!(r.echoed("remote-user"), vec!["alice"]);
    assert_eq!(r.echoed("stepgate-rule"), vec!["photos"]);
    assert!(
        counter(&g, silent) > before,
        "the silent continue is counted"
    );
    // A `scope: rule` step-up on that host still asks: the login page, not the app.
    let (r, at) = b.navigate("https://photos.test/admin");
    assert!(at.starts_with("https://auth.test/.stepgate/login?"), "{at}");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Sign in with a passkey"), "{}", r.body);
    // After the ceremony, it opens; and again later with no new ceremony.
    assert_eq!(
        b.sign_in(&mut key, "https://photos.test/admin"),
        "https://photos.test/admin"
    );
    let (r, _) = b.navigate("https://photos.test/admin");
    assert_eq!(r.echoed("stepgate-rule"), vec!["photos-admin"]);
}

/// The callback URL a silent continue answers with, for `app` (which must
/// send `b` to the portal): the app's redirect, then the portal's at once.
fn silent_callback(b: &mut NetBrowser, app: &str) -> String {
    let r = b.get(app);
    assert_eq!(r.status, 302, "{app}: {r:?}");
    let login = r.header("location").unwrap_or_default().to_string();
    let r = b.get(&login);
    let to = r.header("location").unwrap_or_default().to_string();
    assert!(
        matches!(r.status, 302 | 303) && to.contains("/.stepgate/callback?code="),
        "{login} should continue silently: {r:?}"
    );
    to
}

#[test]
fn a_silently_minted_code_works_only_in_its_browser_at_its_origin() {
    let g = start();
    let (mut b, _key) = signed_in(&g, "alice");
    // Another browser (one that has been to the app, and one that has not).
    let callback = silent_callback(&mut b, "https://photos.test/albums");
    let mut victim = NetBrowser::new(g.addr);
    assert_eq!(victim.get("https://photos.test/").status, 302);
    assert_eq!(victim.get(&callback).status, 400);
    assert!(
        !victim
            .jar
            .get("photos.test")
            .is_some_and(|j| j.contains_key("__Host-stepgate_app"))
    );
    let callback = silent_callback(&mut b, "https://photos.test/albums");
    assert_eq!(NetBrowser::new(g.addr).get(&callback).status, 400);
    // The same browser at another port of the host.
    let callback = silent_callback(&mut b, "https://photos.test/albums");
    let elsewhere = callback.replacen("https://photos.test/", "https://photos.test:8443/", 1);
    assert_ne!(elsewhere, callback);
    assert_eq!(b.get(&elsewhere).status, 400);
    // Its own browser, at its origin, gets in.
    let callback = silent_callback(&mut b, "https://photos.test/albums");
    let r = b.get(&callback);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(b.get("https://photos.test/albums").status, 200);
}

#[test]
fn a_young_session_assertion_opens_a_scope_session_rule_until_it_is_too_old() {
    let g = start();
    let (mut b, _key) = signed_in(&g, "alice");
    // The sign-in assertion is seconds old: `scope: session`, max_age 1m, opens.
    let (r, at) = b.navigate("https://photos.test/recent/x");
    assert_eq!(r.status, 200, "{at}: {r:?}");
    assert_eq!(r.echoed("stepgate-rule"), vec!["photos-recent"]);
    // Past a minute the portal asks for the passkey again.
    g.clock.advance(61);
    let (r, at) = b.navigate("https://photos.test/recent/x");
    assert!(at.starts_with("https://auth.test/.stepgate/login?"), "{at}");
    assert!(r.body.contains("at most 1m old"), "{}", r.body);
}

#[test]
fn a_registration_opens_plain_rules_but_no_step_up() {
    let g = start();
    let mut b = NetBrowser::new(g.addr);
    let mut key = SoftPasskey::new(true);
    b.enroll_as(&g, &mut key, "alice", "laptop");
    let (r, _) = b.navigate("https://photos.test/albums");
    assert_eq!(
        r.echoed("remote-user"),
        vec!["alice"],
        "a registration signs in"
    );
    for step_up in ["https://photos.test/admin", "https://photos.test/recent/x"] {
        let (_, at) = b.navigate(step_up);
        assert!(
            at.starts_with("https://auth.test/.stepgate/login?"),
            "{step_up}: {at}"
        );
    }
}

#[test]
fn a_user_outside_allow_gets_a_403_page_not_a_ceremony() {
    let g = start();
    let (mut b, _key) = signed_in(&g, "bob");
    let (r, at) = b.navigate("https://ops.test/");
    assert!(at.starts_with("https://auth.test/.stepgate/login?"), "{at}");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("may not open this page"), "{}", r.body);
    assert!(
        !b.jar
            .get("ops.test")
            .is_some_and(|j| j.contains_key("__Host-stepgate_app"))
    );
}

#[test]
fn signing_out_at_the_portal_ends_every_app_session() {
    let g = start();
    let (mut b, _key) = signed_in(&g, "alice");
    assert_eq!(b.navigate("https://photos.test/").0.status, 200);
    let page = b.get("https://auth.test/.stepgate/logout");
    assert_eq!(page.status, 200);
    let csrf = csrf_of(&page.body);
    assert!(!csrf.is_empty(), "{}", page.body);
    let form = format!("csrf={csrf}");
    let done = b.request(
        "POST",
        "https://auth.test/.stepgate/logout",
        &form,
        "application/x-www-form-urlencoded",
    );
    assert_eq!(done.status, 200);
    assert!(done.body.contains("signed out"), "{}", done.body);
    for app in ["https://app.test/", "https://photos.test/"] {
        let r = b.get(app);
        assert_eq!(r.status, 302, "{app} after signing out: {r:?}");
    }
}

#[test]
fn signing_out_on_an_app_host_ends_every_app_session() {
    let g = start();
    let (mut b, _key) = signed_in(&g, "alice");
    assert_eq!(b.navigate("https://photos.test/").0.status, 200);
    // A GET never signs out: it shows the button.
    let page = b.get("https://photos.test/.stepgate/logout");
    assert_eq!(page.status, 200);
    assert_eq!(b.get("https://app.test/").status, 200, "still signed in");
    // A POST from another site is refused, and changes nothing.
    let csrf = csrf_of(&page.body);
    let cookies: Vec<String> = b.jar["photos.test"]
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let body = format!("csrf={csrf}");
    let r = g.raw(&format!(
        "POST /.stepgate/logout HTTP/1.1\nHost: photos.test\nX-Forwarded-Proto: https\nOrigin: https://evil.test\nCookie: {}\nContent-Type: application/x-www-form-urlencoded\nContent-Length: {}\nConnection: close\n\n{body}",
        cookies.join("; "),
        body.len()
    ));
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(b.get("https://app.test/").status, 200, "still signed in");
    let done = b.request(
        "POST",
        "https://photos.test/.stepgate/logout",
        &format!("csrf={csrf}"),
        "application/x-www-form-urlencoded",
    );
    assert_eq!(done.status, 200);
    assert!(done.body.contains("signed out"), "{}", done.body);
    for app in ["https://app.test/", "https://photos.test/"] {
        assert_eq!(b.get(app).status, 302, "{app} after signing out");
    }
    let (_, at) = b.navigate("https://app.test/");
    assert!(
        at.starts_with("https://auth.test/.stepgate/login?"),
        "the portal session ended too: {at}"
    );
}

/// Signing out through one gateway instance ends the app sessions that
/// instance minted on every instance sharing the store, within 1 s.
#[test]
fn signing_out_on_one_instance_ends_app_sessions_on_every_instance() {
    let redis = crate::kit::RedisServer::start();
    let on_redis = || {
        TestConfig::behind_proxy()
            .redis(&redis.url(), "sso:")
            .body(APPS)
    };
    let a = TestGateway::start(on_redis());
    let key = a.dir.path().join("cookie.key");
    let b = TestGateway::start(on_redis().cookie_key(&key));
    let (mut on_a, _key) = signed_in(&a, "alice");
    assert_eq!(on_a.navigate("https://photos.test/").0.status, 200);
    // The same browser, its requests now reaching instance b.
    let mut on_b = NetBrowser::new(b.addr);
    on_b.jar = on_a.jar.clone();
    for app in ["https://app.test/", "https://photos.test/"] {
        assert_eq!(on_b.get(app).status, 200, "{app} through b");
    }
    let page = on_a.get("https://auth.test/.stepgate/logout");
    let done = on_a.request(
        "POST",
        "https://auth.test/.stepgate/logout",
        &format!("csrf={}", csrf_of(&page.body)),
        "application/x-www-form-urlencoded",
    );
    assert_eq!(done.status, 200);
    let signed_out = std::time::Instant::now();
    for app in ["https://app.test/", "https://photos.test/"] {
        crate::kit::until_status(
            302,
            signed_out,
            std::time::Duration::from_secs(1),
            &format!("{app} through b after signing out on a"),
            || on_b.get(app).status,
        );
    }
}

#[test]
fn the_account_page_explains_each_session() {
    let g = start();
    let (mut b, mut key) = signed_in(&g, "alice");
    b.sign_in(&mut key, "https://photos.test/admin");
    let page = b.get("https://auth.test/.stepgate/account");
    assert_eq!(page.status, 200);
    for want in [
        "Firefox 133.0 on Linux",
        "127.0.0.1",
        "app.test",
        "photos.test",
        "rule photos-admin: checked",
        "counts until",
        "End this session",
    ] {
        assert!(page.body.contains(want), "{want} missing: {}", page.body);
    }
    // Another session of alice's; end every other one from here.
    let (mut phone, _) = signed_in_again(&g, &mut key);
    let page = b.get("https://auth.test/.stepgate/account");
    assert!(
        page.body.contains("End every other session"),
        "{}",
        page.body
    );
    let csrf = csrf_of(&page.body);
    let r = b.request(
        "POST",
        "https://auth.test/.stepgate/account/end-others",
        &format!("csrf={csrf}"),
        "application/x-www-form-urlencoded",
    );
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(
        phone.get("https://app.test/").status,
        302,
        "the other session ended"
    );
    assert_eq!(b.get("https://app.test/").status, 200, "this one stays");
}

/// A second browser of alice's, signed in with the same passkey.
fn signed_in_again(g: &TestGateway, key: &mut SoftPasskey) -> (NetBrowser, ()) {
    let mut b = NetBrowser::new(g.addr);
    b.user_agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1".into();
    assert_eq!(b.sign_in(key, "https://app.test/"), "https://app.test/");
    (b, ())
}
