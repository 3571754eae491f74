//! FIDO Metadata Service (MDS3) blobs: verify one against the operator's root
//! and read what stepgate needs from it.
//!
//! A blob is a JWS in compact form. Its header's `x5c` carries the signing
//! certificate and its intermediates; the chain must verify (OpenSSL, at the
//! current time) up to a certificate of `mds_root`, the signing certificate
//! must be the FIDO Alliance's MDS signer ([`FIDO_SIGNER`]: its subject's
//! common name, organisation and country pinned), and the signature (RS256 or
//! ES256) over `header.payload` must verify with the signing certificate's key.
//! Only then is the payload read.
//!
//! The pin is why a public root is enough: the real `mds_root` (GlobalSign)
//! certifies countless other names, and none of them may sign a blob. It is
//! not configurable: the operator chooses the root, never the signer's name,
//! so test blobs are signed under a test root by a certificate carrying the
//! FIDO Alliance's subject. Revocation lists named by the certificates
//! are not fetched: the blob is an offline file.
//!
//! The caller decides what an entry is worth: [`Blob::next_update`] says until
//! when the blob may be used at all, and [`Entry::distrust`] names the status
//! report that makes an entry's roots worthless (`REVOKED`, any
//! `*_COMPROMISE`, `USER_VERIFICATION_BYPASS`).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509StoreContext};
use serde::Deserialize;
use uuid::Uuid;

use crate::model::Timestamp;

/// Why a blob was refused. Each names what failed, for the log and `stepgate check`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MdsError {
    #[error("not a JWS (expected three base64url parts: header.payload.signature)")]
    NotJws,
    #[error("bad JWS header: {0}")]
    Header(String),
    #[error("signature algorithm {0:?} is not supported (RS256 or ES256)")]
    Algorithm(String),
    #[error("mds_root holds no usable certificate: {0}")]
    Root(String),
    #[error("the signing certificate does not chain to mds_root: {0}")]
    Chain(String),
    #[error(
        "the signing certificate ({0}) is not the FIDO Alliance's MDS signer ({expected}): \
         use the blob as published at https://mds3.fidoalliance.org/",
        expected = fido_signer()
    )]
    Signer(String),
    #[error(
        "the signature does not verify with the signing certificate (tampered or wrongly signed)"
    )]
    Signature,
    #[error("bad payload: {0}")]
    Payload(String),
}

/// The subject fields the blob's signing certificate must carry, each exactly
/// once and with this value (ASCII case aside): the real MDS3 signer's common
/// name, organisation and country. Its other subject fields (the EV
/// registration's business category, registration number and jurisdiction,
/// the street address) are left free: they are not who it is, and change
/// with an office move or a re-issue.
pub const FIDO_SIGNER: &[(&str, Nid, &str)] = &[
    ("CN", Nid::COMMONNAME, "mds.fidoalliance.org"),
    ("O", Nid::ORGANIZATIONNAME, "FIDO ALLIANCE, INC."),
    ("C", Nid::COUNTRYNAME, "US"),
];

/// [`FIDO_SIGNER`] as people write a subject: `CN=…, O=…, C=…`.
fn fido_signer() -> String {
    FIDO_SIGNER
        .iter()
        .map(|(name, _, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A verified blob: only what stepgate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The blob's serial number (`no`).
    pub serial: u64,
    /// Unix seconds of `nextUpdate` (00:00 UTC that day): the blob proves
    /// nothing from then on.
    pub next_update: Timestamp,
    pub entries: Vec<Entry>,
}

/// One FIDO2 authenticator model of a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub aaguid: Uuid,
    pub description: String,
    /// DER of each `attestationRootCertificates` item.
    pub roots: Vec<Vec<u8>>,
    /// Every status report's `status`.
    pub statuses: Vec<String>,
}

impl Entry {
    /// The status that makes this entry's roots worthless, if any report has one.
    pub fn distrust(&self) -> Option<&str> {
        self.statuses.iter().map(String::as_str).find(|s| {
            *s == "REVOKED" || *s == "USER_VERIFICATION_BYPASS" || s.ends_with("_COMPROMISE")
        })
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    x5c: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    no: u64,
    next_update: String,
    entries: Vec<PayloadEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayloadEntry {
    /// Absent for U2F-only entries (they name key identifiers instead).
    aaguid: Option<String>,
    metadata_statement: Option<Statement>,
    #[serde(default)]
    status_reports: Vec<StatusReport>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(default)]
    description: String,
    #[serde(default)]
    attestation_root_certificates: Vec<String>,
}

#[derive(Deserialize)]
struct StatusReport {
    status: String,
}

fn b64url(part: &str) -> Result<Vec<u8>, MdsError> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| MdsError::NotJws)
}

