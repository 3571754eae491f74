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
        cred.attestation.is_some(),
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
            .app_session(&h.hash_of(&cookie))
            .await
            .ok()
            .flatten();
    let view = view.unwrap_or_else(|| panic!("no app session"));
    let rt = h.gw.config.load();
    let standing = view.standing(&cred.id);
    assert_eq!(
        rt.trust
            .sets_of(standing.and_then(|c| c.attestation.as_ref()), h.now()),
        vec!["softkey".to_string()]
    );
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
    assert!(cred.attestation.is_none(), "but proves nothing");
    let acct = b.get(&format!("{PORTAL}/.stepgate/account")).await;
    assert!(body_text(&acct).contains("says it is softkey (not proven)"));

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

/// A hand-made packed-attestation authenticator whose attestation certificate
/// carries the FIDO AAGUID extension (id-fido-gen-ce-aaguid) with any AAGUID,
/// so a test can make it differ from the authenticator data's AAGUID.
mod handmade {
    use std::collections::BTreeMap;
    use std::str::FromStr;
    use std::time::{Duration, SystemTime};

    use crypto_glue::ecdsa_p256::{
        self, EcdsaP256PublicSec1Point, EcdsaP256Signature, EcdsaP256SigningKey,
        EcdsaP256VerifyingKey,
    };
    use crypto_glue::ecdsa_p384::{
        EcdsaP384DerSignature, EcdsaP384SigningKey, EcdsaP384VerifyingKey,
    };
    use crypto_glue::traits::{EncodeDer, Generate, Signer, ToExtension};
    use crypto_glue::x509::{
        BasicConstraints, Builder, CertBuilderError, Certificate, CertificateBuilder, Extension,
        Name, ObjectIdentifier, OctetString, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef,
        TbsCertificate, Time, Validity,
        profile::{BuilderProfile, cabf::Root},
        uuid_to_serial,
    };
    use serde_cbor_2::Value as Cbor;
    use sha2::{Digest, Sha256};
    use uuid::Uuid;

