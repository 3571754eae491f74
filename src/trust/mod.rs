//! Attestation trust anchors, and which authenticator sets a proven credential is in.
//!
//! [`TrustStore::load`] reads every set's `ca_files` and its verified MDS blob
//! (`mds_file` checked against `mds_root`, see [`super::mds`]) once per config
//! load or reload. It keeps one webauthn-rs CA list (to verify an attestation
//! chain at registration) and, per root fingerprint, which sets the root
//! vouches for: every AAGUID of the set, only the AAGUIDs its `ca_files` entry
//! lists, or — for a root taken from an MDS entry — only that entry's AAGUID,
//! and only until the blob's `nextUpdate`.
//!
//! [`TrustStore::admits`] answers, at every request, whether a credential's
//! stored [`AttestationProof`] puts it in a set under the *current* config:
//! its format's signature covers the authenticator data, its root vouches for
//! the set and its AAGUID, and the set lists the AAGUID. Editing the config
//! and reloading therefore changes live sessions at once.
//!
//! Problems with an MDS blob (bad signature or chain, expired, a distrusted
//! entry) never stop the gateway: the blob admits nothing, a warning is logged
//! and `stepgate check` prints it ([`TrustStore::warnings`]). An unreadable
//! `ca_files`, `mds_file` or `mds_root` file is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use uuid::Uuid;
use webauthn_rs_core::proto::{AttestationCa, AttestationCaList};

pub mod mds;

use crate::model::{AttestationProof, Timestamp};

/// `authenticators.NAME`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorSet {
    /// Shown to people: "YubiKey 5".
    pub display_name: String,
    pub aaguids: Vec<Uuid>,
    pub ca_files: Vec<CaFile>,
    pub mds: Option<MdsSource>,
}

/// `authenticators.NAME.ca_files[N]`: one PEM file of attestation roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFile {
    pub path: PathBuf,
    /// The AAGUIDs its roots vouch for; `None`: every AAGUID of the set.
    pub aaguids: Option<Vec<Uuid>>,
}

/// `authenticators.NAME.mds_file` with the root its signature must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdsSource {
    /// The FIDO MDS3 blob (a JWS, as published).
    pub blob: PathBuf,
    /// PEM root(s) the blob's `x5c` chain must end at (`mds_root`).
    pub root: PathBuf,
}

/// Attestation formats whose signature covers the authenticator data (and so
/// its AAGUID and flags). `fido-u2f` signs only the RP id hash, client data
/// hash, credential id and key; `none` signs nothing; self attestation is
/// signed by the credential's own key, which proves no model.
pub const SIGNED_AUTHDATA_FORMATS: &[&str] =
    &["packed", "tpm", "android-key", "android-safetynet", "apple"];

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

/// Something wrong with a trust source that does not stop the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustWarning {
    /// The YAML path of the source (`authenticators.NAME.mds_file`).
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for TrustWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// One root's word for one set.
#[derive(Debug, Clone)]
struct Voucher {
    set: String,
    /// `None`: every AAGUID of the set.
    aaguids: Option<BTreeSet<Uuid>>,
    /// Unix seconds after which it says nothing (an MDS blob's `nextUpdate`).
    until: Option<Timestamp>,
}

/// The loaded roots and what each vouches for.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    /// Every root of every set, for chain verification at registration.
    list: AttestationCaList,
    /// Root fingerprint → its vouchers.
    vouchers: BTreeMap<String, Vec<Voucher>>,
    /// Set name → its AAGUIDs.
    aaguids: BTreeMap<String, BTreeSet<Uuid>>,
    warnings: Vec<TrustWarning>,
}

/// Hex SHA-256 of a webauthn-rs attestation CA's DER (what a proof records).
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

