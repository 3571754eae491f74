//! The validated runtime configuration every other module reads.
//!
//! Built only by [`super::compile`]; once built it is immutable. What it
//! holds falls in two parts: [`Boot`], what applies only when the process
//! starts (a reload that changes it keeps the running value and names the
//! key that needs a restart), and everything else, which a reload swaps in
//! whole (inside the gateway's snapshot), so a request sees one consistent
//! version of it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;

use crate::routing::{AmbiguousCase, HostPattern, RouteRequest, Router};
use crate::trust::{AuthenticatorSet, TrustStore};

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// What applies only at start.
    pub boot: Boot,
    /// The HTTPS certificate files (`tls.cert`, `tls.key`), read again at
    /// each reload; the listener itself is `boot.tls_listen`.
    pub tls: Option<Tls>,
    pub trusted_proxies: Vec<IpNet>,
    /// The app origins sign-in codes may be minted for (`served:`).
    pub served: Served,
    pub cookie_keys: Vec<PathBuf>,
    pub session: SessionLimits,
    pub users: BTreeMap<String, User>,
    pub authenticators: BTreeMap<String, AuthenticatorSet>,
    /// The trust anchors `authenticators` names, loaded from their files
    /// (`TrustStore::load`) by whoever installs this config; empty straight
    /// out of `compile`, which reads no file: then no credential is in any set.
    pub trust: Arc<TrustStore>,
    pub rate_limit: RateLimit,
    /// The longest a client token may be minted for (`session.token_max_lifetime`).
    pub token_max_lifetime: Duration,
    pub upstreams: BTreeMap<String, Upstream>,
    pub rules: Vec<Rule>,
    /// The identity names and token places every request is cleaned of.
    pub stripped: Arc<crate::headers::Stripped>,
    pub router: Router,
    /// `stepgate_requests_total` per rule and outcome, resolved by whoever
    /// installs this config (`RequestCounters::for_rules`); empty straight out
    /// of `compile`, which registers nothing: then requests count by label.
    pub request_counters: Arc<crate::telemetry::RequestCounters>,
}

/// What applies only when the process starts: the listeners and their
/// threads, the store, the portal (its origin is the WebAuthn origin and
/// `rp_id` is in every passkey), the log format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub listen: SocketAddr,
    /// Worker threads of the proxy listener (`threads`).
    pub threads: usize,
    /// `tls.listen`: the HTTPS listener, if any.
    pub tls_listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub store: StoreSettings,
    pub portal: Portal,
    /// `log.format: json`.
    pub log_json: bool,
}

impl Boot {
    /// The config keys whose values differ between `self` and `other`.
    pub fn changed_keys(&self, other: &Boot) -> Vec<&'static str> {
        [
            ("listen", self.listen != other.listen),
            ("threads", self.threads != other.threads),
            ("tls.listen", self.tls_listen != other.tls_listen),
            ("admin_listen", self.admin_listen != other.admin_listen),
            ("store", self.store != other.store),
            ("portal", self.portal != other.portal),
            ("log.format", self.log_json != other.log_json),
        ]
        .into_iter()
        .filter_map(|(key, differs)| differs.then_some(key))
        .collect()
    }
}

/// `tls:` — the certificate files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `portal:` with everything derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    /// `https://auth.home.lab` (no path, no trailing slash).
    pub origin: String,
    /// Normalised host of the portal, without port.
    pub host: String,
    /// true for https.
    pub secure: bool,
    pub rp_id: String,
    pub rp_name: String,
}

impl Portal {
    /// The portal's own page for `path` (which starts with `/.stepgate/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.origin, path)
    }
}

/// The app origins browsers really use: which ports besides the scheme's
/// default, and which names under a `*.suffix` rule. Only these origins are
/// ever bound to a browser, given a sign-in code or sent to after one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Served {
    /// Ports of `http://` origins: `listen`'s, the portal's when it is http,
    /// and `served.ports`.
    pub http_ports: BTreeSet<u16>,
    /// Ports of `https://` origins: `tls.listen`'s, the portal's when it is
    /// https, and `served.ports`.
    pub https_ports: BTreeSet<u16>,
    /// `served.hosts`: names under a `*.suffix` rule the operator named.
    pub hosts: BTreeSet<String>,
}

impl Served {
    /// Is `port` (`None`: the scheme's default) one browsers use for this scheme?
    pub fn port(&self, https: bool, port: Option<u16>) -> bool {
        let Some(p) = port else { return true };
        if https {
            self.https_ports.contains(&p)
        } else {
            self.http_ports.contains(&p)
        }
    }
}

/// `session:`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
}

/// `store:` — the one backend in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    Sqlite { path: PathBuf },
    Redis { target: RedisTarget, prefix: String },
}

/// `store.redis:` — where the Redis store finds its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server: `redis://`, `rediss://` (TLS) or `unix://`.
    Url(String),
    /// The primary that the sentinels name, asked again after any failure.
    Sentinel(SentinelSettings),
}

/// `store.redis:` in its Sentinel form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelSettings {
    /// `(host, port)` of each sentinel, in the order they are asked.
    pub sentinels: Vec<(String, u16)>,
    pub master_name: String,
    pub db: i64,
    /// TLS to the primary and to the sentinels (certificates checked against the system's roots).
    pub tls: bool,
    /// Credentials for the primary.
    pub redis_auth: RedisAuth,
    /// Credentials for the sentinels (none unless `sentinel_username`/`sentinel_password`).
    pub sentinel_auth: RedisAuth,
}

