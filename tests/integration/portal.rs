//! Portal ceremonies end to end, in-process, against a real SQLite store and
//! software authenticators: enrollment by invite, sign-in and step-up, the
//! callback, and everything the server must refuse.

use http::StatusCode;
use serde_json::{Value, json};
use stepgate::policy::{Decision, SessionState, decide};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::softtoken::SoftToken;

use crate::kit::portal::*;

const APP: &str = "https://app.test/inbox?x=1";

/// Enroll `user` with a fresh SoftPasskey (UV capable); returns it.
async fn enrolled(h: &Harness, b: &mut Browser, user: &str, label: &str) -> SoftPasskey {
    let mut key = SoftPasskey::new(true);
    let token = h.invite(user, None).await;
    let (s, v) = enroll(b, &mut key, &token, label, &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "enroll: {v}");
    key
}

fn code_of(v: &Value) -> String {
    v["code"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn enroll_sign_in_and_reach_the_app() {
    let h = Harness::new().await;
    let mut b = h.browser();
    // The enroll page is served and names no secret in a script.
    let page = b.get(&format!("{PORTAL}/.stepgate/enroll?token=abc")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(body_text(&page).contains("Register a passkey"));
    assert!(body_text(&page).contains("now confirm with your passkey"));

    let mut key = SoftPasskey::new(true);
    let token = h.invite("alice", None).await;
    let (s, v) = enroll(&mut b, &mut key, &token, "laptop", &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["redirect"], format!("{PORTAL}/.stepgate/account"));
    let creds =
        h.gw.store
            .credentials(Some("alice"))
            .await
            .unwrap_or_default();
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0].label, "laptop");
    assert!(
        creds[0].attestation.is_none(),
        "self attestation proves nothing"
    );
    assert!(b.cookie("auth.test", "__Host-stepgate_portal").is_some());

    // The invite worked once.
    let mut other = SoftPasskey::new(true);
    let (s, _) = enroll(&mut b, &mut other, &token, "again", &Client::default()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // The account page lists the passkey.
    let acct = b.get(&format!("{PORTAL}/.stepgate/account")).await;
    assert_eq!(acct.status, StatusCode::OK);
    assert!(body_text(&acct).contains("laptop"));

    // Sign in (fresh browser, user name) for the app and follow the callback.
    let mut b2 = h.browser();
    let (s, v) = login(&mut b2, &mut key, APP, Some("alice"), &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let redirect = v["redirect"].as_str().unwrap_or("");
    assert!(
        redirect.starts_with("https://app.test/.stepgate/callback?code="),
        "{redirect}"
    );
    let cb = b2.get(redirect).await;
    assert_eq!(cb.status, StatusCode::SEE_OTHER);
    assert_eq!(header(&cb, "location"), Some(APP));
    let app_cookie = b2
        .cookie("app.test", "__Host-stepgate_app")
        .unwrap_or_default();
    assert!(!app_cookie.is_empty());
    let set = header(&cb, "set-cookie").unwrap_or("");
    assert!(set.contains("HttpOnly") && set.contains("Secure") && !set.contains("Domain"));

    // The app session carries a grant for the rule; policy lets it in.
    let view =
        h.gw.store
            .app_session(&h.hash_of(&app_cookie))
            .await
            .ok()
            .flatten();
    let view = view.unwrap_or_else(|| panic!("no app session"));
    assert_eq!(view.app.user, "alice");
    assert_eq!(view.app.host, "app.test");
    assert_eq!(view.grants.len(), 1);
    assert_eq!(view.grants[0].rule, "app");
    let snapshot = h.gw.snapshot();
    let rt = &snapshot.config;
    let rule = rt.rules.iter().find(|r| r.name == "app");
    assert!(matches!(
        decide(rt, rule, SessionState::Live(&view), h.now()),
        Decision::Allow { .. }
    ));

    // The code is single use and bound to its host.
    let again = b2.get(redirect).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    let _ = code_of(&v);
}

#[tokio::test]
async fn callback_code_only_works_on_its_host() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let mut key = enrolled(&h, &mut b, "alice", "laptop").await;
    let (s, v) = login(&mut b, &mut key, APP, None, &Client::default()).await;
    // Signed in via the portal session cookie: no user name needed.
    assert_eq!(s, StatusCode::OK, "{v}");
    let redirect = v["redirect"]
        .as_str()
        .unwrap_or("")
        .replace("app.test", "admin.test");
    let cb = b.get(&redirect).await;
    assert_eq!(cb.status, StatusCode::BAD_REQUEST);
    assert!(b.cookie("admin.test", "__Host-stepgate_app").is_none());
}

#[tokio::test]
async fn sign_in_rotates_the_portal_session() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let mut key = enrolled(&h, &mut b, "alice", "laptop").await;
    let before = b
        .cookie("auth.test", "__Host-stepgate_portal")
        .unwrap_or_default();
    let (s, _) = login(&mut b, &mut key, APP, None, &Client::default()).await;
    assert_eq!(s, StatusCode::OK);
    let after = b
        .cookie("auth.test", "__Host-stepgate_portal")
        .unwrap_or_default();
    assert_ne!(before, after);
    assert!(
        h.gw.store
            .portal_session(&h.hash_of(&before))
            .await
            .ok()
            .flatten()
            .is_none()
    );
    assert!(
        h.gw.store
            .portal_session(&h.hash_of(&after))
            .await
            .ok()
            .flatten()
            .is_some()
    );
}

#[tokio::test]
async fn uv_zero_is_refused_at_enrollment() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let mut key = SoftPasskey::new(true);
    let token = h.invite("alice", None).await;
    let no_uv = Client {
        uv: false,
        ..Client::default()
    };
    let (s, v) = enroll(&mut b, &mut key, &token, "laptop", &no_uv).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "user_not_verified");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("PIN or fingerprint")
    );
    assert_eq!(h.gw.store.count_credentials().await.unwrap_or(9), 0);
    // The invite came back: a retry with UV works.
    let (s, v) = enroll(&mut b, &mut key, &token, "laptop", &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn uv_zero_is_refused_at_sign_in() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let mut key = enrolled(&h, &mut b, "alice", "laptop").await;
    let no_uv = Client {
        uv: false,
        ..Client::default()
    };
    let mut b2 = h.browser();
    let (s, v) = login(&mut b2, &mut key, APP, Some("alice"), &no_uv).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "user_not_verified");
    assert!(b2.cookie("auth.test", "__Host-stepgate_portal").is_none());
}