    fn fail<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> Certificate + '_ {
        move |e| panic!("{what}: {e:?}")
    }

    fn validity() -> Validity {
        let now = SystemTime::now();
        let nb = Time::try_from(now - Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e:?}"));
        let na =
            Time::try_from(now + Duration::from_secs(86400)).unwrap_or_else(|e| panic!("{e:?}"));
        Validity::new(nb, na)
    }

    struct Leaf {
        subject: Name,
        issuer: Name,
        cert_aaguid: Uuid,
    }

    impl BuilderProfile for Leaf {
        fn get_issuer(&self, _subject: &Name) -> Name {
            self.issuer.clone()
        }
        fn get_subject(&self) -> Name {
            self.subject.clone()
        }
        fn build_extensions(
            &self,
            _spk: SubjectPublicKeyInfoRef<'_>,
            _issuer_spk: SubjectPublicKeyInfoRef<'_>,
            tbs: &TbsCertificate,
        ) -> Result<Vec<Extension>, CertBuilderError> {
            let mut ext = vec![];
            ext.push(
                BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                }
                .to_extension(tbs.subject(), &ext)?,
            );
            // extnValue = DER OCTET STRING holding the 16 AAGUID bytes.
            let mut inner = vec![0x04, 0x10];
            inner.extend_from_slice(self.cert_aaguid.as_bytes());
            ext.push(Extension {
                extn_id: ObjectIdentifier::new_unwrap("1.3.6.1.4.1.45724.1.1.4"),
                critical: false,
                extn_value: OctetString::new(inner).map_err(CertBuilderError::from)?,
            });
            Ok(ext)
        }
    }

    /// A CA, and an attestation key whose certificate names `cert_aaguid`.
    pub struct Token {
        pub ca: Certificate,
        leaf: Certificate,
        leaf_key: EcdsaP256SigningKey,
    }

    impl Token {
        pub fn new(cert_aaguid: Uuid) -> Token {
            let ca_key = EcdsaP384SigningKey::generate();
            let ca_pub = SubjectPublicKeyInfoOwned::from_key(&EcdsaP384VerifyingKey::from(&ca_key))
                .unwrap_or_else(|e| panic!("{e:?}"));
            let ca_name = Name::from_str("CN=Handmade Test CA,O=stepgate tests,C=AU")
                .unwrap_or_else(|e| panic!("{e:?}"));
            let profile = Root::new(false, ca_name.clone()).unwrap_or_else(|e| panic!("{e:?}"));
            let ca = CertificateBuilder::new(
                profile,
                uuid_to_serial(Uuid::new_v4()),
                validity(),
                ca_pub,
            )
            .unwrap_or_else(|e| panic!("{e:?}"))
            .build::<EcdsaP384SigningKey, EcdsaP384DerSignature>(&ca_key)
            .unwrap_or_else(fail("ca"));
            let leaf_key = EcdsaP256SigningKey::generate();
            let leaf_pub =
                SubjectPublicKeyInfoOwned::from_key(&EcdsaP256VerifyingKey::from(&leaf_key))
                    .unwrap_or_else(|e| panic!("{e:?}"));
            let subject = Name::from_str(
                "C=AU,O=stepgate tests,CN=Handmade Token,OU=Authenticator Attestation",
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
            let leaf = CertificateBuilder::new(
                Leaf {
                    subject,
                    issuer: ca_name,
                    cert_aaguid,
                },
                uuid_to_serial(Uuid::new_v4()),
                validity(),
                leaf_pub,
            )
            .unwrap_or_else(|e| panic!("{e:?}"))
            .build::<EcdsaP384SigningKey, EcdsaP384DerSignature>(&ca_key)
            .unwrap_or_else(fail("leaf"));
            Token { ca, leaf, leaf_key }
        }

        /// A registration response (browser JSON) whose authData names `aaguid`.
        pub fn register(
            &self,
            options: &serde_json::Value,
            origin: &str,
            aaguid: Uuid,
        ) -> serde_json::Value {
            let rp_id = options["rp"]["id"].as_str().unwrap_or("");
            let challenge = options["challenge"].as_str().unwrap_or("");
            let cdj = format!(
                r#"{{"type":"webauthn.create","challenge":"{challenge}","origin":"{origin}","crossOrigin":false}}"#
            );
            let key = ecdsa_p256::new_key();
            let point = EcdsaP256PublicSec1Point::from(key.public_key());
            let mut cose = BTreeMap::new();
            cose.insert(Cbor::Integer(1), Cbor::Integer(2));
            cose.insert(Cbor::Integer(3), Cbor::Integer(-7));
            cose.insert(Cbor::Integer(-1), Cbor::Integer(1));
            cose.insert(
                Cbor::Integer(-2),
                Cbor::Bytes(point.x().map(|b| b.to_vec()).unwrap_or_default()),
            );
            cose.insert(
                Cbor::Integer(-3),
                Cbor::Bytes(point.y().map(|b| b.to_vec()).unwrap_or_default()),
            );
            let cose = serde_cbor_2::to_vec(&Cbor::Map(cose)).unwrap_or_default();
            let cred_id: [u8; 32] = rand::random();
            let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
            auth_data.push(0x45); // UP | UV | AT
            auth_data.extend_from_slice(&0u32.to_be_bytes());
            auth_data.extend_from_slice(aaguid.as_bytes());
            auth_data.extend_from_slice(&(cred_id.len() as u16).to_be_bytes());
            auth_data.extend_from_slice(&cred_id);
            auth_data.extend_from_slice(&cose);
            let mut signed = auth_data.clone();
            signed.extend_from_slice(&Sha256::digest(cdj.as_bytes()));
            let sig: EcdsaP256Signature = self
                .leaf_key
                .try_sign(&signed)
                .unwrap_or_else(|e| panic!("{e:?}"));
            let mut stmt = BTreeMap::new();
            stmt.insert(Cbor::Text("alg".into()), Cbor::Integer(-7));
            stmt.insert(
                Cbor::Text("sig".into()),
                Cbor::Bytes(sig.to_der().as_bytes().to_vec()),
            );
            stmt.insert(
                Cbor::Text("x5c".into()),
                Cbor::Array(vec![Cbor::Bytes(self.leaf.to_der().unwrap_or_default())]),
            );
            let mut ao = BTreeMap::new();
            ao.insert(Cbor::Text("fmt".into()), Cbor::Text("packed".into()));
            ao.insert(Cbor::Text("attStmt".into()), Cbor::Map(stmt));
            ao.insert(Cbor::Text("authData".into()), Cbor::Bytes(auth_data));
            let ao = serde_cbor_2::to_vec(&Cbor::Map(ao)).unwrap_or_default();
            let b64 = |b: &[u8]| stepgate::webauthn::b64url(b);
            serde_json::json!({
                "id": b64(&cred_id),
                "rawId": b64(&cred_id),
                "type": "public-key",
                "response": {
                    "attestationObject": b64(&ao),
                    "clientDataJSON": b64(cdj.as_bytes()),
                    "transports": ["usb"],
                },
                "extensions": {},
            })
        }
    }
}

