//! A hand-made authenticator for the attestation tests: it writes its own
//! attestation objects, so a test can choose the statement format (packed with
//! a certificate, packed self attestation, `fido-u2f`), put any AAGUID in the
//! authenticator data and in the certificate's AAGUID extension, make
//! credential ids of any length, and sign assertions with the credentials it
//! made (counter under the test's control).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use crypto_glue::ecdsa_p256::{
    self, EcdsaP256PublicSec1Point, EcdsaP256Signature, EcdsaP256SigningKey, EcdsaP256VerifyingKey,
};
use crypto_glue::ecdsa_p384::{EcdsaP384DerSignature, EcdsaP384SigningKey, EcdsaP384VerifyingKey};
use crypto_glue::traits::{
    DecodePem, EncodeDer, Generate, Pkcs8DecodePrivateKey, Signer, ToExtension,
};
use crypto_glue::x509::{
    BasicConstraints, Builder, CertBuilderError, Certificate, CertificateBuilder, Extension, Name,
    ObjectIdentifier, OctetString, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef,
    TbsCertificate, Time, Validity,
    profile::{BuilderProfile, cabf::Root},
    uuid_to_serial,
};
use serde_cbor_2::Value as Cbor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The attestation statement a registration carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `packed` with the attestation certificate (`x5c`): signs authData.
    Packed,
    /// `packed` without `x5c`: signed by the new credential's own key.
    PackedSelf,
    /// `fido-u2f`: signs rpIdHash, clientDataHash, credential id and key, not authData.
    FidoU2f,
}