#[tokio::test]
async fn a_challenge_is_used_up_by_the_first_attempt() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let mut key = enrolled(&h, &mut b, "alice", "laptop").await;
    let (s, begun) = login_begin(&mut b, APP, None).await;
    assert_eq!(s, StatusCode::OK);
    let cred = get(&mut key, &begun["publicKey"], &Client::default());
    let (s, _) = login_finish(&mut b, &begun["ceremony"], &cred).await;
    assert_eq!(s, StatusCode::OK);
    // Replaying the same finish: the state is gone.
    let (s, v) = login_finish(&mut b, &begun["ceremony"], &cred).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Replaying the old assertion against a new challenge.
    let (_, begun2) = login_begin(&mut b, APP, None).await;
    let (s, v) = login_finish(&mut b, &begun2["ceremony"], &cred).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "challenge_mismatch");
    // A failed attempt also used that challenge up.
    let fresh = get(&mut key, &begun2["publicKey"], &Client::default());
    let (s, _) = login_finish(&mut b, &begun2["ceremony"], &fresh).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_expired_challenge_is_refused() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let mut key = enrolled(&h, &mut b, "alice", "laptop").await;
    let (_, begun) = login_begin(&mut b, APP, None).await;
    let cred = get(&mut key, &begun["publicKey"], &Client::default());
    h.clock.advance(301);
    let (s, v) = login_finish(&mut b, &begun["ceremony"], &cred).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["message"].as_str().unwrap_or("").contains("timed out"));
}

#[tokio::test]
async fn a_challenge_from_another_browser_is_refused() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let mut key = enrolled(&h, &mut b, "alice", "laptop").await;
    let (_, begun) = login_begin(&mut b, APP, None).await;
    let cred = get(&mut key, &begun["publicKey"], &Client::default());
    let mut thief = h.browser();
    let (s, _) = login_finish(&mut thief, &begun["ceremony"], &cred).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        thief
            .cookie("auth.test", "__Host-stepgate_portal")
            .is_none()
    );
}