/// Enroll with the hand-made token whose certificate names `cert_aaguid`
/// while its authenticator data names the SoftToken AAGUID.
async fn enroll_handmade(cert_aaguid: uuid::Uuid) -> (Harness, StatusCode, Value) {
    let token = handmade::Token::new(cert_aaguid);
    let h = trusting(&token.ca).await;
    let mut b = h.browser();
    let invite = h.invite("alice", None).await;
    let (s, begun) = b
        .api(
            "enroll/begin",
            &serde_json::json!({"token": invite, "label": "handmade"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{begun}");
    let auth_data_aaguid = uuid::Uuid::parse_str(SOFTTOKEN_AAGUID).unwrap_or_default();
    let reg = token.register(&begun["publicKey"], PORTAL, auth_data_aaguid);
    let (s, v) = b
        .api(
            "enroll/finish",
            &serde_json::json!({"ceremony": begun["ceremony"], "credential": reg}),
        )
        .await;
    (h, s, v)
}

#[tokio::test]
async fn a_certificate_aaguid_matching_the_authenticator_data_is_attested() {
    // Control for the next test: the hand-made token itself is sound.
    let aaguid = uuid::Uuid::parse_str(SOFTTOKEN_AAGUID).unwrap_or_default();
    let (h, s, v) = enroll_handmade(aaguid).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cred = &h
        .gw
        .store
        .credentials(Some("alice"))
        .await
        .unwrap_or_default()[0];
    assert!(cred.attestation.is_some());
}

#[tokio::test]
async fn a_certificate_aaguid_differing_from_the_authenticator_data_is_refused() {
    let other = uuid::Uuid::parse_str("cb69481e-8ff7-4039-93ec-0a2729a154a8").unwrap_or_default();
    let (h, s, v) = enroll_handmade(other).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "bad_attestation", "{v}");
    assert_eq!(h.gw.store.count_credentials().await.unwrap_or(9), 0);
}

/// An offline MDS3 blob (JWT) whose one entry lists `ca` for the SoftToken AAGUID.
fn mds_blob(ca: &crypto_glue::x509::Certificate, status: &str) -> String {
    use crypto_glue::traits::EncodeDer;
    let der = ca.to_der().unwrap_or_default();
    let payload = serde_json::json!({
        "no": 1, "nextUpdate": "2099-01-01",
        "entries": [{
            "aaguid": SOFTTOKEN_AAGUID,
            "metadataStatement": {
                "description": "Soft Token",
                "attestationRootCertificates": [base64::engine::general_purpose::STANDARD.encode(der)],
            },
            "statusReports": [{"status": status, "effectiveDate": "2024-01-01"}],
        }],
    });
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        e.encode(r#"{"alg":"ES256","typ":"JWT"}"#),
        e.encode(payload.to_string()),
        e.encode(b"unchecked")
    )
}

async fn with_mds(ca: &crypto_glue::x509::Certificate, status: &str) -> Harness {
    let blob = mds_blob(ca, status);
    Harness::with(
        move |dir| {
            let path = dir.join("mds.jwt");
            if let Err(e) = std::fs::write(&path, &blob) {
                panic!("write mds: {e}");
            }
            format!(
                "authenticators:\n  softkey:\n    aaguids: [{SOFTTOKEN_AAGUID}]\n    mds_file: \"{}\"\n",
                path.display()
            )
        },
        (1000, 1000),
    )
    .await
}

#[tokio::test]
async fn an_offline_mds_blob_proves_a_model() {
    let (mut token, ca) = SoftToken::new(true).unwrap_or_else(|e| panic!("{e:?}"));
    let h = with_mds(&ca, "FIDO_CERTIFIED_L1").await;
    let mut b = h.browser();
    let invite = h.invite("alice", None).await;
    let (s, v) = enroll(&mut b, &mut token, &invite, "soft key", &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = login(&mut b, &mut token, ADMIN, None, &Client::default()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn a_revoked_mds_entry_proves_nothing() {
    let (mut token, ca) = SoftToken::new(true).unwrap_or_else(|e| panic!("{e:?}"));
    let h = with_mds(&ca, "REVOKED").await;
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
    assert!(cred.attestation.is_none());
    let (s, v) = login_begin(&mut b, ADMIN, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}