/// Verify `jws` (the blob file's text) against the PEM certificates `roots_pem`.
pub fn verify(jws: &str, roots_pem: &[u8]) -> Result<Blob, MdsError> {
    let parts: Vec<&str> = jws.trim().split('.').collect();
    let [header_b64, payload_b64, sig_b64] = parts.as_slice() else {
        return Err(MdsError::NotJws);
    };
    let header: Header = serde_json::from_slice(&b64url(header_b64)?)
        .map_err(|e| MdsError::Header(e.to_string()))?;
    let chain = certificates(&header.x5c)?;
    let signer = verify_chain(&chain, roots_pem)?;
    let signing_input = format!("{header_b64}.{payload_b64}");
    verify_signature(
        &header.alg,
        &signer,
        signing_input.as_bytes(),
        &b64url(sig_b64)?,
    )?;
    parse_payload(&b64url(payload_b64)?)
}

/// The `x5c` certificates, signer first.
fn certificates(x5c: &[String]) -> Result<Vec<X509>, MdsError> {
    if x5c.is_empty() {
        return Err(MdsError::Header("no x5c certificate chain".into()));
    }
    x5c.iter()
        .map(|c| {
            let der = STANDARD
                .decode(c)
                .map_err(|_| MdsError::Header("an x5c entry is not base64".into()))?;
            X509::from_der(&der)
                .map_err(|e| MdsError::Header(format!("an x5c entry is not a certificate: {e}")))
        })
        .collect()
}

/// Verify `chain` (signer first) up to one of `roots_pem`, and that the signer
/// is the FIDO Alliance's ([`check_signer`]); returns the signer's key.
fn verify_chain(chain: &[X509], roots_pem: &[u8]) -> Result<PKey<Public>, MdsError> {
    let ssl = |e: openssl::error::ErrorStack| MdsError::Chain(e.to_string());
    let roots = X509::stack_from_pem(roots_pem).map_err(|e| MdsError::Root(e.to_string()))?;
    if roots.is_empty() {
        return Err(MdsError::Root("no PEM certificate".into()));
    }
    let mut builder = X509StoreBuilder::new().map_err(ssl)?;
    for r in roots {
        builder
            .add_cert(r)
            .map_err(|e| MdsError::Root(e.to_string()))?;
    }
    let store = builder.build();
    let (signer, rest) = chain
        .split_first()
        .ok_or(MdsError::Header("no x5c".into()))?;
    let mut intermediates = Stack::new().map_err(ssl)?;
    for c in rest {
        intermediates.push(c.clone()).map_err(ssl)?;
    }
    let mut ctx = X509StoreContext::new().map_err(ssl)?;
    let verdict = ctx
        .init(&store, signer, &intermediates, |c| {
            let ok = c.verify_cert()?;
            Ok((ok, c.error().error_string().to_string()))
        })
        .map_err(ssl)?;
    match verdict {
        (true, _) => {
            check_signer(signer)?;
            signer.public_key().map_err(ssl)
        }
        (false, why) => Err(MdsError::Chain(why)),
    }
}

/// Refuse a signing certificate whose subject is not [`FIDO_SIGNER`].
fn check_signer(cert: &X509) -> Result<(), MdsError> {
    let subject = cert.subject_name();
    let text = |nid: Nid| -> Vec<String> {
        subject
            .entries_by_nid(nid)
            // The whole value: a NUL inside it is part of what is compared.
            .map(|e| e.data().to_string().unwrap_or_default())
            .collect()
    };
    let pinned = FIDO_SIGNER.iter().all(|(_, nid, want)| {
        let got = text(*nid);
        got.len() == 1 && got[0].eq_ignore_ascii_case(want)
    });
    if pinned {
        return Ok(());
    }
    let shown = FIDO_SIGNER
        .iter()
        .flat_map(|(name, nid, _)| text(*nid).into_iter().map(move |v| format!("{name}={v}")))
        .collect::<Vec<_>>()
        .join(", ");
    Err(MdsError::Signer(if shown.is_empty() {
        "no name".into()
    } else {
        shown
    }))
}

