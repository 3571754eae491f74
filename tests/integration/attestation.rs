//! Attestation and credential standing: which authenticator model a
//! credential is *proven* to be, that only assertions satisfy `step_up`, and
//! that a credential's standing reaches live sessions.
//!
//! Every forged shape of issue 11 is here, through the portal API with
//! software authenticators and, where a page is opened, through the real
//! pingora server ([`Harness::serving`]):
//! - `fido-u2f` attestation chaining to a configured root, authData AAGUID altered;
//! - `none` attestation claiming UV at registration;
//! - packed self attestation claiming an allowed AAGUID;
//! - a cloned authenticator (counter regression) and a second instance;
//! - a set edited by a config reload;
//! - credential ids WebAuthn does not allow (0 or 1100 bytes, at registration
//!   and named by an assertion), and a `rawId` or `id` that is not the
//!   credential id of the attested credential data (issue 19);
//! - MDS blobs: valid, wrong signer, a certificate under the MDS root that is
//!   not the FIDO Alliance's signer, tampered, expired, revoked entry.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use http::StatusCode;
use serde_json::Value;
use stepgate::policy::{Decision, SessionState, decide};
use uuid::Uuid;
use webauthn_authenticator_rs::softtoken::SoftToken;

use crate::kit::TestConfig;
use crate::kit::handmade::{Format, Token};
use crate::kit::portal::*;

const ADMIN: &str = "https://admin.test/settings";
const APP: &str = "https://app.test/";
/// An AAGUID the `softkey` set does not list (a real YubiKey 5's).
const OTHER_MODEL: Uuid = uuid::uuid!("cb69481e-8ff7-4039-93ec-0a2729a154a8");

fn softtoken_aaguid() -> Uuid {
    Uuid::parse_str(SOFTTOKEN_AAGUID).unwrap_or_default()
}

/// The `softkey` set trusting the CA at `dir/NAME.pem` (written from `ca`).
fn set_trusting(dir: &Path, ca: &crypto_glue::x509::Certificate) -> String {
    let path = dir.join("softkey-ca.pem");
    write_pem(&path, ca);
    softkey_set(&path)
}

/// A harness whose `softkey` set trusts `ca`.
async fn trusting(ca: &crypto_glue::x509::Certificate) -> Harness {
    Harness::with(|dir| set_trusting(dir, ca), (1000, 1000)).await
}

/// [`trusting`], serving HTTP.
async fn serving_trusting(ca: &crypto_glue::x509::Certificate) -> Harness {
    let config = TestConfig::new();
    let section = set_trusting(config.dir(), ca);
    Harness::serving(config, &section).await
}

/// A served harness on `config` whose `softkey` set trusts an unrelated CA.
async fn unrelated_serving(config: TestConfig) -> Harness {
    let section = unrelated_softkey_set(config.dir());
    Harness::serving(config, &section).await
}

async fn only_credential(h: &Harness, user: &str) -> stepgate::model::Credential {
    let creds = h.gw.store.credentials(Some(user)).await.unwrap_or_default();
    assert_eq!(creds.len(), 1, "{creds:?}");
    creds[0].clone()
}

/// Follow a sign-in's redirect through the app host's callback; returns the
/// `Cookie` header the browser then sends to `host`.
async fn through_callback(b: &mut Browser, v: &Value, host: &str) -> String {
    let cb = b.get(v["redirect"].as_str().unwrap_or("")).await;
    assert_eq!(cb.status, StatusCode::SEE_OTHER, "{v}");
    b.cookie_header(host)
}

/// A page `host` + `path` opened by the browser: 200 (let through) or 302 (to the login page).
fn opened(h: &Harness, host: &str, path: &str, cookie: &str) -> u16 {
    let r = h.fetch(host, path, cookie);
    if r.status == 302 {
        assert!(
            r.header("location")
                .is_some_and(|l| l.starts_with(&format!("{PORTAL}/.stepgate/login?"))),
            "{r:?}"
        );
    }
    r.status
}

