//! Attestation trust anchors: the roots named by `authenticators.*.ca_files`.
//!
//! Every configured root is loaded once into one webauthn-rs CA list (used to
//! prove a chain at enrollment) and remembered by its SHA-256 fingerprint. A
//! credential stores the fingerprint of the root its attestation chained to;
//! at each ceremony [`TrustStore::attested_sets`] turns that fingerprint and
//! the credential's AAGUID into the sets it belongs to *now*, so editing the
//! config takes effect without re-enrolling.
//!
//! `mds_file` (an offline FIDO MDS3 blob, the JWT that the FIDO Alliance
//! publishes) adds, for each of the set's AAGUIDs, the entry's
//! `attestationRootCertificates`, unless the entry's newest status report says
//! the model is revoked or its keys compromised. The file is trusted like a
//! `ca_files` entry, as the operator placed it: the blob's own JWS signature is
//! not checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use uuid::Uuid;
use webauthn_rs_core::proto::{AttestationCa, AttestationCaList};

use crate::config::AuthenticatorSet;

/// Why the trust anchors could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no usable PEM certificate ({reason})")]
    Pem { path: PathBuf, reason: String },
    #[error("{path}: not a FIDO MDS3 blob ({reason})")]
    Mds { path: PathBuf, reason: String },
}

/// The loaded roots and which sets list them.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    /// Every root of every set, for chain verification.
    list: AttestationCaList,
    /// Root fingerprint → names of the sets whose `ca_files` hold it.
    sets_by_root: BTreeMap<String, BTreeSet<String>>,
    /// Set name → its AAGUIDs.
    aaguids: BTreeMap<String, BTreeSet<Uuid>>,
}