fn verify_signature(
    alg: &str,
    key: &PKey<Public>,
    input: &[u8],
    sig: &[u8],
) -> Result<(), MdsError> {
    let der;
    let sig = match (alg, key.id()) {
        ("RS256", Id::RSA) => sig,
        ("ES256", Id::EC) => {
            // JWS carries r‖s; OpenSSL wants a DER ECDSA-Sig-Value.
            if sig.len() != 64 {
                return Err(MdsError::Signature);
            }
            let bn = |b: &[u8]| BigNum::from_slice(b).map_err(|_| MdsError::Signature);
            der = EcdsaSig::from_private_components(bn(&sig[..32])?, bn(&sig[32..])?)
                .and_then(|s| s.to_der())
                .map_err(|_| MdsError::Signature)?;
            &der[..]
        }
        ("RS256" | "ES256", _) => {
            return Err(MdsError::Header(format!(
                "the signing key does not fit {alg}"
            )));
        }
        (other, _) => return Err(MdsError::Algorithm(other.to_string())),
    };
    let verified = Verifier::new(MessageDigest::sha256(), key)
        .and_then(|mut v| v.verify_oneshot(sig, input))
        .unwrap_or(false);
    if verified {
        Ok(())
    } else {
        Err(MdsError::Signature)
    }
}