#[tokio::test]
async fn an_attested_model_satisfies_an_authenticators_rule() {
    let (mut token, ca) = SoftToken::new(true).unwrap_or_else(|e| panic!("{e:?}"));
    let h = serving_trusting(&ca).await;
    let mut b = h.browser();
    let invite = h.invite("alice", None).await;
    let (s, v) = enroll(&mut b, &mut token, &invite, "soft key", &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cred = only_credential(&h, "alice").await;
    assert_eq!(cred.aaguid, softtoken_aaguid());
    let proof = cred
        .attestation
        .clone()
        .unwrap_or_else(|| panic!("no proof recorded"));
    assert_eq!(
        (proof.format.as_str(), proof.aaguid),
        ("packed", softtoken_aaguid())
    );

    let (s, v) = login(&mut b, &mut token, ADMIN, None, &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cookie = through_callback(&mut b, &v, "admin.test").await;
    assert_eq!(opened(&h, "admin.test", "/settings", &cookie), 200);
    // The decision, from the store's view of the session and the current trust anchors.
    let app = b
        .cookie("admin.test", "__Host-stepgate_app")
        .unwrap_or_default();
    let view =
        h.gw.store
            .app_session(&h.hash_of(&app))
            .await
            .ok()
            .flatten();
    let view = view.unwrap_or_else(|| panic!("no app session"));
    let snapshot = h.gw.snapshot();
    let rt = &snapshot.config;
    let standing = view.standing(&cred.id).and_then(|c| c.attestation.as_ref());
    assert_eq!(
        rt.trust.sets_of(standing, h.now()),
        vec!["softkey".to_string()]
    );
    let rule = rt.rules.iter().find(|r| r.name == "admin");
    assert!(matches!(
        decide(rt, rule, SessionState::Live(&view), h.now()),
        Decision::Allow { .. }
    ));
}

/// Rewrite a registration's attestation object to `fmt: none` (authData, and
/// so the claimed AAGUID and UV flag, unchanged).
fn to_none_attestation(reg: &mut Value) {
    let ao = crate::kit::b64url_decode(reg["response"]["attestationObject"].as_str().unwrap_or(""));
    let v: serde_cbor_2::Value = serde_cbor_2::from_slice(&ao).unwrap_or_else(|e| panic!("{e}"));
    let serde_cbor_2::Value::Map(mut map) = v else {
        panic!("attestation object is not a map")
    };
    map.insert(
        serde_cbor_2::Value::Text("fmt".into()),
        serde_cbor_2::Value::Text("none".into()),
    );
    map.insert(
        serde_cbor_2::Value::Text("attStmt".into()),
        serde_cbor_2::Value::Map(Default::default()),
    );
    let bytes = serde_cbor_2::to_vec(&serde_cbor_2::Value::Map(map)).unwrap_or_default();
    reg["response"]["attestationObject"] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(bytes)
        .into();
}

/// Enroll alice from a new invite, `make` answering the creation options;
/// returns the finish status and body, and the credential id.
async fn enroll_with(
    h: &Harness,
    b: &mut Browser,
    make: impl FnOnce(&Value) -> Value,
) -> (StatusCode, Value, String) {
    let invite = h.invite("alice", None).await;
    let (s, begun) = b
        .api(
            "enroll/begin",
            &serde_json::json!({"token": invite, "label": "key"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{begun}");
    let reg = make(&begun["publicKey"]);
    let id = reg["id"].as_str().unwrap_or("").to_string();
    let (s, v) = b
        .api(
            "enroll/finish",
            &serde_json::json!({"ceremony": begun["ceremony"], "credential": reg}),
        )
        .await;
    (s, v, id)
}

/// Enroll `token`'s registration rewritten to `none` attestation.
async fn enroll_as_none(h: &Harness, b: &mut Browser, token: &mut SoftToken) -> Value {
    let (s, v, _) = enroll_with(h, b, |options| {
        let mut reg = create(token, options, &Client::default());
        to_none_attestation(&mut reg);
        reg
    })
    .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "an unattested passkey still enrolls: {v}"
    );
    v
}

#[tokio::test]
async fn none_attestation_claiming_an_allowed_aaguid_does_not_count() {
    let (mut token, ca) = SoftToken::new(true).unwrap_or_else(|e| panic!("{e:?}"));
    let h = trusting(&ca).await;
    let mut b = h.browser();
    enroll_as_none(&h, &mut b, &mut token).await;
    let cred = only_credential(&h, "alice").await;
    assert_eq!(cred.aaguid, softtoken_aaguid(), "it claims the model");
    assert!(cred.attestation.is_none(), "but proves nothing");
    let acct = b.get(&format!("{PORTAL}/.stepgate/account")).await;
    assert!(body_text(&acct).contains("says it is softkey (not proven)"));

    // The admin rule wants a proven softkey: nothing to offer.
    let (s, v) = login_begin(&mut b, ADMIN, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Forced through the usernameless path, the ceremony is refused at finish.
    let mut fresh = h.browser();
    let (_, begun) = login_begin(&mut fresh, ADMIN, None).await;
    let mut opts = begun["publicKey"].clone();
    opts["allowCredentials"] = serde_json::json!([{"type": "public-key", "id": cred.id}]);
    let mut a = get(&mut token, &opts, &Client::default());
    a["response"]["userHandle"] =
        stepgate::webauthn::b64url(&stepgate::webauthn::user_handle("alice")).into();
    let (s, v) = login_finish(&mut fresh, &begun["ceremony"], &a).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("Wrong authenticator"),
        "{v}"
    );
}

/// An app cookie (https) for a new app session on `host` made from `user`'s
/// newest portal session with no grant — what the callback makes when the
/// portal session alone meets a rule.
async fn app_session_from_portal(h: &Harness, user: &str, host: &str) -> String {
    use stepgate::session::cookie::CookieKind;
    let portals =
        h.gw.store
            .portal_sessions(Some(user))
            .await
            .unwrap_or_default();
    let Some(portal) = portals.last() else {
        panic!("{user} is not signed in")
    };
    let snapshot = h.gw.snapshot();
    let app = stepgate::session::new_app_session(portal, host, &snapshot.config.session, h.now());
    let keys = &snapshot.keys;
    let minted = keys.mint(CookieKind::App);
    if let Err(e) =
        h.gw.store
            .add_app_session(&minted.token_hash, &app, &[])
            .await
    {
        panic!("add_app_session: {e}");
    }
    format!("{}={}", CookieKind::App.name(true), minted.cookie_value)
}

/// Issue 11: a registration counts as a UV ceremony. With `none` attestation
/// the UV flag at registration is signed by nothing, yet a `scope: session`
/// rule accepted it.
#[tokio::test]
async fn none_attestation_claiming_uv_signs_in_but_satisfies_no_step_up() {
    let (mut token, _ca) = SoftToken::new(true).unwrap_or_else(|e| panic!("{e:?}"));
    let h = unrelated_serving(TestConfig::new()).await;
    let mut b = h.browser();
    let v = enroll_as_none(&h, &mut b, &mut token).await;
    // Signed in: the account page opens.
    assert_eq!(v["redirect"], format!("{PORTAL}/.stepgate/account"));
    let acct = b.get(&format!("{PORTAL}/.stepgate/account")).await;
    assert_eq!(acct.status, StatusCode::OK);
    let portal =
        h.gw.store
            .portal_sessions(Some("alice"))
            .await
            .unwrap_or_default();
    assert_eq!(portal.len(), 1);
    assert_eq!(portal[0].last_uv, None, "a registration is no assertion");

    // A plain passkey rule lets the signed-in user in; every step_up rule asks.
    let plain = app_session_from_portal(&h, "alice", "app.test").await;
    assert_eq!(opened(&h, "app.test", "/", &plain), 200);
    let sess = app_session_from_portal(&h, "alice", "sess.test").await;
    assert_eq!(opened(&h, "sess.test", "/", &sess), 302, "scope: session");
    let bound = app_session_from_portal(&h, "alice", "bound.test").await;
    assert_eq!(opened(&h, "bound.test", "/", &bound), 302, "scope: rule");

    // The assertion it asks for is accepted.
    let (s, v) = login(
        &mut b,
        &mut token,
        "https://sess.test/",
        None,
        &Client::default(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cookie = through_callback(&mut b, &v, "sess.test").await;
    assert_eq!(opened(&h, "sess.test", "/", &cookie), 200);
}

/// Enroll alice with `token` registering in `format` (authData AAGUID: the
/// `softkey` set's); returns the harness (trusting the token's CA), the
/// browser and the credential id.
async fn enroll_formatted(token: &mut Token, format: Format) -> (Harness, Browser, String) {
    let h = trusting(&token.ca).await;
    let mut b = h.browser();
    let (s, v, id) = enroll_with(&h, &mut b, |o| {
        token.register(o, PORTAL, softtoken_aaguid(), format)
    })
    .await;
    assert_eq!(s, StatusCode::OK, "{format:?} still enrolls: {v}");
    (h, b, id)
}

/// Sign in for the admin rule (which needs a proven softkey) with the
/// token's credential `id`, forcing the ceremony past the page's offer.
async fn forced_admin_sign_in(
    h: &Harness,
    token: &mut Token,
    id: &str,
    counter: u32,
) -> (StatusCode, Value) {
    let mut b = h.browser();
    let (s, begun) = login_begin(&mut b, ADMIN, None).await;
    assert_eq!(s, StatusCode::OK, "{begun}");
    let a = token.assert(&begun["publicKey"], PORTAL, id, "alice", counter);
    login_finish(&mut b, &begun["ceremony"], &a).await
}

#[tokio::test]
async fn packed_attestation_with_a_certificate_proves_the_model() {
    // Control for the forged shapes below: the hand-made token itself is sound.
    let mut token = Token::new(softtoken_aaguid());
    let (h, mut b, id) = enroll_formatted(&mut token, Format::Packed).await;
    let cred = only_credential(&h, "alice").await;
    assert_eq!(cred.attestation.map(|p| p.format), Some("packed".into()));
    let (s, v) = login_begin(&mut b, ADMIN, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = forced_admin_sign_in(&h, &mut token, &id, 1).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// Issue 11: `fido-u2f` signs neither the AAGUID nor the flags, yet a U2F key
/// chaining to a configured root (every YubiKey shares one Yubico root) could
/// name any AAGUID a set admits.
#[tokio::test]
async fn u2f_attestation_with_an_altered_aaguid_is_in_no_set() {
    // Its certificate names its real model; the authenticator data claims softkey.
    let mut token = Token::new(OTHER_MODEL);
    let (h, mut b, id) = enroll_formatted(&mut token, Format::FidoU2f).await;
    let cred = only_credential(&h, "alice").await;
    assert_eq!(cred.aaguid, softtoken_aaguid(), "it claims the model");
    assert!(cred.attestation.is_none(), "fido-u2f proves no model");
    let acct = b.get(&format!("{PORTAL}/.stepgate/account")).await;
    assert!(body_text(&acct).contains("says it is softkey (not proven)"));
    // The rule needing the set asks for another passkey...
    let (s, v) = login_begin(&mut b, ADMIN, Some("alice")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("This page needs your softkey"),
        "{v}"
    );
    // ...and refuses this one when forced.
    let (s, v) = forced_admin_sign_in(&h, &mut token, &id, 1).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("Wrong authenticator"),
        "{v}"
    );
    // It is still a passkey: a rule without `authenticators` takes it.
    let mut b2 = h.browser();
    let (_, begun) = login_begin(&mut b2, APP, None).await;
    let a = token.assert(&begun["publicKey"], PORTAL, &id, "alice", 2);
    let (s, v) = login_finish(&mut b2, &begun["ceremony"], &a).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// Issue 11: self attestation is signed by the new credential's own key, so
/// its AAGUID is whatever the client wrote.
#[tokio::test]
async fn packed_self_attestation_claiming_an_allowed_aaguid_is_in_no_set() {
    let mut token = Token::new(softtoken_aaguid());
    let (h, mut b, id) = enroll_formatted(&mut token, Format::PackedSelf).await;
    let cred = only_credential(&h, "alice").await;
    assert_eq!(cred.aaguid, softtoken_aaguid());
    assert!(
        cred.attestation.is_none(),
        "self attestation proves no model"
    );
    let (s, v) = login_begin(&mut b, ADMIN, Some("alice")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = forced_admin_sign_in(&h, &mut token, &id, 1).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
async fn a_certificate_aaguid_differing_from_the_authenticator_data_is_refused() {
    let mut token = Token::new(OTHER_MODEL);
    let h = trusting(&token.ca).await;
    let mut b = h.browser();
    let (s, v, _) = enroll_with(&h, &mut b, |o| {
        token.register(o, PORTAL, softtoken_aaguid(), Format::Packed)
    })
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "bad_attestation", "{v}");
    assert_eq!(h.gw.store.count_credentials().await.unwrap_or(9), 0);
}

/// `device_bound` reads each assertion's signed flags: a device-bound
/// registration whose assertion suddenly says backup-eligible is refused.
#[tokio::test]
async fn a_backup_eligibility_change_from_registration_is_refused() {
    let mut token = Token::new(softtoken_aaguid());
    let (h, _b, id) = enroll_formatted(&mut token, Format::Packed).await;
    assert!(!only_credential(&h, "alice").await.backup_eligible);
    let bound = "https://bound.test/";
    let mut b = h.browser();
    let (_, begun) = login_begin(&mut b, bound, Some("alice")).await;
    let a = token.assert(&begun["publicKey"], PORTAL, &id, "alice", 1);
    let (s, v) = login_finish(&mut b, &begun["ceremony"], &a).await;
    assert_eq!(s, StatusCode::OK, "device-bound as registered: {v}");
    token.assertion_flags |= 0x08 | 0x10; // BE | BS: "now I am synced"
    let (_, begun) = login_begin(&mut b, bound, Some("alice")).await;
    let a = token.assert(&begun["publicKey"], PORTAL, &id, "alice", 2);
    let (s, v) = login_finish(&mut b, &begun["ceremony"], &a).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("backup_eligibility_changed")),
        "{v}"
    );
}

/// Issue 11: a cloned credential kept its sessions. Two gateways share one
/// Redis; the clone is caught on one, and the other refuses the sessions the
/// credential made within 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_regression_ends_the_credentials_sessions_on_every_instance() {
    let redis = crate::kit::RedisServer::start();
    let on_redis = || TestConfig::new().redis(&redis.url(), "clone:");
    let a = unrelated_serving(on_redis()).await;
    let b = unrelated_serving(on_redis().cookie_key(&a.dir.path().join("cookie.key"))).await;

    let (mut token, _ca) = SoftToken::new(true).unwrap_or_else(|e| panic!("{e:?}"));
    let mut alice = a.browser();
    let invite = a.invite("alice", None).await;
    let (s, v) = enroll(&mut alice, &mut token, &invite, "key", &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Someone copies the authenticator (its keys and its counter).
    let mut clone = token
        .to_cbor()
        .and_then(|c| SoftToken::from_cbor(&c))
        .unwrap_or_else(|e| panic!("{e:?}"));

    let (s, v) = login(
        &mut alice,
        &mut token,
        APP,
        Some("alice"),
        &Client::default(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cookie = through_callback(&mut alice, &v, "app.test").await;
    for (name, h) in [("a", &a), ("b", &b)] {
        assert_eq!(opened(h, "app.test", "/", &cookie), 200, "instance {name}");
    }

    // The clone signs in on instance a: its counter did not move past the stored one.
    let mut thief = a.browser();
    let (s, v) = login(
        &mut thief,
        &mut clone,
        APP,
        Some("alice"),
        &Client::default(),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("counter_regressed")),
        "{v}"
    );
    let flagged_at = Instant::now();
    for (name, h) in [("b", &b), ("a", &a)] {
        crate::kit::until_status(
            302,
            flagged_at,
            Duration::from_secs(1),
            &format!("instance {name} with a cloned credential's session"),
            || opened(h, "app.test", "/", &cookie),
        );
    }
    // And the flagged credential is offered nowhere any more (a named begin
    // answers as for any name, with nothing of alice's in it).
    let mut again = b.browser();
    let id = a.credential_id("alice", "key").await;
    let (s, v) = login_begin(&mut again, APP, Some("alice")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!id.is_empty() && !v.to_string().contains(&id), "{v}");
}

/// Write `yaml` as the config file and reload it as SIGHUP would.
async fn reload_with(h: &Harness, yaml: &str) {
    let path = h.dir.path().join("stepgate.yaml");
    if let Err(e) = std::fs::write(&path, yaml) {
        panic!("write config: {e}");
    }
    let before = h.gw.snapshot().generation;
    stepgate::server::reload::reload_and_apply(&path, &h.gw, "test").await;
    assert!(
        h.gw.snapshot().generation > before,
        "the reload was not applied"
    );
}

/// Issue 11: standing was frozen at ceremony time. Editing a set and reloading
/// now reaches a live grant on its next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_set_and_reloading_reaches_live_grants() {
    let (mut token, ca) = SoftToken::new(true).unwrap_or_else(|e| panic!("{e:?}"));
    let h = serving_trusting(&ca).await;
    let original = h.yaml.clone();
    let mut b = h.browser();
    let invite = h.invite("alice", None).await;
    let (s, v) = enroll(&mut b, &mut token, &invite, "soft key", &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = login(&mut b, &mut token, ADMIN, None, &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cookie = through_callback(&mut b, &v, "admin.test").await;
    assert_eq!(opened(&h, "admin.test", "/settings", &cookie), 200);

    // The set no longer lists the model.
    let without_model = original.replace(
        &format!("aaguids: [{SOFTTOKEN_AAGUID}]"),
        &format!("aaguids: [{OTHER_MODEL}]"),
    );
    assert_ne!(without_model, original);
    reload_with(&h, &without_model).await;
    assert_eq!(opened(&h, "admin.test", "/settings", &cookie), 302);
    // The login page then asks for a passkey that fits, and alice has none.
    let (s, v) = login_begin(&mut b, ADMIN, Some("alice")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("your passkeys: soft key"),
        "{v}"
    );

    // Back as it was: the same grant counts again (nothing was lost, only judged).
    reload_with(&h, &original).await;
    assert_eq!(opened(&h, "admin.test", "/settings", &cookie), 200);

    // The root stays, but now vouches only for another model.
    let ca_path = h.dir.path().join("softkey-ca.pem");
    let narrowed = original.replace(
        &softkey_set(&ca_path),
        &format!(
            "authenticators:\n  softkey:\n    aaguids: [{SOFTTOKEN_AAGUID}, {OTHER_MODEL}]\n    ca_files: [{{ file: \"{}\", aaguids: [{OTHER_MODEL}] }}]\n",
            ca_path.display()
        ),
    );
    assert_ne!(narrowed, original);
    reload_with(&h, &narrowed).await;
    assert_eq!(opened(&h, "admin.test", "/settings", &cookie), 302);
}

// ------------------------------------------------------- credential ids

/// The refusal label of a finish answer: its JSON `error` (the audit `outcome` too).
fn refused(s: StatusCode, v: &Value) -> (StatusCode, &str) {
    (s, v["error"].as_str().unwrap_or(""))
}

/// Issue 19: registration took a 0-byte and a 1100-byte credential id.
#[tokio::test]
async fn credential_ids_outside_1_to_1023_bytes_are_refused_at_registration() {
    let mut token = Token::new(softtoken_aaguid());
    let h = trusting(&token.ca).await;
    let mut b = h.browser();
    for bytes in [0, 1024, 1100] {
        token.credential_id_bytes = bytes;
        let (s, v, _) = enroll_with(&h, &mut b, |o| {
            token.register(o, PORTAL, softtoken_aaguid(), Format::Packed)
        })
        .await;
        assert_eq!(
            refused(s, &v),
            (StatusCode::BAD_REQUEST, "credential_id_length"),
            "{bytes} bytes: {v}"
        );
        assert!(
            v["message"]
                .as_str()
                .unwrap_or("")
                .contains("Use another passkey"),
            "{v}"
        );
        assert_eq!(h.gw.store.count_credentials().await.unwrap_or(9), 0);
    }
    // The bounds themselves are allowed.
    for bytes in [1, 1023] {
        token.credential_id_bytes = bytes;
        let (s, v, id) = enroll_with(&h, &mut b, |o| {
            token.register(o, PORTAL, softtoken_aaguid(), Format::Packed)
        })
        .await;
        assert_eq!(s, StatusCode::OK, "{bytes} bytes: {v}");
        assert_eq!(crate::kit::b64url_decode(&id).len(), bytes);
    }
}

/// Issue 19: registration did not insist that `rawId` names the credential
/// the authenticator data attests (it stored the attested one, whatever the
/// browser said).
#[tokio::test]
async fn a_raw_id_or_id_other_than_the_attested_credential_id_is_refused() {
    let mut token = Token::new(softtoken_aaguid());
    let h = trusting(&token.ca).await;
    let mut b = h.browser();
    let other = stepgate::webauthn::b64url(&rand::random::<[u8; 32]>());
    for field in [&["rawId", "id"][..], &["rawId"], &["id"]] {
        let (s, v, _) = enroll_with(&h, &mut b, |o| {
            let mut reg = token.register(o, PORTAL, softtoken_aaguid(), Format::Packed);
            for f in field {
                reg[*f] = other.clone().into();
            }
            reg
        })
        .await;
        assert_eq!(
            refused(s, &v),
            (StatusCode::BAD_REQUEST, "credential_id_mismatch"),
            "{field:?}: {v}"
        );
        assert_eq!(h.gw.store.count_credentials().await.unwrap_or(9), 0);
    }
}

/// Issue 19: an assertion naming a credential id WebAuthn does not allow is
/// refused as such, before any lookup.
#[tokio::test]
async fn an_assertion_naming_a_credential_id_outside_1_to_1023_bytes_is_refused() {
    let mut token = Token::new(softtoken_aaguid());
    let (h, _b, id) = enroll_formatted(&mut token, Format::Packed).await;
    for bytes in [0, 1100] {
        let mut b = h.browser();
        let (s, begun) = login_begin(&mut b, APP, Some("alice")).await;
        assert_eq!(s, StatusCode::OK, "{begun}");
        let mut a = token.assert(&begun["publicKey"], PORTAL, &id, "alice", 1);
        let named = stepgate::webauthn::b64url(&vec![7u8; bytes]);
        a["id"] = named.clone().into();
        a["rawId"] = named.into();
        let (s, v) = login_finish(&mut b, &begun["ceremony"], &a).await;
        assert_eq!(
            refused(s, &v),
            (StatusCode::BAD_REQUEST, "credential_id_length"),
            "{bytes} bytes: {v}"
        );
    }
    // The passkey itself still signs in.
    let mut b = h.browser();
    let (_, begun) = login_begin(&mut b, APP, Some("alice")).await;
    let a = token.assert(&begun["publicKey"], PORTAL, &id, "alice", 2);
    let (s, v) = login_finish(&mut b, &begun["ceremony"], &a).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

// ----------------------------------------------------------------- MDS3

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mds")
        .join(name)
}

fn fixture_aaguid() -> Uuid {
    let text = std::fs::read_to_string(fixture("aaguid.txt")).unwrap_or_default();
    Uuid::parse_str(text.trim()).unwrap_or_else(|e| panic!("aaguid.txt: {e}"))
}

/// The `softkey` set as the fixture model, proven by the fixture blob `blob`.
fn mds_section(blob: &str) -> String {
    format!(
        "authenticators:\n  softkey:\n    aaguids: [{}]\n    mds_file: \"{}\"\n    mds_root: \"{}\"\n",
        fixture_aaguid(),
        fixture(blob).display(),
        fixture("mds-root.pem").display()
    )
}

/// Enroll the fixture model under blob `blob` and try the admin rule.
/// Returns the trust warnings and the admin sign-in's status.
async fn with_blob(blob: &str) -> (Vec<String>, StatusCode, Value) {
    let h = Harness::with(|_| mds_section(blob), (1000, 1000)).await;
    let mut token = Token::fixture();
    let mut b = h.browser();
    let (s, v, id) = enroll_with(&h, &mut b, |o| {
        token.register(o, PORTAL, fixture_aaguid(), Format::Packed)
    })
    .await;
    assert_eq!(s, StatusCode::OK, "{blob}: {v}");
    let warnings =
        h.gw.snapshot()
            .config
            .trust
            .warnings()
            .iter()
            .map(|w| w.to_string())
            .collect();
    let (s, v) = forced_admin_sign_in(&h, &mut token, &id, 1).await;
    (warnings, s, v)
}

#[tokio::test]
async fn a_verified_mds_blob_proves_a_model() {
    let (warnings, s, v) = with_blob("valid.jwt").await;
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn mds_blobs_that_fail_verification_or_vouch_for_nothing_are_refused() {
    for (blob, reason) in [
        ("wrong-signer.jwt", "does not chain to mds_root"),
        // Issue 19: any certificate under the root signed a trusted blob.
        (
            "other-subject.jwt",
            "signing certificate (CN=blob.example.com, O=Example Corp, C=US) is not the FIDO Alliance's MDS signer",
        ),
        ("tampered.jwt", "signature does not verify"),
        ("expired.jwt", "expired at its nextUpdate (2020-01-01)"),
        ("revoked.jwt", "has status REVOKED"),
    ] {
        let (warnings, s, v) = with_blob(blob).await;
        assert_eq!(warnings.len(), 1, "{blob}: {warnings:?}");
        assert!(
            warnings[0].starts_with("authenticators.softkey.mds_file: ")
                && warnings[0].contains(reason),
            "{blob}: {warnings:?}"
        );
        assert_eq!(s, StatusCode::FORBIDDEN, "{blob}: {v}");
    }
}

#[test]
fn stepgate_check_warns_about_an_expired_mds_blob() {
    let config = portal_config(TestConfig::new(), &mds_section("expired.jwt"), (10, 10));
    let yaml = config.yaml(([127, 0, 0, 1], 0).into(), None);
    let path = config.path("stepgate.yaml");
    if let Err(e) = std::fs::write(&path, yaml) {
        panic!("{e}");
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = stepgate::commands::check(&path, &mut out, &mut err).unwrap_or(99);
    let err = String::from_utf8_lossy(&err);
    assert_eq!(code, 0, "a warning, not an error: {err}");
    assert!(
        err.contains("authenticators.softkey.mds_file: MDS blob")
            && err.contains("expired at its nextUpdate (2020-01-01)"),
        "{err}"
    );
}