fn read(path: &Path) -> Result<Vec<u8>, TrustError> {
    std::fs::read(path).map_err(|source| TrustError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl TrustStore {
    /// Load every set's trust sources; `now` only decides which warnings an
    /// already expired MDS blob gets (expiry itself is judged per request).
    pub fn load(
        sets: &BTreeMap<String, AuthenticatorSet>,
        now: Timestamp,
    ) -> Result<Self, TrustError> {
        let mut store = TrustStore::default();
        for (name, set) in sets {
            store
                .aaguids
                .insert(name.clone(), set.aaguids.iter().copied().collect());
            for ca in &set.ca_files {
                let voucher = Voucher {
                    set: name.clone(),
                    aaguids: ca.aaguids.as_ref().map(|a| a.iter().copied().collect()),
                    until: None,
                };
                for fp in store.add_file(&ca.path)? {
                    store.vouch(fp, voucher.clone());
                }
            }
            if let Some(src) = &set.mds {
                store.add_mds(name, set, src, now)?;
            }
        }
        for w in &store.warnings {
            tracing::warn!(source = %w.path, "{}", w.message);
        }
        Ok(store)
    }

    fn vouch(&mut self, fingerprint: String, voucher: Voucher) {
        self.vouchers.entry(fingerprint).or_default().push(voucher);
    }

    fn warn(&mut self, path: String, message: String) {
        self.warnings.push(TrustWarning { path, message });
    }

    /// Add the certificates of one PEM file; returns their fingerprints.
    fn add_file(&mut self, path: &Path) -> Result<Vec<String>, TrustError> {
        let bytes = read(path)?;
        let text = String::from_utf8_lossy(&bytes);
        let blocks = pem_blocks(&text);
        if blocks.is_empty() {
            return Err(TrustError::Pem {
                path: path.to_path_buf(),
                reason: "no BEGIN CERTIFICATE block".into(),
            });
        }
        let mut fps = Vec::new();
        for block in blocks {
            let fp = self.add_pem(&block).map_err(|reason| TrustError::Pem {
                path: path.to_path_buf(),
                reason,
            })?;
            fps.extend(fp);
        }
        Ok(fps)
    }

    /// Add one PEM certificate to the CA list; returns its fingerprint.
    fn add_pem(&mut self, pem: &str) -> Result<Option<String>, String> {
        let one = AttestationCaList::try_from(pem.as_bytes()).map_err(|e| e.to_string())?;
        let fp = one.cas().values().find_map(fingerprint);
        self.list.union(&one);
        Ok(fp)
    }

    /// Verify a set's MDS blob and let each trusted entry's roots vouch for
    /// that entry's AAGUID (when the set lists it) until `nextUpdate`.
    fn add_mds(
        &mut self,
        name: &str,
        set: &AuthenticatorSet,
        src: &MdsSource,
        now: Timestamp,
    ) -> Result<(), TrustError> {
        let at = format!("authenticators.{name}.mds_file");
        let blob_text = String::from_utf8_lossy(&read(&src.blob)?).into_owned();
        let root = read(&src.root)?;
        let blob = match mds::verify(&blob_text, &root) {
            Ok(b) => b,
            Err(e) => {
                let msg = format!(
                    "MDS blob {} refused, it admits nothing: {e}",
                    src.blob.display()
                );
                self.warn(at, msg);
                return Ok(());
            }
        };
        if blob.next_update <= now {
            let msg = format!(
                "MDS blob {} (no. {}) expired at its nextUpdate ({}): it admits nothing until a fresh blob is installed",
                src.blob.display(),
                blob.serial,
                human_date(blob.next_update)
            );
            self.warn(at.clone(), msg);
        }
        for aaguid in &set.aaguids {
            let Some(entry) = blob.entries.iter().find(|e| e.aaguid == *aaguid) else {
                let msg = format!(
                    "MDS blob has no entry for {aaguid}: its model is not proven by the blob"
                );
                self.warn(at.clone(), msg);
                continue;
            };
            if let Some(status) = entry.distrust() {
                let msg = format!(
                    "MDS entry {aaguid} ({}) has status {status}: its roots admit nothing",
                    entry.description
                );
                self.warn(at.clone(), msg);
                continue;
            }
            for der in &entry.roots {
                match self.add_pem(&der_to_pem(der)) {
                    Ok(Some(fp)) => self.vouch(
                        fp,
                        Voucher {
                            set: name.to_string(),
                            aaguids: Some(BTreeSet::from([*aaguid])),
                            until: Some(blob.next_update),
                        },
                    ),
                    Ok(None) => {}
                    Err(e) => {
                        let msg =
                            format!("MDS entry {aaguid}: a root certificate is unusable: {e}");
                        self.warn(at.clone(), msg);
                    }
                }
            }
        }
        Ok(())
    }

    /// The CA list for chain verification; `None` when no root is configured.
    pub fn ca_list(&self) -> Option<&AttestationCaList> {
        (!self.list.is_empty()).then_some(&self.list)
    }

    /// Does `proof` put a credential in set `set` at `now`?
    pub fn admits(&self, set: &str, proof: Option<&AttestationProof>, now: Timestamp) -> bool {
        let Some(p) = proof else { return false };
        if !SIGNED_AUTHDATA_FORMATS.contains(&p.format.as_str())
            || !self.aaguids.get(set).is_some_and(|a| a.contains(&p.aaguid))
        {
            return false;
        }
        self.vouchers.get(&p.root).is_some_and(|vs| {
            vs.iter().any(|v| {
                v.set == set
                    && v.aaguids.as_ref().is_none_or(|a| a.contains(&p.aaguid))
                    && v.until.is_none_or(|u| now < u)
            })
        })
    }

    /// Every set `proof` puts a credential in at `now`.
    pub fn sets_of(&self, proof: Option<&AttestationProof>, now: Timestamp) -> Vec<String> {
        self.aaguids
            .keys()
            .filter(|s| self.admits(s, proof, now))
            .cloned()
            .collect()
    }

    /// The sets that list `aaguid`, for saying what a credential claims to be.
    pub fn sets_listing(&self, aaguid: Uuid) -> Vec<String> {
        self.aaguids
            .iter()
            .filter(|(_, a)| a.contains(&aaguid))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// What was wrong with the trust sources (already logged at load).
    pub fn warnings(&self) -> &[TrustWarning] {
        &self.warnings
    }
}

/// `2099-01-31` for a unix time.
fn human_date(t: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map_or_else(|_| t.to_string(), |d| d.date().to_string())
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
impl TrustStore {
    /// Fingerprints of the roots that vouch for some AAGUID of `set`.
    pub(crate) fn roots_of(&self, set: &str) -> Vec<String> {
        self.vouchers
            .iter()
            .filter(|(_, vs)| vs.iter().any(|v| v.set == set))
            .map(|(fp, _)| fp.clone())
            .collect()
    }

    /// A store whose sets are `sets` (name, AAGUIDs) and whose root `fp`
    /// vouches for each named set: for unit tests that need no files.
    pub(crate) fn for_tests(sets: &[(&str, &[Uuid], &str)]) -> Self {
        let mut store = TrustStore::default();
        for (name, aaguids, fp) in sets {
            store
                .aaguids
                .insert(name.to_string(), aaguids.iter().copied().collect());
            store.vouch(
                fp.to_string(),
                Voucher {
                    set: name.to_string(),
                    aaguids: None,
                    until: None,
                },
            );
        }
        store
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
    fn der_to_pem_wraps_lines() {
        let pem = der_to_pem(&[0u8; 100]);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
    }

    fn proof(format: &str, root: &str, aaguid: Uuid) -> AttestationProof {
        AttestationProof {
            format: format.into(),
            root: root.into(),
            aaguid,
        }
    }

    #[test]
    fn admits_only_signed_formats_listed_aaguids_and_live_vouchers() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let mut s = TrustStore::default();
        s.aaguids.insert("keys".into(), BTreeSet::from([a, b, c]));
        let v = |aaguids: Option<BTreeSet<Uuid>>, until| Voucher {
            set: "keys".into(),
            aaguids,
            until,
        };
        s.vouch("r1".into(), v(None, None));
        s.vouch("r2".into(), v(Some(BTreeSet::from([b])), None));
        s.vouch("r3".into(), v(None, Some(100)));
        assert!(s.admits("keys", Some(&proof("packed", "r1", a)), 0));
        assert!(s.admits("keys", Some(&proof("tpm", "r1", c)), 0));
        assert_eq!(s.sets_of(Some(&proof("packed", "r1", a)), 0), vec!["keys"]);
        // Formats that sign no authenticator data prove nothing, whatever the root.
        for f in ["fido-u2f", "none", ""] {
            assert!(!s.admits("keys", Some(&proof(f, "r1", a)), 0), "{f}");
        }
        assert!(!s.admits("keys", None, 0));
        // A per-root allowlist.
        assert!(s.admits("keys", Some(&proof("packed", "r2", b)), 0));
        assert!(!s.admits("keys", Some(&proof("packed", "r2", a)), 0));
        // An expiring voucher.
        assert!(s.admits("keys", Some(&proof("packed", "r3", a)), 99));
        assert!(!s.admits("keys", Some(&proof("packed", "r3", a)), 100));
        // Unknown root, AAGUID or set.
        assert!(!s.admits("keys", Some(&proof("packed", "r9", a)), 0));
        assert!(!s.admits("keys", Some(&proof("packed", "r1", Uuid::nil())), 0));
        assert!(!s.admits("other", Some(&proof("packed", "r1", a)), 0));
        assert!(
            TrustStore::default()
                .sets_of(Some(&proof("packed", "r1", a)), 0)
                .is_empty()
        );
    }
}