/// Hex SHA-256 fingerprint of a webauthn-rs attestation CA.
pub fn fingerprint(ca: &AttestationCa) -> Option<String> {
    let kid = ca.get_kid().ok()?;
    Some(hex(kid.as_slice()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Split a PEM file into its certificate blocks.
fn pem_blocks(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find(BEGIN) {
        let after = &rest[b..];
        let Some(e) = after.find(END) else { break };
        out.push(format!("{}\n", &after[..e + END.len()]));
        rest = &after[e + END.len()..];
    }
    out
}

impl TrustStore {
    /// Load every set's `ca_files`.
    pub fn load(sets: &BTreeMap<String, AuthenticatorSet>) -> Result<Self, TrustError> {
        let mut store = TrustStore::default();
        for (name, set) in sets {
            store
                .aaguids
                .insert(name.clone(), set.aaguids.iter().copied().collect());
            for path in &set.ca_files {
                for fp in store.add_file(path)? {
                    store
                        .sets_by_root
                        .entry(fp)
                        .or_default()
                        .insert(name.clone());
                }
            }
            if let Some(mds) = &set.mds_file {
                for fp in store.add_mds(mds, &set.aaguids)? {
                    store
                        .sets_by_root
                        .entry(fp)
                        .or_default()
                        .insert(name.clone());
                }
            }
        }
        Ok(store)
    }

    fn add_file(&mut self, path: &Path) -> Result<Vec<String>, TrustError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrustError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let blocks = pem_blocks(&text);
        if blocks.is_empty() {
            return Err(TrustError::Pem {
                path: path.to_path_buf(),
                reason: "no BEGIN CERTIFICATE block".into(),
            });
        }
        let mut fps = Vec::new();
        for block in blocks {
            let one =
                AttestationCaList::try_from(block.as_bytes()).map_err(|e| TrustError::Pem {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            for ca in one.cas().values() {
                if let Some(fp) = fingerprint(ca) {
                    fps.push(fp);
                }
            }
            self.list.union(&one);
        }
        Ok(fps)
    }

    /// Add the roots an MDS3 blob lists for `aaguids`; returns their fingerprints.
    fn add_mds(&mut self, path: &Path, aaguids: &[Uuid]) -> Result<Vec<String>, TrustError> {
        let err = |reason: &str| TrustError::Mds {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let text = std::fs::read_to_string(path).map_err(|source| TrustError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut fps = Vec::new();
        for der in mds_roots(&text, aaguids).map_err(&err)? {
            let pem = der_to_pem(&der);
            let one = AttestationCaList::try_from(pem.as_bytes())
                .map_err(|e| err(&format!("bad root certificate: {e}")))?;
            for ca in one.cas().values() {
                if let Some(fp) = fingerprint(ca) {
                    fps.push(fp);
                }
            }
            self.list.union(&one);
        }
        Ok(fps)
    }

    /// The CA list for chain verification; `None` when no root is configured.
    pub fn ca_list(&self) -> Option<&AttestationCaList> {
        (!self.list.is_empty()).then_some(&self.list)
    }

    /// Sets a credential belongs to: its root is one of the set's and its AAGUID is listed.
    pub fn attested_sets(&self, root: Option<&str>, aaguid: Uuid) -> Vec<String> {
        let Some(root) = root else {
            return Vec::new();
        };
        let Some(sets) = self.sets_by_root.get(root) else {
            return Vec::new();
        };
        sets.iter()
            .filter(|s| self.aaguids.get(*s).is_some_and(|a| a.contains(&aaguid)))
            .cloned()
            .collect()
    }

    /// The name of the set that lists `aaguid`, for showing a model name.
    pub fn sets_listing(&self, aaguid: Uuid) -> Vec<String> {
        self.aaguids
            .iter()
            .filter(|(_, a)| a.contains(&aaguid))
            .map(|(s, _)| s.clone())
            .collect()
    }
}

/// Statuses after which an MDS entry's roots prove nothing.
const BAD_STATUSES: &[&str] = &[
    "REVOKED",
    "ATTESTATION_KEY_COMPROMISE",
    "USER_KEY_REMOTE_COMPROMISE",
    "USER_KEY_PHYSICAL_COMPROMISE",
    "USER_VERIFICATION_BYPASS",
];

/// The DER roots an MDS3 blob (JWT text) lists for `aaguids`.
pub fn mds_roots(jwt: &str, aaguids: &[Uuid]) -> Result<Vec<Vec<u8>>, &'static str> {
    use base64::Engine;
    let payload = jwt.trim().split('.').nth(1).ok_or("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "payload is not base64url")?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| "payload is not JSON")?;
    let entries = v
        .get("entries")
        .and_then(|e| e.as_array())
        .ok_or("no entries")?;
    let mut out = Vec::new();
    for e in entries {
        let Some(aaguid) = e
            .get("aaguid")
            .and_then(|a| a.as_str())
            .and_then(|a| Uuid::parse_str(a).ok())
        else {
            continue;
        };
        if !aaguids.contains(&aaguid) {
            continue;
        }
        // Status reports are in date order; the newest one counts.
        let status = e
            .get("statusReports")
            .and_then(|r| r.as_array())
            .and_then(|r| r.last())
            .and_then(|r| r.get("status"))
            .and_then(|s| s.as_str())
            .unwrap_or("");
        if BAD_STATUSES.contains(&status) {
            tracing::warn!(%aaguid, status, "MDS entry is not trusted: its roots are ignored");
            continue;
        }
        let roots = e
            .pointer("/metadataStatement/attestationRootCertificates")
            .and_then(|r| r.as_array())
            .cloned()
            .unwrap_or_default();
        for r in roots {
            let Some(b64) = r.as_str() else { continue };
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| "a root certificate is not base64")?;
            out.push(der);
        }
    }
    Ok(out)
}

/// PEM text of one DER certificate.
pub fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_pem_blocks() {
        let t = "junk\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n\
                 -----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        let b = pem_blocks(t);
        assert_eq!(b.len(), 2);
        assert!(b[0].contains("AAA") && b[1].contains("BBB"));
        assert!(pem_blocks("nothing").is_empty());
    }

    #[test]
    fn mds_roots_for_listed_aaguids_only_and_not_revoked() {
        use base64::Engine;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let c = Uuid::from_u128(3);
        let payload = serde_json::json!({"entries": [
            {"aaguid": a.to_string(), "metadataStatement": {"attestationRootCertificates": ["AQID"]},
             "statusReports": [{"status": "FIDO_CERTIFIED_L1"}]},
            {"aaguid": b.to_string(), "metadataStatement": {"attestationRootCertificates": ["BAUG"]}},
            {"aaguid": c.to_string(), "metadataStatement": {"attestationRootCertificates": ["BwgJ"]},
             "statusReports": [{"status": "FIDO_CERTIFIED"}, {"status": "REVOKED"}]},
        ]});
        let jwt = format!("e30.{}.sig", e.encode(payload.to_string()));
        assert_eq!(mds_roots(&jwt, &[a, c]), Ok(vec![vec![1, 2, 3]]));
        assert_eq!(mds_roots(&jwt, &[b]), Ok(vec![vec![4, 5, 6]]));
        assert!(mds_roots("nonsense", &[a]).is_err());
    }

    #[test]
    fn der_to_pem_wraps_lines() {
        let pem = der_to_pem(&[0u8; 100]);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
    }

    #[test]
    fn unattested_credentials_belong_to_no_set() {
        let s = TrustStore::default();
        assert!(s.attested_sets(None, Uuid::nil()).is_empty());
        assert!(s.attested_sets(Some("ab"), Uuid::nil()).is_empty());
    }
}
