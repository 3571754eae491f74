//! Attacks on signing in, through the real server: login CSRF (a callback code
//! opened by another browser), codes redeemed at another origin, an idle
//! portal session behind a code, locking a user out, telling users apart, and
//! open redirects. Each test is named after what it tries.

use serde_json::{Value, json};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::kit::authenticator::{Client, assertion, get};
use crate::kit::{NetBrowser, TestConfig, TestGateway};

/// A gateway with the portal at https://auth.test behind a trusted proxy.
fn start(idle: &str) -> TestGateway {
    TestGateway::start(TestConfig::behind_proxy().session(idle, "7d").body(
        r#"users:
  alice: { name: Alice, groups: [admins] }
  bob: { name: Bob }
upstreams: { demo: "builtin:whoami" }
rules:
  - name: pin
    hosts: [app.test]
    paths: [/admin, /admin/**]
    upstream: demo
    policy: passkey
    step_up: { max_age: 5m, scope: rule }
  - name: reports
    hosts: [app.test]
    paths: [/reports, /reports/**]
    upstream: demo
    policy: passkey
    step_up: { max_age: 5m, scope: rule }
  - { name: ops, hosts: [ops.test], upstream: demo, policy: passkey, allow: [group:admins] }
  - { name: app, hosts: [app.test], upstream: demo, policy: passkey }
"#,
    ))
}

/// Alice's browser, with a passkey enrolled by invite.
fn alice(g: &TestGateway) -> (NetBrowser, SoftPasskey) {
    let mut b = NetBrowser::new(g.addr);
    let mut key = SoftPasskey::new(true);
    b.enroll_by_invite(g, &mut key);
    (b, key)
}

fn has_app_cookie(b: &NetBrowser) -> bool {
    b.jar
        .get("app.test")
        .is_some_and(|j| j.contains_key("__Host-stepgate_app"))
}

#[test]
fn a_callback_code_opened_by_another_browser_signs_nobody_in() {
    let g = start("8h");
    let (mut attacker, mut key) = alice(&g);
    let (rd, state) = attacker.login_params("https://app.test/");
    let callback = attacker.ceremony(&mut key, &rd, &state);
    assert!(callback.contains("/.stepgate/callback?code="), "{callback}");
    // The victim's browser has been to the app (it holds a state of its own)
    // and is made to open the attacker's callback link.
    let mut victim = NetBrowser::new(g.addr);
    assert_eq!(victim.get("https://app.test/").status, 302);
    let r = victim.get(&callback);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        !has_app_cookie(&victim),
        "the victim is signed in as the attacker"
    );
    // A browser that never went near the app is refused too.
    let (rd, state) = attacker.login_params("https://app.test/");
    let callback = attacker.ceremony(&mut key, &rd, &state);
    let mut fresh = NetBrowser::new(g.addr);
    assert_eq!(fresh.get(&callback).status, 400);
    assert!(!has_app_cookie(&fresh));
    // (Each code was used up by those tries.) The browser that was sent to
    // the portal gets in with a code of its own.
    assert_eq!(attacker.get(&callback).status, 400);
    let (rd, state) = attacker.login_params("https://app.test/");
    let callback = attacker.ceremony(&mut key, &rd, &state);
    assert_eq!(attacker.get(&callback).status, 303);
    assert!(has_app_cookie(&attacker));
}

#[test]
fn a_callback_code_is_redeemed_only_at_its_origin() {
    let g = start("8h");
    let (mut b, mut key) = alice(&g);
    let (rd, state) = b.login_params("https://app.test/inbox");
    let callback = b.ceremony(&mut key, &rd, &state);
    // Same host, same browser (cookies ignore ports), another port.
    let elsewhere = callback.replacen("https://app.test/", "https://app.test:8443/", 1);
    assert_ne!(elsewhere, callback);
    let r = b.get(&elsewhere);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(!has_app_cookie(&b));
}

#[test]
fn a_ceremony_for_a_port_other_than_the_apps_mints_no_code() {
    let g = start("8h");
    let (mut b, mut key) = alice(&g);
    // The app sent this browser to the portal with a binding for its origin;
    // someone rewrites rd to another port of the same host. Whatever listens
    // there sees the browser's cookies (cookies ignore ports): no code may
    // go there at all.
    let (_, state) = b.login_params("https://app.test/");
    let landed = b.ceremony(&mut key, "https://app.test:4444/", &state);
    assert!(!landed.contains("code="), "{landed}");
    assert!(landed.starts_with("https://auth.test/"), "{landed}");
    assert!(!has_app_cookie(&b));
}

/// A browser that signed in at the portal (and so holds a portal session).
fn victim_signed_in(g: &TestGateway) -> NetBrowser {
    let (mut victim, mut key) = alice(g);
    victim.sign_in(&mut key, "https://app.test/");
    victim
}

/// Where the portal sends the victim for an attacker's login URL (`rd` and
/// the binding `state` the attacker obtained).
fn victim_opens(victim: &mut NetBrowser, rd: &str, state: &str) -> String {
    let login = format!(
        "https://auth.test/.stepgate/login?rd={}&state={state}",
        url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
    );
    let r = victim.get(&login);
    r.header("location").unwrap_or_default().to_string()
}

#[test]
fn another_port_of_an_app_host_gets_no_binding_and_no_silent_code() {
    let g = start("8h");
    let mut victim = victim_signed_in(&g);
    // The attacker runs something on app.test:8443 and asks stepgate for a
    // binding as if a browser had come there.
    let mut attacker = NetBrowser::new(g.addr);
    let r = attacker.get("https://app.test:8443/");
    assert_eq!(r.status, 400, "an unserved port is refused: {r:?}");
    assert!(r.header("set-cookie").is_none(), "{r:?}");
    // Even with a binding made for the real origin, the portal never sends
    // a signed-in browser to that port with a code.
    let (_, state) = attacker.login_params("https://app.test/");
    let to = victim_opens(&mut victim, "https://app.test:8443/", &state);
    assert!(!to.contains("code="), "a code went to another port: {to}");
    // A callback at that port is refused before any code is looked at.
    let r = attacker.get("https://app.test:8443/.stepgate/callback?code=x");
    assert_eq!(r.status, 400, "{r:?}");
}

#[test]
fn a_made_up_name_under_a_wildcard_gets_no_binding_and_no_code() {
    let g = TestGateway::start(TestConfig::behind_proxy().body(
        r#"users: { alice: { name: Alice } }
upstreams: { demo: "builtin:whoami" }
served: { hosts: [photos.sub.test] }
rules:
  - { name: app, hosts: [app.test], upstream: demo, policy: passkey }
  - { name: sub, hosts: ["*.sub.test"], upstream: demo, policy: passkey }
"#,
    ));
    let mut victim = victim_signed_in(&g);
    // A listed name under the pattern continues silently.
    let (r, at) = victim.navigate("https://photos.sub.test/x");
    assert_eq!(r.status, 200, "{at}: {r:?}");
    assert_eq!(r.echoed("remote-user"), vec!["alice"]);
    // A made-up one is never bound to a browser…
    let mut attacker = NetBrowser::new(g.addr);
    let r = attacker.get("https://evil.sub.test/");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.header("set-cookie").is_none(), "{r:?}");
    // …and the portal never sends a code there, whatever binding comes along.
    let (_, state) = attacker.login_params("https://app.test/");
    let to = victim_opens(&mut victim, "https://evil.sub.test/", &state);
    assert!(!to.contains("code="), "a code went to a made-up name: {to}");
}

#[test]
fn the_callback_refuses_an_idle_expired_portal_session() {
    let g = start("1m");
    let (mut b, mut key) = alice(&g);
    b.sign_in(&mut key, "https://app.test/");
    // 50 s later the portal session is still alive (and not yet touched:
    // that happens a minute after its last use); a step-up starts.
    g.clock.advance(50);
    let (rd, state) = b.login_params("https://app.test/admin");
    let callback = b.ceremony(&mut key, &rd, &state);
    assert!(callback.contains("code="), "{callback}");
    // The code is young, but its portal session has now been idle too long.
    g.clock.advance(15);
    let r = b.get(&callback);
    assert_eq!(r.status, 400, "{r:?}");
    let r = b.get("https://app.test/admin");
    assert_ne!(r.status, 200, "{r:?}");
}

#[test]
fn a_new_sign_in_never_inherits_another_portal_sessions_grants() {
    let g = start("8h");
    // Alice steps up for /admin on a shared browser and walks away.
    let (mut b, mut alice_key) = alice(&g);
    b.sign_in(&mut alice_key, "https://app.test/");
    b.sign_in(&mut alice_key, "https://app.test/admin");
    assert_eq!(b.get("https://app.test/admin").status, 200);
    // Bob signs in at the portal on the same browser (a portal session of
    // his own) and steps up on app.test for a rule alice's session lacks.
    let mut bob_key = SoftPasskey::new(true);
    b.enroll_as(&g, &mut bob_key, "bob", "phone");
    let (rd, state) = b.login_params("https://app.test/reports");
    let begun = b.api(
        "login/begin",
        &json!({ "rd": rd, "state": state, "username": "bob" }),
    );
    let finish = assertion(&mut bob_key, &begun, &b.client_data());
    let done = b.api("login/finish", &finish);
    let callback = done["redirect"].as_str().unwrap_or_default().to_string();
    assert!(callback.contains("/.stepgate/callback?code="), "{done}");
    assert_eq!(b.get(&callback).status, 303);
    let r = b.get("https://app.test/reports");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("bob"), "{}", r.body);
    // The app session the callback made is bob's, with bob's grant only:
    // alice's step-up for /admin stayed behind with her portal session.
    let r = b.get("https://app.test/admin");
    assert_eq!(
        r.status, 302,
        "bob reached /admin on alice's step-up: {r:?}"
    );
}

/// An assertion for `victim_id` signed by another passkey (`key`, registered
/// as `own_id`): a forgery that fails verification against the victim's key.
fn forged_finish(
    b: &mut NetBrowser,
    key: &mut SoftPasskey,
    own_id: &str,
    victim_id: &str,
) -> (u16, Value) {
    let begun = b.api("login/begin", &json!({ "rd": "", "username": "alice" }));
    let mut opts = begun["publicKey"].clone();
    opts["allowCredentials"] = json!([{ "type": "public-key", "id": own_id }]);
    let mut cred = get(key, &opts, &Client::default());
    cred["id"] = victim_id.into();
    cred["rawId"] = victim_id.into();
    b.try_api(
        "login/finish",
        &json!({ "ceremony": begun["ceremony"], "credential": cred }),
    )
}

#[test]
fn strangers_cannot_lock_a_user_out() {
    let g = start("8h");
    let (_, mut key) = alice(&g);
    let first_id = |user: &str| {
        crate::kit::tokio_rt()
            .block_on(g.store.credentials(Some(user)))
            .unwrap_or_default()
            .first()
            .map(|c| c.id.clone())
            .unwrap_or_default()
    };
    let id = first_id("alice");
    // The stranger has a passkey of their own (as bob) to sign forgeries with.
    let mut forger = SoftPasskey::new(true);
    NetBrowser::new(g.addr).enroll_as(&g, &mut forger, "bob", "bob's key");
    let own = first_id("bob");
    // A stranger names alice again and again, then fails verifications
    // against her passkey until they are slowed down.
    let mut stranger = NetBrowser::at(g.addr, "198.51.100.66");
    for i in 0..40 {
        let (s, v) = stranger.try_api("login/begin", &json!({ "rd": "", "username": "alice" }));
        assert_eq!(s, 200, "named begin {i}: {v}");
    }
    let mut limited = false;
    for _ in 0..35 {
        let (s, v) = forged_finish(&mut stranger, &mut forger, &own, &id);
        assert_ne!(s, 200, "a forged assertion passed: {v}");
        if s == 429 {
            limited = true;
            break;
        }
    }
    assert!(
        limited,
        "30 failed verifications a minute from one client are enough"
    );
    // Alice, from her own address, signs in at once.
    let mut b = NetBrowser::at(g.addr, "192.0.2.10");
    assert_eq!(
        b.sign_in(&mut key, "https://app.test/"),
        "https://app.test/"
    );
}

#[test]
fn named_sign_in_begins_answer_alike_for_every_name() {
    let g = start("8h");
    let (_, _key) = alice(&g);
    let mut stranger = NetBrowser::new(g.addr);
    let shape = |v: &Value| -> Vec<String> {
        let mut keys: Vec<String> = v["publicKey"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        let entry = &v["publicKey"]["allowCredentials"][0];
        keys.push(format!("entry: {:?}", entry.as_object().map(|o| o.len())));
        keys
    };
    let mut shapes = Vec::new();
    // alice: passkeys; bob: none; nobody: no such user; alice again for a page
    // she may open, bob for one he may not.
    for (name, rd) in [
        ("alice", ""),
        ("bob", ""),
        ("nobody", ""),
        ("alice", "https://ops.test/"),
        ("bob", "https://ops.test/"),
    ] {
        let (s, v) = stranger.try_api("login/begin", &json!({ "rd": rd, "username": name }));
        assert_eq!(s, 200, "{name} {rd}: {v}");
        assert!(
            !v.to_string().contains("laptop"),
            "a passkey label leaked: {v}"
        );
        assert!(
            v["publicKey"]["allowCredentials"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "{name}: {v}"
        );
        shapes.push(shape(&v));
    }
    assert!(shapes.windows(2).all(|w| w[0] == w[1]), "{shapes:?}");
    // Decoys are stable, like real ids.
    let id = |v: Value| v["publicKey"]["allowCredentials"][0]["id"].clone();
    let (_, a) = stranger.try_api("login/begin", &json!({ "username": "nobody" }));
    let (_, b) = stranger.try_api("login/begin", &json!({ "username": "nobody" }));
    assert_eq!(id(a), id(b));
}

#[test]
fn open_redirect_targets_land_on_the_portal() {
    let g = start("8h");
    let (mut b, mut key) = alice(&g);
    for rd in [
        "//evil.test/",
        "/\\evil.test/",
        "https:evil.test",
        "..;/",
        "https://app.test\\@evil.test/",
        "https:\\\\evil.test/",
        "https://evil.test/",
        "https://app.test@evil.test/",
    ] {
        let begun = b.api("login/begin", &json!({ "rd": rd, "username": "alice" }));
        let cred = get(&mut key, &begun["publicKey"], &Client::default());
        let done = b.api(
            "login/finish",
            &json!({ "ceremony": begun["ceremony"], "credential": cred }),
        );
        assert_eq!(
            done["redirect"], "https://auth.test/.stepgate/account",
            "rd {rd:?}"
        );
    }
}
