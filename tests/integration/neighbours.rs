//! What a neighbour can do, through the real server: reach an app's mapped
//! identity header through another upstream at the same address, carry a
//! client token to an app through a rule that does not take it, and lock a
//! valid token or a correct assertion out with failures of its own. Each test
//! is named after what it tries.

use serde_json::json;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::kit::apps::basic;
use crate::kit::authenticator::assertion;
use crate::kit::echo::EchoUpstream;
use crate::kit::{NetBrowser, TestConfig, TestGateway, uv};

/// Gitea twice at one address: `gitea` maps the user to `X-WEBAUTH-USER`,
/// `gitea-public` (a bypass rule's upstream) maps nothing; `api` takes tokens
/// from its own header and keeps them, `git` takes them from Basic.
fn gitea(echo: &EchoUpstream) -> TestGateway {
    let at = echo.addr;
    TestGateway::start(TestConfig::new().trusting_loopback().body(&format!(
        r#"users:
  alice: {{ name: Alice }}
upstreams:
  gitea: {{ url: "http://{at}", identity_headers: {{ user: X-WEBAUTH-USER }} }}
  gitea-public: "http://{at}"
rules:
  - {{ name: public, hosts: [git.test], paths: [/explore/**], upstream: gitea-public, policy: bypass }}
  - {{ name: git, hosts: [git.test], paths: [/repo.git/**], upstream: gitea, policy: passkey, tokens: {{ from: basic }} }}
  - {{ name: api, hosts: [git.test], paths: [/api/**], upstream: gitea-public, policy: passkey, tokens: {{ from: {{ header: X-Api-Token }}, keep: true }} }}
  - {{ name: web, hosts: [git.test], upstream: gitea-public, policy: passkey }}
"#
    )))
}

#[test]
fn a_mapped_name_never_reaches_the_app_through_another_upstream_at_its_address() {
    let echo = EchoUpstream::start();
    let g = gitea(&echo);
    let spoofed = [
        ("X-WEBAUTH-USER", "admin"),
        ("x-webauth-user", "admin"),
        ("X_WEBAUTH_USER", "admin"),
        ("X.Webauth.User", "admin"),
    ];
    // Through the bypass rule's upstream, which maps nothing itself.
    let r = g.get("git.test", "/explore/repos", &spoofed);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.echoed("x-webauth-user").is_empty() && !r.body.contains("admin"),
        "a client's X-WEBAUTH-USER reached Gitea through the bypass rule:\n{}",
        r.body
    );
    // Through a passkey rule on that upstream: alice, and no client copy.
    let cookie = g.sign_in("alice", "git.test", Some(uv(g.now(), &[], true)), vec![]);
    let mut headers = vec![("Cookie", cookie.as_str())];
    headers.extend_from_slice(&spoofed);
    let r = g.get("git.test", "/issues", &headers);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("remote-user"), vec!["alice"]);
    assert!(!r.body.contains("admin"), "{}", r.body);
    // The upstream that maps it gets the user under its name, never a client's.
    let (_, t) = g.stored_token("alice", &["git"], g.now(), 30);
    let auth = basic("git", &t);
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend_from_slice(&spoofed);
    let r = g.get("git.test", "/repo.git/info/refs", &headers);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("x-webauth-user"), vec!["alice"]);
    assert!(!r.body.contains("admin"), "{}", r.body);
}

#[test]
fn a_token_sent_to_every_path_of_a_host_reaches_no_app_unless_a_rule_keeps_it() {
    let echo = EchoUpstream::start();
    let g = gitea(&echo);
    let (_, t) = g.stored_token("alice", &["git", "api"], g.now(), 30);
    let (_, other) = g.stored_token("alice", &["git"], g.now(), 30);
    // `git clone https://git:sgt_…@git.test/…` sends this to every path.
    let as_git = basic("git", &t);
    let as_user = basic(&t, "x");
    let bearer = format!("Bearer {t}");
    for (path, carrier) in [
        ("/explore/repos", ("Authorization", as_git.as_str())),
        ("/explore/repos", ("Authorization", as_user.as_str())),
        ("/explore/repos", ("Authorization", bearer.as_str())),
        ("/explore/repos", ("X-Api-Token", t.as_str())),
    ] {
        let r = g.get("git.test", path, &[carrier]);
        assert_eq!(r.status, 200, "{path} {carrier:?}: {r:?}");
        assert!(
            !r.body.contains(&t[4..]) && !r.body.contains(&carrier.1[6..]),
            "{path}: the token reached the app:\n{}",
            r.body
        );
    }
    // An app's own credentials on a bypass path are the app's business.
    let own = basic("alice", "hunter2");
    let r = g.get("git.test", "/explore/repos", &[("Authorization", &own)]);
    assert_eq!(r.echoed("authorization"), vec![own.clone()], "{r:?}");

    // A passkey rule without tokens: the session lets the request in, the token stays out.
    let cookie = g.sign_in("alice", "git.test", Some(uv(g.now(), &[], true)), vec![]);
    let r = g.get(
        "git.test",
        "/issues",
        &[("Cookie", &cookie), ("Authorization", &as_git)],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.echoed("authorization").is_empty(), "{}", r.body);

    // keep: true keeps exactly its own place; a token elsewhere still goes.
    let r = g.get(
        "git.test",
        "/api/v1/user",
        &[
            ("X-Api-Token", &t),
            ("Authorization", &format!("Bearer {other}")),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("x-api-token"), vec![t.clone()]);
    assert!(!r.body.contains(&other[4..]), "{}", r.body);

    // Forward-auth answers never carry the token: the front proxy removes it
    // (see deploy/), stepgate's 200 only says who the user is.
    let r = g.get(
        "git.test",
        "/.stepgate/authz/forward-auth",
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "git.test"),
            ("X-Forwarded-Uri", "/explore/repos"),
            ("Authorization", &as_git),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("authorization").is_none(), "{r:?}");
}

#[test]
fn failed_guesses_from_a_network_never_lock_a_valid_token_out() {
    let echo = EchoUpstream::start();
    let g = TestGateway::start(TestConfig::new().trusting_loopback().body(&format!(
        r#"rate_limit: {{ per_ip_per_minute: 3, per_user_per_minute: 30 }}
users: {{ alice: {{}} }}
upstreams: {{ app: "http://{}" }}
rules:
  - {{ name: git, hosts: [git.test], upstream: app, policy: passkey, tokens: {{ from: basic }} }}
"#,
        echo.addr
    )));
    let (_, good) = g.stored_token("alice", &["git"], g.now(), 30);
    let from = |ip: &'static str, token: &str| {
        let auth = basic("git", token);
        g.get(
            "git.test",
            "/repo.git/info/refs",
            &[("Authorization", &auth), ("X-Forwarded-For", ip)],
        )
        .status
    };
    let guess = |i: usize| format!("sgt_{}{i}", "A".repeat(42));
    for i in 0..3 {
        assert_eq!(from("2001:db8:1:2::a", &guess(i)), 401, "guess {i}");
    }
    // The network's misses are used up, for every address in its /64...
    assert_eq!(from("2001:db8:1:2::b", &guess(3)), 429);
    assert_eq!(from("2001:db8:1:2::b", "sgt_nope"), 429);
    // ...but not for the next /64,
    assert_eq!(from("2001:db8:1:3::1", &guess(4)), 401);
    // and alice's valid token, from the guesser's own address, is served.
    assert_eq!(from("2001:db8:1:2::a", &good), 200);
    assert_eq!(from("2001:db8:1:2::b", &good), 200);
    assert_eq!(
        from("2001:db8:1:2::b", &guess(5)),
        429,
        "a miss still waits"
    );
}

#[test]
fn a_neighbours_failures_never_refuse_a_users_correct_assertion() {
    let g = TestGateway::start(TestConfig::behind_proxy().body(
        r#"rate_limit: { per_ip_per_minute: 4, per_user_per_minute: 2 }
users: { alice: { name: Alice }, bob: { name: Bob } }
upstreams: { demo: "builtin:whoami" }
rules:
  - { name: app, hosts: [app.test], upstream: demo, policy: passkey }
"#,
    ));
    let mut key = SoftPasskey::new(true);
    NetBrowser::at(g.addr, "192.0.2.1").enroll_as(&g, &mut key, "alice", "laptop");
    // Alice and a neighbour behind one NAT address.
    let mut alice = NetBrowser::at(g.addr, "203.0.113.7");
    let mut neighbour = NetBrowser::at(g.addr, "203.0.113.7");
    let (rd, state) = alice.login_params("https://app.test/");
    let begun = alice.api(
        "login/begin",
        &json!({ "rd": rd, "state": state, "username": "alice" }),
    );
    // The neighbour uses up the address's ceremonies and fails as bob and as
    // nobody, then more.
    let mut refused = false;
    for _ in 0..6 {
        let (s, _) = neighbour.try_api("login/begin", &json!({ "rd": "", "username": "bob" }));
        refused |= s == 429;
    }
    assert!(refused, "the address's ceremonies ran out");
    for _ in 0..6 {
        let bogus = json!({ "ceremony": "nope", "credential": { "id": "x" } });
        let (s, _) = neighbour.try_api("login/finish", &bogus);
        assert_ne!(s, 200);
    }
    // Alice's assertion, begun before, is judged on its own.
    let finish = assertion(&mut key, &begun, &alice.client_data());
    let (s, done) = alice.try_api("login/finish", &finish);
    assert_eq!(s, 200, "a neighbour's failures refused alice: {done}");
    let redirect = done["redirect"].as_str().unwrap_or_default();
    assert!(redirect.contains("/.stepgate/callback?code="), "{done}");
}