fn validity() -> Validity {
    let now = SystemTime::now();
    let nb = Time::try_from(now - Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e:?}"));
    let na = Time::try_from(now + Duration::from_secs(86400)).unwrap_or_else(|e| panic!("{e:?}"));
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
        // extnValue = DER OCTET STRING holding the 16 AAGUID bytes (id-fido-gen-ce-aaguid).
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

/// A credential the token made.
struct Made {
    key: EcdsaP256SigningKey,
    counter: u32,
}

/// An authenticator with one attestation certificate (and its CA).
pub struct Token {
    /// Flags of the assertions it signs (default UP | UV; add 0x08 for BE, 0x10 for BS).
    pub assertion_flags: u8,
    /// How long the credential ids it makes are, in bytes (default 32).
    pub credential_id_bytes: usize,
    pub ca: Certificate,
    leaf: Certificate,
    leaf_key: EcdsaP256SigningKey,
    creds: HashMap<Vec<u8>, Made>,
}

impl Token {
    /// A new CA and an attestation certificate naming `cert_aaguid`.
    pub fn new(cert_aaguid: Uuid) -> Token {
        let ca_key = EcdsaP384SigningKey::generate();
        let ca_pub = SubjectPublicKeyInfoOwned::from_key(&EcdsaP384VerifyingKey::from(&ca_key))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let ca_name = Name::from_str("CN=Handmade Test CA,O=stepgate tests,C=AU")
            .unwrap_or_else(|e| panic!("{e:?}"));
        let profile = Root::new(false, ca_name.clone()).unwrap_or_else(|e| panic!("{e:?}"));
        let ca =
            CertificateBuilder::new(profile, uuid_to_serial(Uuid::new_v4()), validity(), ca_pub)
                .unwrap_or_else(|e| panic!("{e:?}"))
                .build::<EcdsaP384SigningKey, EcdsaP384DerSignature>(&ca_key)
                .unwrap_or_else(|e| panic!("ca: {e:?}"));
        let leaf_key = EcdsaP256SigningKey::generate();
        let leaf_pub = SubjectPublicKeyInfoOwned::from_key(&EcdsaP256VerifyingKey::from(&leaf_key))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let subject =
            Name::from_str("C=AU,O=stepgate tests,CN=Handmade Token,OU=Authenticator Attestation")
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
        .unwrap_or_else(|e| panic!("leaf: {e:?}"));
        Token {
            assertion_flags: 0x05,
            credential_id_bytes: 32,
            ca,
            leaf,
            leaf_key,
            creds: HashMap::new(),
        }
    }

    /// The fixture model of `tests/fixtures/mds` (its root is in the fixture blobs).
    pub fn fixture() -> Token {
        let dir = crate::repo_root().join("tests/fixtures/mds");
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let cert = |name: &str| {
            Certificate::from_pem(read(name).as_bytes()).unwrap_or_else(|e| panic!("{name}: {e:?}"))
        };
        let leaf_key = EcdsaP256SigningKey::from_pkcs8_pem(&read("attestation-leaf.key"))
            .unwrap_or_else(|e| panic!("attestation-leaf.key: {e:?}"));
        Token {
            assertion_flags: 0x05,
            credential_id_bytes: 32,
            ca: cert("attestation-root.pem"),
            leaf: cert("attestation-leaf.pem"),
            leaf_key,
            creds: HashMap::new(),
        }
    }

    /// A registration response (browser JSON) in `format` whose authData names `aaguid` (and claims UV).
    pub fn register(
        &mut self,
        options: &Value,
        origin: &str,
        aaguid: Uuid,
        format: Format,
    ) -> Value {
        let rp_id = options["rp"]["id"].as_str().unwrap_or("");
        let challenge = options["challenge"].as_str().unwrap_or("");
        let cdj = format!(
            r#"{{"type":"webauthn.create","challenge":"{challenge}","origin":"{origin}","crossOrigin":false}}"#
        );
        let key = ecdsa_p256::new_key();
        let point = EcdsaP256PublicSec1Point::from(key.public_key());
        let (x, y) = (
            point.x().map(|b| b.to_vec()).unwrap_or_default(),
            point.y().map(|b| b.to_vec()).unwrap_or_default(),
        );
        let cred_id: Vec<u8> = (0..self.credential_id_bytes)
            .map(|_| rand::random::<u8>())
            .collect();
        let rp_hash = Sha256::digest(rp_id.as_bytes()).to_vec();
        let auth_data = registration_auth_data(&rp_hash, aaguid, &cred_id, &x, &y);
        let cdh = Sha256::digest(cdj.as_bytes()).to_vec();
        let key = EcdsaP256SigningKey::from(key);
        let x5c = Cbor::Array(vec![Cbor::Bytes(self.leaf.to_der().unwrap_or_default())]);
        let (fmt, stmt) = match format {
            Format::Packed => (
                "packed",
                vec![
                    ("alg", Cbor::Integer(-7)),
                    (
                        "sig",
                        Cbor::Bytes(sign(&self.leaf_key, &[&auth_data, &cdh])),
                    ),
                    ("x5c", x5c),
                ],
            ),
            Format::PackedSelf => (
                "packed",
                vec![
                    ("alg", Cbor::Integer(-7)),
                    ("sig", Cbor::Bytes(sign(&key, &[&auth_data, &cdh]))),
                ],
            ),
            Format::FidoU2f => {
                let mut pk = vec![0x04];
                pk.extend_from_slice(&x);
                pk.extend_from_slice(&y);
                let signed = sign(&self.leaf_key, &[&[0x00], &rp_hash, &cdh, &cred_id, &pk]);
                ("fido-u2f", vec![("sig", Cbor::Bytes(signed)), ("x5c", x5c)])
            }
        };
        let stmt = stmt
            .into_iter()
            .map(|(k, v)| (Cbor::Text(k.into()), v))
            .collect();
        let mut ao = BTreeMap::new();
        ao.insert(Cbor::Text("fmt".into()), Cbor::Text(fmt.into()));
        ao.insert(Cbor::Text("attStmt".into()), Cbor::Map(stmt));
        ao.insert(Cbor::Text("authData".into()), Cbor::Bytes(auth_data));
        let ao = serde_cbor_2::to_vec(&Cbor::Map(ao)).unwrap_or_default();
        self.creds.insert(cred_id.clone(), Made { key, counter: 0 });
        let b64 = |b: &[u8]| stepgate::webauthn::b64url(b);
        json!({
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

    /// An assertion (browser JSON) answering `options` with the credential
    /// `cred_id` (base64url) for `user`, its counter moved to `counter`.
    pub fn assert(
        &mut self,
        options: &Value,
        origin: &str,
        cred_id: &str,
        user: &str,
        counter: u32,
    ) -> Value {
        let raw = crate::b64url_decode(cred_id);
        let Some(made) = self.creds.get_mut(&raw) else {
            panic!("this token made no credential {cred_id}")
        };
        made.counter = counter;
        let rp_id = options["rpId"].as_str().unwrap_or("");
        let challenge = options["challenge"].as_str().unwrap_or("");
        let cdj = format!(
            r#"{{"type":"webauthn.get","challenge":"{challenge}","origin":"{origin}","crossOrigin":false}}"#
        );
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(self.assertion_flags);
        auth_data.extend_from_slice(&counter.to_be_bytes());
        let cdh = Sha256::digest(cdj.as_bytes()).to_vec();
        let sig = sign(&made.key, &[&auth_data, &cdh]);
        let b64 = |b: &[u8]| stepgate::webauthn::b64url(b);
        json!({
            "id": cred_id,
            "rawId": cred_id,
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(cdj.as_bytes()),
                "signature": b64(&sig),
                "userHandle": b64(&stepgate::webauthn::user_handle(user)),
            },
            "extensions": {},
        })
    }
}

/// Registration authenticator data: UP, UV and AT set, counter 0, `aaguid`,
/// the credential id and its P-256 key (COSE).
fn registration_auth_data(
    rp_hash: &[u8],
    aaguid: Uuid,
    cred_id: &[u8],
    x: &[u8],
    y: &[u8],
) -> Vec<u8> {
    let mut cose = BTreeMap::new();
    cose.insert(Cbor::Integer(1), Cbor::Integer(2));
    cose.insert(Cbor::Integer(3), Cbor::Integer(-7));
    cose.insert(Cbor::Integer(-1), Cbor::Integer(1));
    cose.insert(Cbor::Integer(-2), Cbor::Bytes(x.to_vec()));
    cose.insert(Cbor::Integer(-3), Cbor::Bytes(y.to_vec()));
    let cose = serde_cbor_2::to_vec(&Cbor::Map(cose)).unwrap_or_default();
    let mut auth_data = rp_hash.to_vec();
    auth_data.push(0x45); // UP | UV | AT
    auth_data.extend_from_slice(&0u32.to_be_bytes());
    auth_data.extend_from_slice(aaguid.as_bytes());
    auth_data.extend_from_slice(&(cred_id.len() as u16).to_be_bytes());
    auth_data.extend_from_slice(cred_id);
    auth_data.extend_from_slice(&cose);
    auth_data
}

/// A DER ECDSA P-256 / SHA-256 signature over the concatenation of `parts`.
fn sign(key: &EcdsaP256SigningKey, parts: &[&[u8]]) -> Vec<u8> {
    let msg: Vec<u8> = parts.concat();
    let sig: EcdsaP256Signature = key.try_sign(&msg).unwrap_or_else(|e| panic!("{e:?}"));
    sig.to_der().as_bytes().to_vec()
}
