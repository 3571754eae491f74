//! The shared state of a running gateway: the live config, the store, the
//! clock, the relying party and rate limits, the cookie keys, the TLS
//! certificate, the session cache and the upstream addresses — everything a
//! request handler reads, swapped whole on reload.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::clock::Clock;
use crate::config::Runtime;
use crate::model::Timestamp;
use crate::ratelimit::RateLimits;
use crate::store::Store;
use crate::trust::TrustError;
use crate::webauthn::{CeremonyError, RelyingParty};

/// Everything a request handler needs, shared by all connections.
pub struct Gateway {
    /// The live config; swapped whole on reload.
    pub config: ArcSwap<Runtime>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// The portal's relying party (WebAuthn core for the portal origin),
    /// rebuilt on reload.
    pub rp: ArcSwap<RelyingParty>,
    /// Ceremony and token rate limits (in Redis when Redis is the store).
    pub limits: RateLimits,
    /// Cookie signing keys (`secrets.cookie_keys`): the first signs, all verify.
    /// Swap in new keys on reload.
    pub cookie_keys: ArcSwap<crate::session::cookie::CookieKeys>,
    /// The HTTPS listener's certificate, read again on reload.
    pub tls: Arc<crate::tls::CertSlot>,
    /// App session lookups reused for a moment (`session::cache`); cleared by
    /// the portal after anything that may end sessions, and on reload.
    pub sessions: crate::session::SessionCache,
    /// The upstreams' addresses, resolved at load and reload (names again
    /// after a TTL), not per request.
    pub peers: crate::peers::PeerTable,
}

/// Why a [`Gateway`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    RelyingParty(#[from] CeremonyError),
    #[error("attestation trust anchors: {0}")]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Keys(#[from] crate::session::cookie::KeyError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

impl Gateway {
    /// Build the shared state: loads the attestation roots and the cookie keys
    /// named in the config.
    pub async fn build(
        mut runtime: Runtime,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Gateway, BuildError> {
        load_trust(&mut runtime, clock.now())?;
        resolve_counters(&mut runtime);
        let peers = crate::peers::PeerTable::for_config(&runtime);
        let rp = RelyingParty::new(&runtime.portal)?;
        let keys = crate::session::cookie::CookieKeys::load(&runtime.cookie_keys)?;
        let tls = Arc::new(crate::tls::CertSlot::new(runtime.tls.as_ref())?);
        Ok(Gateway {
            config: ArcSwap::from_pointee(runtime),
            store,
            clock,
            rp: ArcSwap::from_pointee(rp),
            limits: RateLimits::default(),
            cookie_keys: ArcSwap::from_pointee(keys),
            tls,
            sessions: crate::session::SessionCache::new(),
            peers,
        })
    }

    /// Swap in a reloaded config: the attestation roots, cookie keys and TLS
    /// certificate it names are loaded first; on any error nothing changes.
    pub fn apply(&self, mut runtime: Runtime) -> Result<(), BuildError> {
        load_trust(&mut runtime, self.now())?;
        resolve_counters(&mut runtime);
        let keys = crate::session::cookie::CookieKeys::load(&runtime.cookie_keys)?;
        let cert = crate::tls::CertSlot::load(runtime.tls.as_ref())?;
        let rp = RelyingParty::new(&runtime.portal)?;
        self.peers.load(&runtime);
        self.rp.store(Arc::new(rp));
        self.tls.install(cert);
        self.cookie_keys.store(Arc::new(keys));
        self.config.store(Arc::new(runtime));
        self.sessions.clear();
        Ok(())
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// Resolve `runtime`'s per-rule request counters once, before it serves.
fn resolve_counters(runtime: &mut Runtime) {
    let counters =
        crate::telemetry::RequestCounters::for_rules(runtime.rules.iter().map(|r| r.name.as_str()));
    runtime.request_counters = Arc::new(counters);
}

/// Read the attestation trust anchors `runtime.authenticators` names into `runtime.trust`.
fn load_trust(runtime: &mut Runtime, now: Timestamp) -> Result<(), BuildError> {
    let trust = crate::trust::TrustStore::load(&runtime.authenticators, now)?;
    runtime.trust = Arc::new(trust);
    Ok(())
}
