//! The shared state of a running gateway: one [`Snapshot`] of everything that
//! reloads (the config and what is built from it), and what lives as long as
//! the process (store, clock, rate limits, session cache, upstream
//! addresses).
//!
//! A request takes the snapshot once ([`Gateway::snapshot`]) and reads only
//! that one until it is answered; a reload builds a whole new snapshot and
//! swaps it in with one store, or changes nothing.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::clock::Clock;
use crate::config::Runtime;
use crate::model::Timestamp;
use crate::ratelimit::RateLimits;
use crate::session::cookie::CookieKeys;
use crate::store::Store;
use crate::tls::{Certificate, CertificateSource};
use crate::trust::TrustError;
use crate::webauthn::{CeremonyError, RelyingParty};

/// Everything that reloads, built from one config as a whole: the config
/// (with its trust anchors and per-rule counters), the portal's relying
/// party, the cookie keys and the HTTPS certificate.
pub struct Snapshot {
    pub config: Runtime,
    /// WebAuthn core for the portal origin.
    pub rp: RelyingParty,
    /// `secrets.cookie_keys`: the first signs, all verify.
    pub keys: CookieKeys,
    /// The HTTPS listener's certificate (none without `tls:`).
    pub cert: Certificate,
    /// 0 at start, one more at each applied reload: two readers with the
    /// same generation read the same snapshot.
    pub generation: u64,
}

impl Snapshot {
    /// Build the snapshot of `config`: read its trust anchors, cookie keys
    /// and certificate, and resolve its counters. Any error builds nothing.
    pub fn build(
        mut config: Runtime,
        now: Timestamp,
        generation: u64,
    ) -> Result<Snapshot, BuildError> {
        config.trust = Arc::new(crate::trust::TrustStore::load(&config.authenticators, now)?);
        config.request_counters = Arc::new(crate::telemetry::RequestCounters::for_rules(
            config.rules.iter().map(|r| r.name.as_str()),
        ));
        Ok(Snapshot {
            rp: RelyingParty::new(&config.boot.portal)?,
            keys: CookieKeys::load(&config.cookie_keys)?,
            cert: Certificate::load(config.tls.as_ref())?,
            config,
            generation,
        })
    }
}

impl CertificateSource for ArcSwap<Snapshot> {
    fn certificate(&self) -> Certificate {
        self.load().cert.clone()
    }
}

/// Everything a request handler needs, shared by all connections.
pub struct Gateway {
    /// What reloads; swapped whole. Shared with the TLS handshake callback.
    live: Arc<ArcSwap<Snapshot>>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// Ceremony and token rate limits (in Redis when Redis is the store).
    pub limits: RateLimits,
    /// App session lookups reused for a moment (`session::cache`); cleared by
    /// the portal after anything that may end sessions, and on reload.
    pub sessions: crate::session::SessionCache,
    /// The upstreams' addresses, resolved at load and reload (names again
    /// after a TTL), not per request.
    pub peers: crate::peers::PeerTable,
}

/// Why a [`Snapshot`] could not be built.
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
    /// Build the shared state around the first snapshot of `runtime`.
    pub async fn build(
        runtime: Runtime,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Gateway, BuildError> {
        let snapshot = Snapshot::build(runtime, clock.now(), 0)?;
        let peers = crate::peers::PeerTable::for_config(&snapshot.config);
        Ok(Gateway {
            live: Arc::new(ArcSwap::from_pointee(snapshot)),
            store,
            clock,
            limits: RateLimits::default(),
            sessions: crate::session::SessionCache::new(),
            peers,
        })
    }

    /// The snapshot a request reads from arrival to answer: take it once.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.live.load_full()
    }

    /// What the HTTPS listener asks for a certificate at each handshake.
    pub fn certificates(&self) -> Arc<dyn CertificateSource> {
        self.live.clone()
    }

    /// Swap in a reloaded config as a new snapshot (its trust anchors, cookie
    /// keys and certificate loaded first); on any error nothing changes.
    pub fn apply(&self, runtime: Runtime) -> Result<(), BuildError> {
        let generation = self.live.load().generation + 1;
        let snapshot = Snapshot::build(runtime, self.now(), generation)?;
        self.peers.load(&snapshot.config);
        self.live.store(Arc::new(snapshot));
        self.sessions.clear();
        Ok(())
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
