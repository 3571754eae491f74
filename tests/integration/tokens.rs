//! Client tokens and mapped identity headers through the real server, one
//! test per attack: a client's copy of a mapped header in any spelling, a
//! token in the wrong place, a token for another rule, an expired, revoked or
//! too-old token, a token resting on a revoked or flagged passkey, a browser
//! cookie on a token-only rule, and guessing tokens (misses rate limited).

use crate::kit::apps::basic;
use crate::kit::{Response, TOKEN_CREDENTIAL, TestConfig, TestGateway, tokio_rt, uv};

/// The token tests' sections, failed token checks limited to `limit` a minute.
fn body(limit: u32) -> String {
    format!("rate_limit: {{ per_ip_per_minute: {limit}, per_user_per_minute: 30 }}\n{RULES}")
}

const RULES: &str = r#"users:
  alice: { name: Alice, email: alice@home.lab, groups: [admins, staff] }
  bob: { name: Bob }
upstreams:
  app:
    url: builtin:whoami
    identity_headers: { user: X-WEBAUTH-USER, email: X-WEBAUTH-EMAIL, name: X-WEBAUTH-NAME, groups: X-WEBAUTH-GROUPS }
  kept: builtin:whoami
rules:
  - { name: public, hosts: [app.test], paths: [/public/**], upstream: app, policy: bypass }
  - { name: git, hosts: [app.test], paths: [/git/**], upstream: app, policy: passkey, tokens: { from: basic } }
  - name: fresh
    hosts: [app.test]
    paths: [/fresh/**]
    upstream: app
    policy: passkey
    tokens: { from: bearer }
    step_up: { max_age: 5m, scope: rule }
  - { name: hdr, hosts: [app.test], paths: [/hdr/**], upstream: kept, policy: passkey, tokens: { from: { header: X-Stepgate-Token }, keep: true } }
  - { name: admins, hosts: [app.test], paths: [/admins/**], upstream: app, policy: passkey, allow: [group:admins], tokens: { from: basic } }
  - { name: web, hosts: [app.test], upstream: app, policy: passkey }
"#;

fn start(limit: u32) -> TestGateway {
    TestGateway::start(TestConfig::new().trusting_loopback().body(&body(limit)))
}

/// Run `f` on a store handle of its own (as the CLI or another instance would).
fn with_store<T>(
    g: &TestGateway,
    f: impl AsyncFnOnce(&dyn stepgate::store::Store) -> Result<T, stepgate::store::StoreError>,
) -> T {
    let result = tokio_rt().block_on(async {
        let store = crate::kit::own_store(&g.gw);
        f(store.as_ref()).await
    });
    match result {
        Ok(v) => v,
        Err(e) => panic!("store: {e}"),
    }
}

fn challenge(r: &Response) -> &str {
    r.header("www-authenticate").unwrap_or_default()
}

/// A client's claims to be root, in the mapped names, in every spelling.
const SPOOFED: [(&str, &str); 7] = [
    ("X-WEBAUTH-USER", "root"),
    ("x-webauth-user", "root"),
    ("X_WEBAUTH_USER", "root"),
    ("X.Webauth.User", "root"),
    ("X-Webauth_Email", "root@evil"),
    ("X-WEBAUTH-GROUPS", "root"),
    ("X-WEBAUTH-NAME", "root"),
];

#[test]
fn mapped_identity_headers_reach_the_app_and_a_clients_copies_never_do() {
    let g = start(120);
    let cookie = g.sign_in("alice", "app.test", Some(uv(g.now(), &[], true)), vec![]);
    let mut headers = vec![("Cookie", cookie.as_str())];
    headers.extend_from_slice(&SPOOFED);
    let r = g.get("app.test", "/inbox", &headers);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("x-webauth-user"), vec!["alice"]);
    assert_eq!(r.echoed("x-webauth-email"), vec!["alice@home.lab"]);
    assert_eq!(r.echoed("x-webauth-name"), vec!["Alice"]);
    assert_eq!(r.echoed("x-webauth-groups"), vec!["admins,staff"]);
    assert_eq!(r.echoed("remote-user"), vec!["alice"]);
    assert!(
        !r.body.contains("root"),
        "a client's copy reached the app:\n{}",
        r.body
    );

    // A bypass rule sends no identity, and no client copy either.
    let r = g.get("app.test", "/public/x", &SPOOFED);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.echoed("x-webauth-user").is_empty(), "{}", r.body);
    assert!(
        !r.body.contains("root"),
        "a client's copy reached the app:\n{}",
        r.body
    );

    // Forward-auth: the 200 carries the mapped names too, every one (empty
    // where there is no value), so the front proxy overwrites a client's copy.
    let describe = |uri: &'static str| {
        vec![
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "app.test"),
            ("X-Forwarded-Uri", uri),
        ]
    };
    let mut h = describe("/inbox");
    h.push(("Cookie", &cookie));
    let r = g.get("app.test", "/.stepgate/authz/forward-auth", &h);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-webauth-user"), Some("alice"));
    assert_eq!(r.header("x-webauth-groups"), Some("admins,staff"));
    let r = g.get(
        "app.test",
        "/.stepgate/authz/forward-auth",
        &describe("/public/x"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    for name in [
        "x-webauth-user",
        "x-webauth-email",
        "x-webauth-name",
        "x-webauth-groups",
    ] {
        assert_eq!(r.header(name), Some(""), "{name}: {r:?}");
    }
}

#[test]
fn tokens_are_accepted_only_where_for_and_while_the_rule_says() {
    let g = start(120);
    let now = g.now();
    let (_, t) = g.stored_token("alice", &["git", "fresh", "hdr"], now, 30);
    let auth = basic("anyone", &t);
    let r = g.get("app.test", "/git/x", &[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("remote-user"), vec!["alice"]);
    assert_eq!(r.echoed("stepgate-rule"), vec!["git"]);
    assert_eq!(r.echoed("stepgate-verified-at"), vec![now.to_string()]);
    assert!(
        r.echoed("authorization").is_empty(),
        "the token reached the app"
    );
    assert!(r.header("set-cookie").is_none(), "a token made a session");
    // keep: true passes the carrier on.
    let r = g.get("app.test", "/hdr/x", &[("X-Stepgate-Token", &t)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.echoed("x-stepgate-token"), vec![t.clone()]);

    // In the wrong place it is no token: 401 with the rule's challenge.
    let bearer = format!("Bearer {t}");
    let as_user = basic(&t, "x");
    let cookie = format!("token={t}");
    let wrong: [(&str, Vec<(&str, &str)>); 6] = [
        ("/git/x", vec![("Authorization", &bearer)]),
        ("/git/x", vec![("X-Stepgate-Token", &t)]),
        ("/git/x", vec![("Authorization", &as_user)]),
        ("/git/x", vec![("Cookie", &cookie)]),
        (
            "/git/x",
            vec![("Authorization", &auth), ("Authorization", &auth)],
        ),
        ("/hdr/x", vec![("Authorization", &bearer)]),
    ];
    for (path, headers) in &wrong {
        let r = g.get("app.test", path, headers);
        assert_eq!(r.status, 401, "{path} {headers:?}: {r:?}");
        assert!(r.header("location").is_none(), "{r:?}");
    }
    let r = g.get("app.test", &format!("/git/x?access_token={t}"), &[]);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(
        challenge(&r).starts_with("Basic realm=\"stepgate\""),
        "{r:?}"
    );

    // For another rule: refused, the bearer challenge saying why.
    let (_, git_only) = g.stored_token("alice", &["git"], now, 30);
    let r = g.get(
        "app.test",
        "/fresh/x",
        &[("Authorization", &format!("Bearer {git_only}"))],
    );
    assert_eq!(r.status, 401, "{r:?}");
    assert!(challenge(&r).contains("error=\"invalid_token\""), "{r:?}");
    // A rule without tokens ignores one: no session, no entry.
    let r = g.get("app.test", "/inbox", &[("Authorization", &auth)]);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(challenge(&r).starts_with("StepUp "), "{r:?}");
    // A user outside allow gets 403, token or not.
    let (_, bobs) = g.stored_token("bob", &["admins"], now, 30);
    let r = g.get(
        "app.test",
        "/admins/x",
        &[("Authorization", &basic("b", &bobs))],
    );
    assert_eq!(r.status, 403, "{r:?}");

    // A browser's session alone opens no token-only rule, and is not sent away to sign in.
    let session = g.sign_in("alice", "app.test", Some(uv(now, &[], true)), vec![]);
    let browser = [("Cookie", session.as_str()), ("Accept", "text/html")];
    assert_eq!(g.get("app.test", "/inbox", &browser).status, 200);
    let r = g.get("app.test", "/git/x", &browser);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.header("location").is_none(), "{r:?}");
    assert!(challenge(&r).starts_with("Basic "), "{r:?}");

    // Forward-auth judges tokens the same way.
    let fa = |authz: &str| {
        let h = [
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "app.test"),
            ("X-Forwarded-Uri", "/git/x"),
            ("Authorization", authz),
        ];
        g.get("app.test", "/.stepgate/authz/forward-auth", &h)
    };
    let r = fa(&auth);
    assert_eq!(
        (r.status, r.header("remote-user")),
        (200, Some("alice")),
        "{r:?}"
    );
    assert_eq!(fa(&bearer).status, 401);
}

#[test]
fn a_token_never_beats_freshness_expiry_or_revocation() {
    let g = start(120);
    let now = g.now();
    let get = |path: &str, authz: &str| g.get("app.test", path, &[("Authorization", authz)]);
    // max_age 5m: a token minted 400 s ago is too old from the start.
    let (_, old) = g.stored_token("alice", &["fresh"], now - 400, 30);
    let r = get("/fresh/x", &format!("Bearer {old}"));
    assert_eq!(r.status, 401, "{r:?}");
    assert!(
        challenge(&r).contains("older than this address allows"),
        "{r:?}"
    );

    let (id, t) = g.stored_token("alice", &["git", "fresh"], now, 30);
    let (_, bystander) = g.stored_token("alice", &["git"], now, 30);
    let (bobs_id, bobs) = g.stored_token("bob", &["git"], now, 30);
    let bearer = format!("Bearer {t}");
    assert_eq!(get("/fresh/x", &bearer).status, 200);
    // A second instance on the same store.
    let db = match &g.gw.snapshot().config.boot.store {
        stepgate::config::StoreSettings::Sqlite { path } => path.clone(),
        other => panic!("{other:?}"),
    };
    let shared = TestConfig::new().trusting_loopback().sqlite(&db);
    let other = TestGateway::start(shared.body(&body(120)));
    let on_other = |authz: &str| other.get("app.test", "/git/x", &[("Authorization", authz)]);
    assert_eq!(on_other(&basic("x", &t)).status, 200);

    // Revoked (as `stepgate tokens revoke` does): refused on both instances at once.
    assert!(with_store(&g, async |s| s.revoke_token(&id).await));
    assert_eq!(get("/git/x", &basic("x", &t)).status, 401);
    assert_eq!(on_other(&basic("x", &t)).status, 401);
    assert_eq!(
        get("/git/x", &basic("x", &bystander)).status,
        200,
        "only that token ended"
    );

    // Bob's passkey flagged as a possible clone (its counter went backwards): his token ends.
    let cred = format!("{TOKEN_CREDENTIAL}-bob");
    with_store(&g, async |s| s.record_use(&cred, 5, false, now).await);
    let check = with_store(&g, async |s| s.record_use(&cred, 3, false, now).await);
    assert_eq!(check, stepgate::store::CounterCheck::Regressed);
    assert_eq!(on_other(&basic("x", &bobs)).status, 401);
    assert!(
        with_store(&g, async |s| s.tokens(Some("bob")).await)
            .iter()
            .any(|t| t.id == bobs_id)
    );

    // Five minutes on, the fresh rule refuses the token; thirty days on, every rule does.
    g.clock.advance(301);
    assert_eq!(get("/fresh/x", &format!("Bearer {bystander}")).status, 401);
    assert_eq!(get("/git/x", &basic("x", &bystander)).status, 200);
    g.clock.advance(30 * 86_400);
    assert_eq!(get("/git/x", &basic("x", &bystander)).status, 401);
}

#[test]
fn guessing_tokens_is_rate_limited_per_client() {
    let g = start(3);
    let (_, good) = g.stored_token("alice", &["git"], g.now(), 30);
    let session = g.sign_in("alice", "app.test", Some(uv(g.now(), &[], true)), vec![]);
    for i in 0..3 {
        let guess = format!("sgt_{}{i}", "A".repeat(42));
        let r = g.get(
            "app.test",
            "/git/x",
            &[("Authorization", &basic("x", &guess))],
        );
        assert_eq!(r.status, 401, "guess {i}: {r:?}");
    }
    let r = g.get(
        "app.test",
        "/git/x",
        &[("Authorization", &basic("x", "sgt_nope"))],
    );
    assert_eq!(r.status, 429, "{r:?}");
    assert!(
        r.header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1))
    );
    // Every miss from this network waits, but a valid token is served...
    let r = g.get(
        "app.test",
        "/git/x",
        &[("Authorization", &basic("x", &good))],
    );
    assert_eq!(r.status, 200, "{r:?}");
    // ...and so are requests that carry no token.
    assert_eq!(
        g.get("app.test", "/inbox", &[("Cookie", &session)]).status,
        200
    );
    // The window ends: a miss is told why again.
    g.clock.advance(61);
    let r = g.get(
        "app.test",
        "/git/x",
        &[("Authorization", &basic("x", "sgt_nope"))],
    );
    assert_eq!(r.status, 401, "{r:?}");
}

/// A gateway with the portal at `https://auth.test` (as [`NetBrowser`] talks
/// to it) whose tokens live at most 7 days.
fn start_with_portal() -> TestGateway {
    crate::kit::apps::start_behind_proxy(
        r#"
session: { token_max_lifetime: 7d }
users:
  alice: { name: Alice }
  bob: { name: Bob }
upstreams: { app: "builtin:whoami" }
rules:
  - { name: git, hosts: [app.test], paths: [/git/**], upstream: app, policy: passkey, tokens: { from: basic } }
  - { name: bobs, hosts: [app.test], paths: [/bob/**], upstream: app, policy: passkey, allow: [user:bob], tokens: { from: basic } }
  - name: pin
    hosts: [app.test]
    paths: [/pin/**]
    upstream: app
    policy: passkey
    step_up: { max_age: 5m, scope: rule }
  - { name: web, hosts: [app.test], upstream: app, policy: passkey }
"#,
    )
}

#[test]
fn minting_takes_a_fresh_uv_assertion_for_rules_the_user_may_use() {
    use crate::kit::NetBrowser;
    use crate::kit::authenticator::{Client, get};
    use serde_json::{Value, json};
    use webauthn_authenticator_rs::softpasskey::SoftPasskey;

    let g = start_with_portal();
    let mut b = NetBrowser::new(g.addr);
    let mut key = SoftPasskey::new(true);
    b.enroll_by_invite(&g, &mut key);
    let post = |b: &mut NetBrowser, path: &str, body: Value| {
        let url = format!("https://auth.test/.stepgate/api/{path}");
        let r = b.request("POST", &url, &body.to_string(), "application/json");
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    };
    let ask = |rules: Value, label: &str| json!({ "label": label, "rules": rules, "days": 365 });

    // Signed out: nothing to mint with.
    let mut stranger = NetBrowser::new(g.addr);
    let (s, _) = post(&mut stranger, "tokens/begin", ask(json!(["git"]), "x"));
    assert_eq!(s, 403);
    // Only rules that take tokens and let this user in; a name is needed.
    for (rules, label) in [
        (json!([]), "x"),
        (json!(["web"]), "x"),
        (json!(["bobs"]), "x"),
        (json!(["nope"]), "x"),
        (json!(["git"]), "  "),
    ] {
        let (s, v) = post(&mut b, "tokens/begin", ask(rules.clone(), label));
        assert_eq!(s, 400, "{rules} {label:?}: {v}");
    }

    // The assertion must verify the user (UV); a refused one mints nothing.
    let (s, begun) = post(&mut b, "tokens/begin", ask(json!(["git"]), "laptop git"));
    assert_eq!(s, 200, "{begun}");
    let no_uv = Client {
        uv: false,
        ..Client::default()
    };
    let cred = get(&mut key, &begun["publicKey"], &no_uv);
    let finish = json!({ "ceremony": begun["ceremony"], "credential": cred });
    let (s, v) = post(&mut b, "tokens/finish", finish.clone());
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("user_not_verified")),
        "{v}"
    );
    // The ceremony is used up either way.
    let (s, _) = post(&mut b, "tokens/finish", finish);
    assert_eq!(s, 400);
    assert!(with_store(&g, async |s| s.tokens(None).await).is_empty());

    // A minute later, a good assertion: the token's time is the mint's, its
    // lifetime at most the operator's 7 days, and it is shown once.
    g.clock.advance(60);
    let minted_at = g.now();
    let (s, begun) = post(&mut b, "tokens/begin", ask(json!(["git"]), "laptop git"));
    assert_eq!(s, 200, "{begun}");
    let cred = get(&mut key, &begun["publicKey"], &Client::default());
    let (s, done) = post(
        &mut b,
        "tokens/finish",
        json!({ "ceremony": begun["ceremony"], "credential": cred }),
    );
    assert_eq!(s, 200, "{done}");
    let secret = done["token"].as_str().unwrap_or_default().to_string();
    let stored = with_store(&g, async |s| s.tokens(Some("alice")).await);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].rules, vec!["git"]);
    assert!((stored[0].verification.at - minted_at).abs() <= 2);
    assert!((stored[0].expires_at - stored[0].created_at) == 7 * 86_400);
    let page = b.get("https://auth.test/.stepgate/account");
    assert!(page.body.contains("laptop git") && !page.body.contains(&secret[4..]));

    let r = g.get(
        "app.test",
        "/git/x",
        &[("Authorization", &basic("x", &secret))],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.echoed("stepgate-verified-at"),
        vec![stored[0].verification.at.to_string()]
    );
    // The mint was the token's ceremony, not the browser's: no step-up came of it.
    b.sign_in(&mut key, "https://app.test/inbox");
    assert_eq!(b.get("https://app.test/pin/x").status, 302);
}

/// Issue 19: "Sign out everywhere" ended every session but said nothing of
/// the client tokens, which went on working. The form now says how many stay
/// valid, keeps them unless its box is ticked, and ends them when it is
/// (under the same CSRF protection).
#[test]
fn signing_out_everywhere_says_which_tokens_stay_and_ends_them_when_asked() {
    use crate::kit::apps::mint_token;
    use crate::kit::{NetBrowser, csrf_of};
    use webauthn_authenticator_rs::softpasskey::SoftPasskey;

    let g = start_with_portal();
    let mut b = NetBrowser::new(g.addr);
    let mut key = SoftPasskey::new(true);
    b.enroll_by_invite(&g, &mut key);
    let (_, laptop) = mint_token(&mut b, &mut key, "laptop git", &["git"]);
    let (_, phone) = mint_token(&mut b, &mut key, "phone git", &["git"]);
    let status_with = |secret: &str| {
        g.get(
            "app.test",
            "/git/x",
            &[("Authorization", &basic("x", secret))],
        )
        .status
    };
    let account = "https://auth.test/.stepgate/account";
    let end_all = "https://auth.test/.stepgate/account/end-all";
    let form = "application/x-www-form-urlencoded";

    let page = b.get(account);
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("Signing out everywhere ends your 1 session")
            && page
                .body
                .contains("Your 2 client tokens stay valid: signing out does not end them")
            && page.body.contains("Also end all 2 of my client tokens")
            && page.body.contains(r#"name="tokens" value="end""#),
        "{}",
        page.body
    );
    // Unticked: every session ends, the tokens stay.
    let r = b.request(
        "POST",
        end_all,
        &format!("csrf={}", csrf_of(&page.body)),
        form,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body
            .contains("Your 2 client tokens still work: they were not ended"),
        "{}",
        r.body
    );
    assert_eq!(b.get(account).status, 303, "signed out");
    for secret in [&laptop, &phone] {
        assert_eq!(status_with(secret), 200);
    }

    // Ticked, without the page's CSRF token: refused, nothing ends.
    b.sign_in(&mut key, "https://app.test/inbox");
    let page = b.get(account);
    let csrf = csrf_of(&page.body);
    let r = b.request("POST", end_all, "tokens=end", form);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(b.get(account).status, 200, "still signed in");
    for secret in [&laptop, &phone] {
        assert_eq!(status_with(secret), 200);
    }
    // Ticked, from the page: the tokens end with the sessions.
    let r = b.request("POST", end_all, &format!("csrf={csrf}&tokens=end"), form);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("and your client tokens (2) have ended"),
        "{}",
        r.body
    );
    assert_eq!(b.get(account).status, 303, "signed out");
    for secret in [&laptop, &phone] {
        assert_eq!(status_with(secret), 401);
    }
    assert!(with_store(&g, async |s| s.tokens(Some("alice")).await).is_empty());
}