fn parse_payload(bytes: &[u8]) -> Result<Blob, MdsError> {
    let p: Payload = serde_json::from_slice(bytes).map_err(|e| MdsError::Payload(e.to_string()))?;
    let format = time::format_description::parse_borrowed::<2>("[year]-[month]-[day]")
        .map_err(|e| MdsError::Payload(e.to_string()))?;
    let date = time::Date::parse(&p.next_update, &format)
        .map_err(|_| MdsError::Payload(format!("nextUpdate {:?} is not a date", p.next_update)))?;
    let next_update = date.midnight().assume_utc().unix_timestamp();
    let mut entries = Vec::new();
    for e in p.entries {
        let Some(aaguid) = e.aaguid else { continue };
        let aaguid = Uuid::parse_str(&aaguid)
            .map_err(|_| MdsError::Payload(format!("aaguid {aaguid:?} is not a UUID")))?;
        let statement = e.metadata_statement;
        let roots = statement
            .as_ref()
            .map(|s| &s.attestation_root_certificates[..])
            .unwrap_or_default()
            .iter()
            .map(|r| {
                STANDARD.decode(r).map_err(|_| {
                    MdsError::Payload(format!("a root certificate of {aaguid} is not base64"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        entries.push(Entry {
            aaguid,
            description: statement.map(|s| s.description).unwrap_or_default(),
            roots,
            statuses: e.status_reports.into_iter().map(|r| r.status).collect(),
        });
    }
    Ok(Blob {
        serial: p.no,
        next_update,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::Private;
    use openssl::x509::{X509Builder, X509NameBuilder};

    fn key() -> PKey<Private> {
        let group =
            EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap_or_else(|e| panic!("{e}"));
        let ec = EcKey::generate(&group).unwrap_or_else(|e| panic!("{e}"));
        PKey::from_ec_key(ec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The FIDO Alliance's MDS signer's subject, as the real certificate carries it.
    const FIDO: &[(&str, &str)] = &[
        ("businessCategory", "Private Organization"),
        ("serialNumber", "3454284"),
        ("C", "US"),
        ("ST", "Oregon"),
        ("L", "Beaverton"),
        ("O", "FIDO ALLIANCE, INC."),
        ("CN", "mds.fidoalliance.org"),
    ];

    /// A certificate for `key` with `subject`, signed by `issuer` (self-signed when `None`).
    fn cert(
        subject: &[(&str, &str)],
        key: &PKey<Private>,
        issuer: Option<(&X509, &PKey<Private>)>,
    ) -> X509 {
        let build = || -> Result<X509, openssl::error::ErrorStack> {
            let mut name = X509NameBuilder::new()?;
            for (field, value) in subject {
                name.append_entry_by_text(field, value)?;
            }
            let name = name.build();
            let mut b = X509Builder::new()?;
            b.set_version(2)?;
            b.set_subject_name(&name)?;
            b.set_pubkey(key)?;
            let (from, to) = (
                openssl::asn1::Asn1Time::days_from_now(0)?,
                openssl::asn1::Asn1Time::days_from_now(2)?,
            );
            b.set_not_before(&from)?;
            b.set_not_after(&to)?;
            let serial = BigNum::from_u32(rand::random::<u32>() >> 1)?.to_asn1_integer()?;
            b.set_serial_number(&serial)?;
            match issuer {
                None => {
                    b.set_issuer_name(&name)?;
                    let bc = openssl::x509::extension::BasicConstraints::new()
                        .critical()
                        .ca()
                        .build()?;
                    b.append_extension(bc)?;
                    b.sign(key, MessageDigest::sha256())?;
                }
                Some((ic, ik)) => {
                    b.set_issuer_name(ic.subject_name())?;
                    b.sign(ik, MessageDigest::sha256())?;
                }
            }
            Ok(b.build())
        };
        build().unwrap_or_else(|e| panic!("{e}"))
    }

    /// An ES256 blob with `payload`, signed by `signer` (with `x5c` = [signer]).
    fn es256(payload: &serde_json::Value, signer: &X509, key: &PKey<Private>) -> String {
        let der = signer.to_der().unwrap_or_default();
        let header =
            serde_json::json!({"alg": "ES256", "typ": "JWT", "x5c": [STANDARD.encode(der)]});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), key)
            .unwrap_or_else(|e| panic!("{e}"));
        let der_sig = signer
            .sign_oneshot_to_vec(input.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let sig = EcdsaSig::from_der(&der_sig).unwrap_or_else(|e| panic!("{e}"));
        let mut raw = sig.r().to_vec_padded(32).unwrap_or_default();
        raw.extend(sig.s().to_vec_padded(32).unwrap_or_default());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(raw))
    }

    fn payload(status: &str) -> serde_json::Value {
        serde_json::json!({"no": 7, "nextUpdate": "2099-01-31", "legalHeader": "test", "entries": [
            {"aaguid": "0fb9bcbc-a0d4-4042-bbb0-559bc1631e28",
             "metadataStatement": {"description": "Soft", "attestationRootCertificates": ["AQID"]},
             "statusReports": [{"status": "FIDO_CERTIFIED"}, {"status": status}]},
            {"attestationCertificateKeyIdentifiers": ["00"], "statusReports": []},
        ]})
    }

    #[test]
    fn an_es256_blob_chained_to_the_root_verifies_and_reads() {
        let (rk, sk) = (key(), key());
        let root = cert(&[("CN", "MDS Test Root")], &rk, None);
        let signer = cert(FIDO, &sk, Some((&root, &rk)));
        let root_pem = root.to_pem().unwrap_or_default();
        let blob = verify(
            &es256(&payload("FIDO_CERTIFIED_L1"), &signer, &sk),
            &root_pem,
        );
        let blob = blob.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(blob.serial, 7);
        assert_eq!(blob.next_update, 4_073_500_800, "2099-01-31T00:00:00Z");
        assert_eq!(blob.entries.len(), 1, "the U2F-only entry is skipped");
        assert_eq!(blob.entries[0].roots, vec![vec![1, 2, 3]]);
        assert_eq!(blob.entries[0].distrust(), None);
        let revoked = verify(&es256(&payload("REVOKED"), &signer, &sk), &root_pem);
        assert_eq!(
            revoked.map(|b| b.entries[0].distrust().map(str::to_string)),
            Ok(Some("REVOKED".into()))
        );
    }

    #[test]
    fn wrong_signer_tampering_and_junk_are_refused() {
        let (rk, sk, other) = (key(), key(), key());
        let root = cert(&[("CN", "MDS Test Root")], &rk, None);
        let signer = cert(FIDO, &sk, Some((&root, &rk)));
        let root_pem = root.to_pem().unwrap_or_default();
        // Self-signed by someone else: no chain to the root.
        let stranger = cert(FIDO, &other, None);
        let r = verify(
            &es256(&payload("FIDO_CERTIFIED"), &stranger, &other),
            &root_pem,
        );
        assert!(matches!(r, Err(MdsError::Chain(_))), "{r:?}");
        // The root's signer, but the payload changed after signing.
        let good = es256(&payload("FIDO_CERTIFIED"), &signer, &sk);
        let parts: Vec<&str> = good.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            payload("FIDO_CERTIFIED")
                .to_string()
                .replace("Soft", "Hard"),
        );
        let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert_eq!(verify(&tampered, &root_pem), Err(MdsError::Signature));
        // The signer's certificate, another key's signature.
        let wrong_key = es256(&payload("FIDO_CERTIFIED"), &signer, &other);
        assert_eq!(verify(&wrong_key, &root_pem), Err(MdsError::Signature));
        assert_eq!(verify("nonsense", &root_pem), Err(MdsError::NotJws));
        assert!(matches!(verify(&good, b"not pem"), Err(MdsError::Root(_))));
    }

    /// Any certificate under the root is not enough: the signer's subject is pinned.
    #[test]
    fn only_the_fido_alliances_signer_may_sign() {
        let (rk, sk) = (key(), key());
        let root = cert(&[("CN", "MDS Test Root")], &rk, None);
        let root_pem = root.to_pem().unwrap_or_default();
        let signed_by = |subject: &[(&str, &str)]| {
            let signer = cert(subject, &sk, Some((&root, &rk)));
            verify(&es256(&payload("FIDO_CERTIFIED"), &signer, &sk), &root_pem)
        };
        let fido_but = |field: &'static str, value: Option<&'static str>| {
            let mut subject: Vec<(&'static str, &'static str)> =
                FIDO.iter().filter(|(f, _)| *f != field).copied().collect();
            if let Some(v) = value {
                subject.push((field, v));
            }
            subject
        };
        assert!(signed_by(FIDO).is_ok());
        // The EV registration fields and the address are not pinned; case is not either.
        assert!(signed_by(&fido_but("L", Some("Portland"))).is_ok());
        assert!(signed_by(&fido_but("O", Some("FIDO Alliance, Inc."))).is_ok());
        for subject in [
            vec![
                ("CN", "blob.example.com"),
                ("O", "Example Corp"),
                ("C", "US"),
            ],
            fido_but("CN", Some("mds.fidoalliance.org.evil.example")),
            fido_but("O", Some("Evil Corp")),
            fido_but("O", None),
            fido_but("C", Some("GB")),
            [FIDO, &[("CN", "other.example")]].concat(),
        ] {
            let r = signed_by(&subject);
            assert!(matches!(r, Err(MdsError::Signer(_))), "{subject:?}: {r:?}");
        }
        let message = signed_by(&[("CN", "blob.example.com")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            message,
            "the signing certificate (CN=blob.example.com) is not the FIDO Alliance's MDS signer \
             (CN=mds.fidoalliance.org, O=FIDO ALLIANCE, INC., C=US): use the blob as published \
             at https://mds3.fidoalliance.org/"
        );
    }

    #[test]
    fn distrusted_statuses() {
        let e = |s: &[&str]| Entry {
            aaguid: Uuid::nil(),
            description: String::new(),
            roots: vec![],
            statuses: s.iter().map(|x| x.to_string()).collect(),
        };
        assert_eq!(
            e(&["FIDO_CERTIFIED_L2", "UPDATE_AVAILABLE"]).distrust(),
            None
        );
        for bad in [
            "REVOKED",
            "ATTESTATION_KEY_COMPROMISE",
            "USER_KEY_REMOTE_COMPROMISE",
            "USER_KEY_PHYSICAL_COMPROMISE",
            "USER_VERIFICATION_BYPASS",
        ] {
            // Any report counts, not only the newest: a compromise is never undone.
            assert_eq!(e(&[bad, "FIDO_CERTIFIED"]).distrust(), Some(bad));
        }
    }
}