/// An optional ACL user and password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisAuth {
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// A string that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// `users.NAME`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: Option<String>,
    pub email: Option<String>,
    pub groups: Vec<String>,
    /// Unix seconds after which the user grants nothing.
    pub expires: Option<i64>,
}

impl User {
    /// Is the user still allowed in at `now` (unix seconds)?
    pub fn is_active(&self, now: i64) -> bool {
        self.expires.is_none_or(|e| now < e)
    }
}

/// `rate_limit:`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_ip_per_minute: u32,
    pub per_user_per_minute: u32,
}

/// `upstreams.NAME`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// Proxy to this `host:port`, over TLS when `tls`.
    Http {
        address: String,
        tls: bool,
        sni: String,
        /// The app treats `/Admin` as `/admin` (`case_insensitive_paths`).
        fold_case: bool,
    },
    /// `builtin:whoami`
    Whoami,
}

pub use crate::headers::IdentityHeaders;

/// `rules[N].tokens`: the rule accepts passkey-minted client tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRule {
    /// Where a client sends its token.
    pub from: TokenFrom,
    /// Pass the carrying header on to the app (default: removed).
    pub keep: bool,
    /// A request without a token is judged by its browser session; without
    /// this, only a token is accepted.
    pub sessions: bool,
}

/// `rules[N].tokens.from`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFrom {
    /// `Authorization: Basic`, the token as the password of any user name.
    Basic,
    /// `Authorization: Bearer TOKEN`.
    Bearer,
    /// The whole value of this header.
    Header(HeaderName),
}

impl TokenFrom {
    /// The header that carries the token.
    pub fn carrier(&self) -> &HeaderName {
        match self {
            TokenFrom::Basic | TokenFrom::Bearer => &http::header::AUTHORIZATION,
            TokenFrom::Header(name) => name,
        }
    }

    /// How the config and `explain` write it.
    pub fn describe(&self) -> String {
        match self {
            TokenFrom::Basic => {
                "Authorization: Basic (any user name, the token as password)".into()
            }
            TokenFrom::Bearer => "Authorization: Bearer TOKEN".into(),
            TokenFrom::Header(name) => format!("the {name} header"),
        }
    }
}

/// What a rule demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Bypass,
    Deny,
    Passkey,
}

/// Who a rule lets in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User(String),
    Group(String),
}

/// Whose ceremonies count for a step-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only a ceremony done for this rule.
    Rule,
    /// The newest ceremony of the portal session.
    Session,
}

/// `rules[N].step_up`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUp {
    pub max_age: Option<Duration>,
    pub scope: Scope,
    /// Names of authenticator sets; empty means any credential.
    pub authenticators: Vec<String>,
    pub device_bound: bool,
}

/// `rules[N]` — the decision half; the matching half lives in the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub hosts: Vec<HostPattern>,
    pub upstream: Option<String>,
    pub policy: Policy,
    /// `None`: any signed-in user.
    pub allow: Option<Vec<Principal>>,
    pub step_up: Option<StepUp>,
    /// Client tokens this rule accepts, and where from.
    pub tokens: Option<TokenRule>,
    /// The upstream's own identity header names, if it maps any.
    pub identity_headers: Option<Arc<IdentityHeaders>>,
}

impl Rule {
    /// Does `user` (named `name`) pass this rule's `allow`?
    pub fn allows(&self, name: &str, user: &User) -> bool {
        match &self.allow {
            None => true,
            Some(list) => list.iter().any(|p| match p {
                Principal::User(u) => u == name,
                Principal::Group(g) => user.groups.iter().any(|ug| ug == g),
            }),
        }
    }
}

impl Runtime {
    /// The rule a request falls under, with its index; an error when case
    /// folding makes the path mean two things (answer 400).
    pub fn route(&self, req: &RouteRequest<'_>) -> Result<Option<(usize, &Rule)>, AmbiguousCase> {
        let Some(i) = self.router.route(req)? else {
            return Ok(None);
        };
        Ok(self.rules.get(i).map(|r| (i, r)))
    }

    /// May `host` (normalised) be sent to after a ceremony, and be given a
    /// sign-in code? The portal host, an exact host of a rule that is not
    /// `deny`, or a name listed under `served.hosts` (which `compile` only
    /// accepts under a `*.suffix` pattern of such a rule). A pattern never
    /// vouches for the names under it by itself: anyone can make up one.
    pub fn vouches_for_host(&self, host: &str) -> bool {
        host == self.boot.portal.host
            || self.served.hosts.contains(host)
            || self
                .rules
                .iter()
                .filter(|r| r.policy != Policy::Deny)
                .any(|r| {
                    r.hosts
                        .iter()
                        .any(|h| matches!(h, HostPattern::Exact(e) if e == host))
                })
    }

    /// [`Runtime::vouches_for_host`] at a port browsers use for `https`'s
    /// scheme (`None`: the scheme's default).
    pub fn vouches_for_origin(&self, host: &str, https: bool, port: Option<u16>) -> bool {
        self.served.port(https, port) && self.vouches_for_host(host)
    }

    /// The names of authenticator sets' display names, for messages.
    pub fn authenticator_names(&self, sets: &[String]) -> Vec<String> {
        sets.iter()
            .map(|s| {
                self.authenticators
                    .get(s)
                    .map_or(s.clone(), |a| a.display_name.clone())
            })
            .collect()
    }
}
