//! Attestation: which authenticator model a credential is *proven* to be.
//!
//! A SoftToken makes packed attestation whose certificate chains to its own
//! test CA; listing that CA in `ca_files` (with the token's AAGUID) makes its
//! credentials satisfy an `authenticators:` rule. A `none` attestation that
//! merely claims the same AAGUID does not, and a certificate whose AAGUID
//! extension differs from the authenticator data's AAGUID is refused.

use base64::Engine;
use http::StatusCode;
use serde_json::Value;
use stepgate::policy::{Decision, SessionState, decide};
use stepgate::session::token_hash;
use webauthn_authenticator_rs::softtoken::SoftToken;

use crate::portal_util::*;

const ADMIN: &str = "https://admin.test/settings";

/// A harness whose `softkey` set trusts `token`'s CA.
async fn trusting(ca: &crypto_glue::x509::Certificate) -> Harness {
    Harness::with(
        |dir| {
            let path = dir.join("softkey-ca.pem");
            write_pem(&path, ca);
            softkey_set(&path)
        },
        (1000, 1000),
    )
    .await
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .unwrap_or_default()
}

#[tokio::test]
async fn an_attested_model_satisfies_an_authenticators_rule() {
    let (mut token, ca) = SoftToken::new(true).unwrap_or_else(|e| panic!("{e:?}"));
    let h = trusting(&ca).await;
    let mut b = h.browser();
    let invite = h.invite("alice", None).await;
    let (s, v) = enroll(&mut b, &mut token, &invite, "soft key", &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cred = &h
        .gw
        .store
        .credentials(Some("alice"))
        .await
        .unwrap_or_default()[0];
    assert_eq!(cred.aaguid.to_string(), SOFTTOKEN_AAGUID);
    assert!(
        cred.attestation_root.is_some(),
        "the chain to the test CA is recorded"
    );

    let (s, v) = login(&mut b, &mut token, ADMIN, None, &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cb = b.get(v["redirect"].as_str().unwrap_or("")).await;
    assert_eq!(cb.status, StatusCode::SEE_OTHER);
    let cookie = b
        .cookie("admin.test", "__Host-stepgate_app")
        .unwrap_or_default();
    let view =
        h.gw.store
            .app_session(&token_hash(&cookie))
            .await
            .ok()
            .flatten();
    let view = view.unwrap_or_else(|| panic!("no app session"));
    assert_eq!(
        view.grants[0].verification.attested_sets,
        vec!["softkey".to_string()]
    );
    let rt = h.gw.config.load();
    let rule = rt.rules.iter().find(|r| r.name == "admin");
    assert!(matches!(
        decide(&rt, rule, SessionState::Live(&view), h.now()),
        Decision::Allow { .. }
    ));
}

/// Rewrite a registration's attestation object to `fmt: none` (authData, and
/// so the claimed AAGUID, unchanged).
fn to_none_attestation(reg: &mut Value) {
    let ao = b64(reg["response"]["attestationObject"].as_str().unwrap_or(""));
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

#[tokio::test]
async fn none_attestation_claiming_an_allowed_aaguid_does_not_count() {
    let (mut token, ca) = SoftToken::new(true).unwrap_or_else(|e| panic!("{e:?}"));
    let h = trusting(&ca).await;
    let mut b = h.browser();
    let invite = h.invite("alice", None).await;
    let (s, begun) = b
        .api(
            "enroll/begin",
            &serde_json::json!({"token": invite, "label": "claims"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut reg = create(&mut token, &begun["publicKey"], &Client::default());
    to_none_attestation(&mut reg);
    let (s, v) = b
        .api(
            "enroll/finish",
            &serde_json::json!({"ceremony": begun["ceremony"], "credential": reg}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "an unattested passkey still enrolls: {v}"
    );
    let cred = &h
        .gw
        .store
        .credentials(Some("alice"))
        .await
        .unwrap_or_default()[0];
    assert_eq!(
        cred.aaguid.to_string(),
        SOFTTOKEN_AAGUID,
        "it claims the model"
    );
    assert!(cred.attestation_root.is_none(), "but proves nothing");

    // The admin rule wants a proven softkey: nothing to offer.
    let (s, v) = login_begin(&mut b, ADMIN, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Forced through the usernameless path, the ceremony is refused at finish.
    let (s, begun) = login_begin(&mut b, "https://app.test/", None).await;
    assert_eq!(s, StatusCode::OK);
    let _ = begun;
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
