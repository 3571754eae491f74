//! Attestation trust anchors: the roots named by `authenticators.*.ca_files`.
//!
//! Every configured root is loaded once into one webauthn-rs CA list (used to
//! prove a chain at enrollment) and remembered by its SHA-256 fingerprint. A
//! credential stores the fingerprint of the root its attestation chained to;
//! at each ceremony [`TrustStore::attested_sets`] turns that fingerprint and
//! the credential's AAGUID into the sets it belongs to *now*, so editing the
//! config takes effect without re-enrolling.
//!
//! `mds_file` (an offline FIDO MDS3 blob) is not read yet: a set that names one
//! gets a warning at load time and only its `ca_files` count.

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
                tracing::warn!(set = %name, file = %mds.display(),
                    "mds_file is not supported yet; only ca_files prove this set");
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
    fn unattested_credentials_belong_to_no_set() {
        let s = TrustStore::default();
        assert!(s.attested_sets(None, Uuid::nil()).is_empty());
        assert!(s.attested_sets(Some("ab"), Uuid::nil()).is_empty());
    }
}
