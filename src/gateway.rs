//! The shared state of a running gateway and the plain request/response types
//! that the proxy hooks, the portal and the forward-auth endpoints speak.
//!
//! Handlers take a [`Facts`] (what arrived, already normalised) and return a
//! [`Reply`]; only `proxy/` knows about pingora. That keeps every handler
//! testable without a server.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::config::Runtime;
use crate::session::Timestamp;
use crate::store::Store;

pub use crate::clock::{Clock, SystemClock};

/// Everything a request handler needs, shared by all connections.
pub struct Gateway {
    /// The live config; swapped whole on reload.
    pub config: ArcSwap<Runtime>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// The portal's relying party (WebAuthn core, attestation trust anchors)
    /// and its rate limiters. Call `portal.reload(&runtime)` after a config swap.
    pub portal: crate::portal::PortalState,
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
    pub peers: crate::proxy::peers::PeerTable,
}

/// Why a [`Gateway`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Portal(#[from] crate::portal::PortalError),
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
        let peers = crate::proxy::peers::PeerTable::for_config(&runtime);
        let portal = crate::portal::PortalState::new(&runtime)?;
        let keys = crate::session::cookie::CookieKeys::load(&runtime.cookie_keys)?;
        let tls = Arc::new(crate::tls::CertSlot::new(runtime.tls.as_ref())?);
        Ok(Gateway {
            config: ArcSwap::from_pointee(runtime),
            store,
            clock,
            portal,
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
        self.portal.reload(&runtime)?;
        self.peers.load(&runtime);
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
    let trust = crate::webauthn::TrustStore::load(&runtime.authenticators, now)
        .map_err(crate::portal::PortalError::from)?;
    runtime.trust = Arc::new(trust);
    Ok(())
}

/// What arrived, after host and path normalisation.
#[derive(Debug, Clone)]
pub struct Facts {
    pub method: String,
    /// Normalised host (lower case, no port).
    pub host: String,
    /// The port the client addressed, unless it is the scheme's default.
    pub port: Option<u16>,
    /// Normalised path.
    pub path: String,
    /// Raw query string without `?`, if any.
    pub query: Option<String>,
    /// Was the request (as the browser sent it) https?
    pub https: bool,
    pub client_ip: IpAddr,
    pub headers: HeaderMap,
}

impl Facts {
    /// The value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// `scheme://host[:port]` as the browser addressed it.
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        match self.port {
            Some(p) => format!("{scheme}://{}:{p}", self.host),
            None => format!("{scheme}://{}", self.host),
        }
    }

    /// A request header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Does the client want an HTML page (a browser navigation)?
    pub fn wants_html(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD")
            && self
                .header("accept")
                .is_some_and(|a| a.contains("text/html"))
    }
}

/// A complete answer the gateway writes itself.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Reply {
    pub fn new(status: StatusCode) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Add a header; values that are not valid header text are dropped (they
    /// only ever come from our own formatting).
    pub fn header(mut self, name: HeaderName, value: impl AsRef<str>) -> Self {
        if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
            self.headers.push((name, v));
        }
        self
    }

    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self.header(http::header::CONTENT_TYPE, content_type)
    }

    /// A 302/303 redirect.
    pub fn redirect(status: StatusCode, location: &str) -> Self {
        Reply::new(status)
            .header(http::header::LOCATION, location)
            .header(http::header::CACHE_CONTROL, "no-store")
    }
}