#[tokio::test]
async fn a_counter_that_goes_backwards_is_refused_and_flags_the_credential() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let (mut token, _ca) = SoftToken::new(true).unwrap_or_else(|e| panic!("{e:?}"));
    let invite = h.invite("alice", None).await;
    let (s, v) = enroll(&mut b, &mut token, &invite, "key", &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let snapshot = token.to_cbor().unwrap_or_default();
    let (s, _) = login(&mut b, &mut token, APP, None, &Client::default()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = login(&mut b, &mut token, APP, None, &Client::default()).await;
    assert_eq!(s, StatusCode::OK);
    // A clone made before those two uses.
    let mut clone = SoftToken::from_cbor(&snapshot).unwrap_or_else(|e| panic!("{e:?}"));
    let (s, v) = login(&mut b, &mut clone, APP, None, &Client::default()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "counter_regressed");
    let creds =
        h.gw.store
            .credentials(Some("alice"))
            .await
            .unwrap_or_default();
    assert!(creds[0].flagged, "the credential is flagged");
    // Even the genuine token is now refused, and never offered by name.
    let mut b2 = h.browser();
    let (s, begun) = login_begin(&mut b2, APP, Some("alice")).await;
    assert_eq!(s, StatusCode::OK, "a named begin answers alike: {begun}");
    assert!(!begun.to_string().contains(&creds[0].id), "{begun}");
    // The regression ended the sessions the credential made; forcing the
    // genuine token through a usernameless ceremony is refused at finish.
    let (_, begun) = login_begin(&mut b, APP, None).await;
    let mut opts = begun["publicKey"].clone();
    opts["allowCredentials"] = json!([{"type": "public-key", "id": creds[0].id}]);
    let mut cred = get(&mut token, &opts, &Client::default());
    cred["response"]["userHandle"] =
        stepgate::webauthn::b64url(&stepgate::webauthn::user_handle("alice")).into();
    let (s, v) = login_finish(&mut b, &begun["ceremony"], &cred).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
async fn another_users_credential_is_refused() {
    let h = Harness::new().await;
    let mut ba = h.browser();
    let mut alice_key = enrolled(&h, &mut ba, "alice", "laptop").await;
    let mut bb = h.browser();
    let _bob_key = enrolled(&h, &mut bb, "bob", "phone").await;
    let alice_id =
        h.gw.store
            .credentials(Some("alice"))
            .await
            .unwrap_or_default()[0]
            .id
            .clone();

    // Bob's browser asks for Bob; Alice's authenticator answers.
    let mut b = h.browser();
    let (s, begun) = login_begin(&mut b, APP, Some("bob")).await;
    assert_eq!(s, StatusCode::OK);
    let mut opts = begun["publicKey"].clone();
    opts["allowCredentials"] = json!([{"type": "public-key", "id": alice_id}]);
    let cred = get(&mut alice_key, &opts, &Client::default());
    let (s, v) = login_finish(&mut b, &begun["ceremony"], &cred).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("another account")
    );

    // Usernameless: Alice's credential with Bob's user handle.
    let (_, begun) = login_begin(&mut b, APP, None).await;
    let mut opts = begun["publicKey"].clone();
    opts["allowCredentials"] = json!([{"type": "public-key", "id": alice_id}]);
    let mut cred = get(&mut alice_key, &opts, &Client::default());
    let bob_handle = stepgate::webauthn::b64url(&stepgate::webauthn::user_handle("bob"));
    cred["response"]["userHandle"] = bob_handle.into();
    let (s, v) = login_finish(&mut b, &begun["ceremony"], &cred).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(b.cookie("auth.test", "__Host-stepgate_portal").is_none());
}

#[tokio::test]
async fn an_expired_credential_is_refused() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let mut key = SoftPasskey::new(true);
    let token = h.invite("carol", Some(60)).await;
    let (s, _) = enroll(&mut b, &mut key, &token, "guest key", &Client::default()).await;
    assert_eq!(s, StatusCode::OK);
    let id =
        h.gw.store
            .credentials(Some("carol"))
            .await
            .unwrap_or_default()[0]
            .id
            .clone();
    h.clock.advance(120);
    let mut b2 = h.browser();
    // By user name: nothing usable is offered (decoys, as for any name).
    let (s, v) = login_begin(&mut b2, APP, Some("carol")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!v.to_string().contains(&id), "{v}");
    // Forcing it through the usernameless path: refused at finish.
    let (_, begun) = login_begin(&mut b2, APP, None).await;
    let mut opts = begun["publicKey"].clone();
    opts["allowCredentials"] = json!([{"type": "public-key", "id": id}]);
    let mut cred = get(&mut key, &opts, &Client::default());
    cred["response"]["userHandle"] =
        stepgate::webauthn::b64url(&stepgate::webauthn::user_handle("carol")).into();
    let (s, v) = login_finish(&mut b2, &begun["ceremony"], &cred).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v["message"].as_str().unwrap_or("").contains("expired"));
}

#[tokio::test]
async fn a_wrong_origin_is_refused() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let mut key = enrolled(&h, &mut b, "alice", "laptop").await;
    for origin in [
        "https://evil.test",
        "https://x.auth.test",
        "http://auth.test",
        "https://auth.test:8443",
    ] {
        let c = Client {
            origin: origin.into(),
            ..Client::default()
        };
        let (s, v) = login(&mut b, &mut key, APP, None, &c).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{origin}: {v}");
        assert_eq!(v["error"], "wrong_origin", "{origin}");
    }
    // And at enrollment.
    let token = h.invite("bob", None).await;
    let mut k2 = SoftPasskey::new(true);
    let c = Client {
        origin: "https://evil.test".into(),
        ..Client::default()
    };
    let (s, v) = enroll(&mut b, &mut k2, &token, "x", &c).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "wrong_origin");
}

#[tokio::test]
async fn cross_origin_and_top_origin_are_refused() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let mut key = enrolled(&h, &mut b, "alice", "laptop").await;
    for extra in [
        r#","crossOrigin":true"#,
        r#","crossOrigin":false,"topOrigin":"https://evil.test""#,
    ] {
        let c = Client {
            extra: extra.into(),
            ..Client::default()
        };
        let (s, v) = login(&mut b, &mut key, APP, None, &c).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{extra}: {v}");
        assert_eq!(v["error"], "cross_origin");
    }
    let token = h.invite("bob", None).await;
    let mut k2 = SoftPasskey::new(true);
    let c = Client {
        extra: r#","crossOrigin":true"#.into(),
        ..Client::default()
    };
    let (s, v) = enroll(&mut b, &mut k2, &token, "x", &c).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "cross_origin");
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let h = Harness::new().await;
    let mut b = h.browser();
    b.origin = Some("https://evil.test".into());
    let (s, _) = login_begin(&mut b, APP, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    b.origin = None;
    let (s, _) = login_begin(&mut b, APP, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn logout_needs_the_csrf_token() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let _key = enrolled(&h, &mut b, "alice", "laptop").await;
    let portal = b
        .cookie("auth.test", "__Host-stepgate_portal")
        .unwrap_or_default();
    let url = format!("{PORTAL}/.stepgate/logout");
    let r = b.post_form(&url, &[("csrf", "nope")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        h.gw.store
            .portal_session(&h.hash_of(&portal))
            .await
            .ok()
            .flatten()
            .is_some()
    );
    let csrf = stepgate::portal::guard::csrf_token(&h.hash_of(&portal));
    b.origin = Some("https://evil.test".into());
    let r = b.post_form(&url, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    b.origin = Some(PORTAL.into());
    let r = b.post_form(&url, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        h.gw.store
            .portal_session(&h.hash_of(&portal))
            .await
            .ok()
            .flatten()
            .is_none()
    );
    let acct = b.get(&format!("{PORTAL}/.stepgate/account")).await;
    assert_eq!(acct.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn revoking_a_passkey_needs_a_recent_ceremony() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let _key = enrolled(&h, &mut b, "alice", "laptop").await;
    let _key2 = {
        let mut k = SoftPasskey::new(true);
        let t = h.invite("alice", None).await;
        let (s, _) = enroll(&mut b, &mut k, &t, "phone", &Client::default()).await;
        assert_eq!(s, StatusCode::OK);
        k
    };
    let csrf = h.csrf(&b);
    let laptop = h.credential_id("alice", "laptop").await;
    h.clock.advance(301);
    let url = format!("{PORTAL}/.stepgate/account/revoke");
    let r = b.post_form(&url, &[("csrf", &csrf), ("id", &laptop)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        header(&r, "location")
            .unwrap_or("")
            .contains("/.stepgate/login")
    );
    assert_eq!(
        h.gw.store
            .credentials(Some("alice"))
            .await
            .unwrap_or_default()
            .len(),
        2
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let h = Harness::with(unrelated_softkey_set, (3, 1000)).await;
    let mut b = h.browser();
    for _ in 0..3 {
        let (s, _) = login_begin(&mut b, APP, None).await;
        assert_eq!(s, StatusCode::OK);
    }
    let r = b
        .request(
            "POST",
            &format!("{PORTAL}/.stepgate/api/login/begin"),
            br#"{"rd":null}"#,
            "application/json",
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let ra: u64 = header(&r, "retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=60).contains(&ra));
}

#[tokio::test]
async fn login_page_says_plainly_when_no_passkey_fits() {
    let h = Harness::with(
        |dir| {
            // A set whose root the SoftPasskey can never chain to.
            let (_t, ca) = SoftToken::new(true).unwrap_or_else(|e| panic!("{e:?}"));
            let path = dir.join("other-ca.pem");
            write_pem(&path, &ca);
            softkey_set(&path).replace("softkey:", "softkey:\n    name: YubiKey 5")
        },
        (1000, 1000),
    )
    .await;
    let mut b = h.browser();
    let _key = enrolled(&h, &mut b, "alice", "laptop").await;
    let page = b.login_page("https://admin.test/").await;
    assert_eq!(page.status, StatusCode::OK);
    let text = body_text(&page);
    assert!(
        text.contains("your passkeys: laptop (device-bound)"),
        "{text}"
    );
    let (s, v) = login_begin(&mut b, "https://admin.test/", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("This page needs"),
        "{v}"
    );
}

#[tokio::test]
async fn allow_is_checked_before_any_ceremony() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let _key = enrolled(&h, &mut b, "bob", "phone").await;
    let page = b.login_page("https://ops.test/").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let (s, _) = login_begin(&mut b, "https://ops.test/", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bootstrap_makes_one_invite_when_no_credential_exists() {
    let h = Harness::new().await;
    let url = stepgate::portal::bootstrap(&h.gw).await.ok().flatten();
    let url = url.unwrap_or_else(|| panic!("no bootstrap invite"));
    assert!(url.starts_with(&format!("{PORTAL}/.stepgate/enroll?token=")));
    let token = url.split("token=").nth(1).unwrap_or("").to_string();
    let mut b = h.browser();
    let mut key = SoftPasskey::new(true);
    let (s, v) = enroll(&mut b, &mut key, &token, "first", &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        h.gw.store
            .credentials(Some("alice"))
            .await
            .unwrap_or_default()
            .len(),
        1
    );
    assert!(
        stepgate::portal::bootstrap(&h.gw)
            .await
            .ok()
            .flatten()
            .is_none()
    );
}

#[tokio::test]
async fn portal_pages_on_an_app_host_bounce_to_the_portal() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let r = b.get("https://app.test/.stepgate/login?rd=x").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        header(&r, "location"),
        Some("https://auth.test/.stepgate/login?rd=x")
    );
    let r = b.get("https://app.test/.stepgate/assets/portal.js").await;
    assert_eq!(r.status, StatusCode::OK);
}

/// A known path asked with another method is 405, an unknown one 404; the
/// JSON API answers both in JSON with their labels, pages as pages. An app
/// host knows only the assets, the callback and signing out.
#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let json_of = |r: &stepgate::reply::Reply| -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null)
    };
    let r = b.get(&format!("{PORTAL}/.stepgate/api/login/begin")).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json_of(&r)["error"], "method_not_allowed");
    let r = b
        .post_form(&format!("{PORTAL}/.stepgate/account"), &[])
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body_text(&r).contains("does not accept that kind of request"));
    let r = b.get(&format!("{PORTAL}/.stepgate/api/nothing")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(json_of(&r)["error"], "not_found");
    let r = b.get(&format!("{PORTAL}/.stepgate/account/")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(body_text(&r).contains("There is no such page."));
    let r = b
        .post_form("https://app.test/.stepgate/account/rename", &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = b.post_form("https://app.test/.stepgate/login", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn account_rename_revoke_and_sign_out_everywhere() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let _laptop = enrolled(&h, &mut b, "alice", "laptop").await;
    let mut phone = enrolled(&h, &mut b, "alice", "phone").await;
    let csrf = h.csrf(&b);
    let laptop = h.credential_id("alice", "laptop").await;

    // Rename.
    let r = b
        .post_form(
            &format!("{PORTAL}/.stepgate/account/rename"),
            &[("csrf", &csrf), ("id", &laptop), ("label", "work laptop")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let c = h.gw.store.credential(&laptop).await.ok().flatten();
    assert_eq!(c.map(|c| c.label), Some("work laptop".to_string()));

    // Another user's credential cannot be renamed from this session.
    let mut bb = h.browser();
    let _bob = enrolled(&h, &mut bb, "bob", "bob key").await;
    let bob_id =
        h.gw.store
            .credentials(Some("bob"))
            .await
            .unwrap_or_default()[0]
            .id
            .clone();
    let r = b
        .post_form(
            &format!("{PORTAL}/.stepgate/account/rename"),
            &[("csrf", &csrf), ("id", &bob_id), ("label", "mine now")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Revoking needs an assertion at most five minutes old; registering the
    // phone just now is none: the browser is sent to sign in first.
    let revoke = format!("{PORTAL}/.stepgate/account/revoke");
    let r = b
        .post_form(&revoke, &[("csrf", &csrf), ("id", &laptop)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        header(&r, "location").is_some_and(|l| l.contains("/.stepgate/login?")),
        "{r:?}"
    );
    let stored = |id: String| {
        let store = h.gw.store.clone();
        async move { store.credential(&id).await.ok().flatten().is_some() }
    };
    assert!(stored(laptop.clone()).await);
    let account = format!("{PORTAL}/.stepgate/account");
    let (s, v) = login(
        &mut b,
        &mut phone,
        &account,
        Some("alice"),
        &Client::default(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let csrf = h.csrf(&b);
    let r = b
        .post_form(&revoke, &[("csrf", &csrf), ("id", &laptop)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(!stored(laptop.clone()).await);

    // Sign in again (revoking may end the sessions that rest on the passkey),
    // plus a second browser, then sign out everywhere from the first.
    let (s, v) = login(&mut b, &mut phone, APP, Some("alice"), &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut b2 = h.browser();
    let (s, v) = login(&mut b2, &mut phone, APP, Some("alice"), &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let csrf = h.csrf(&b);
    let r = b
        .post_form(
            &format!("{PORTAL}/.stepgate/account/end-all"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let live =
        h.gw.store
            .portal_sessions(Some("alice"))
            .await
            .unwrap_or_default();
    assert!(
        live.iter().all(|s| s.expires_at <= h.now()) || live.is_empty(),
        "{live:?}"
    );
    for br in [&mut b, &mut b2] {
        let acct = br.get(&format!("{PORTAL}/.stepgate/account")).await;
        assert_eq!(acct.status, StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn an_expired_user_is_refused() {
    let h = Harness::new().await;
    let mut b = h.browser();
    let mut key = enrolled(&h, &mut b, "temp", "key").await;
    let (s, v) = login(&mut b, &mut key, APP, None, &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    h.clock.advance(7200);
    // The portal session no longer counts, and a new ceremony is refused.
    let acct = b.get(&format!("{PORTAL}/.stepgate/account")).await;
    assert_eq!(acct.status, StatusCode::SEE_OTHER);
    let mut b2 = h.browser();
    let id =
        h.gw.store
            .credentials(Some("temp"))
            .await
            .unwrap_or_default()[0]
            .id
            .clone();
    let (s, v) = login_begin(&mut b2, APP, Some("temp")).await;
    assert_eq!(s, StatusCode::OK, "a named begin answers alike: {v}");
    assert!(!v.to_string().contains(&id), "{v}");
    let (_, begun) = login_begin(&mut b2, APP, None).await;
    let mut opts = begun["publicKey"].clone();
    opts["allowCredentials"] = json!([{"type": "public-key", "id": id}]);
    let mut cred = get(&mut key, &opts, &Client::default());
    cred["response"]["userHandle"] =
        stepgate::webauthn::b64url(&stepgate::webauthn::user_handle("temp")).into();
    let (s, v) = login_finish(&mut b2, &begun["ceremony"], &cred).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("expired"),
        "{v}"
    );
}

#[tokio::test]
async fn the_whole_flow_works_on_redis_too() {
    let redis = crate::kit::RedisServer::start();
    let h = Harness::on_redis(&redis.url()).await;
    let mut b = h.browser();
    let mut key = enrolled(&h, &mut b, "alice", "laptop").await;
    let (s, begun) = login_begin(&mut b, APP, None).await;
    assert_eq!(s, StatusCode::OK);
    let cred = get(&mut key, &begun["publicKey"], &Client::default());
    let (s, v) = login_finish(&mut b, &begun["ceremony"], &cred).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The ceremony state was consumed (GETDEL): a replay finds nothing.
    let (s, _) = login_finish(&mut b, &begun["ceremony"], &cred).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let redirect = v["redirect"].as_str().unwrap_or("").to_string();
    let cb = b.get(&redirect).await;
    assert_eq!(cb.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get(&redirect).await.status, StatusCode::BAD_REQUEST);
    let cookie = b
        .cookie("app.test", "__Host-stepgate_app")
        .unwrap_or_default();
    let view =
        h.gw.store
            .app_session(&h.hash_of(&cookie))
            .await
            .ok()
            .flatten();
    assert_eq!(view.map(|v| v.grants.len()), Some(1));
}
