//! File model → [`Runtime`]: every check, every cross-reference, all errors at once.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;
use uuid::Uuid;

use super::diag::Diagnostics;
use super::duration;
use super::file::{self, ConfigFile, LogFormatFile, PolicyFile, RuleFile, ScopeFile, StepUpFile};
use super::runtime::*;
use crate::routing::{HostPattern, KNOWN_METHODS, Matcher, PathPattern, Router, normalize_host};
use crate::trust::{AuthenticatorSet, CaFile, MdsSource};

/// Defaults the reference documents.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// Worker threads when `threads` is not set: what measured best on a 2-core
/// machine shared with the app and the load generator (see docs/performance.md).
pub const DEFAULT_THREADS: usize = 2;

/// The most worker threads `threads` may ask for.
pub const MAX_THREADS: u64 = 256;
pub const DEFAULT_SQLITE_PATH: &str = "./data/stepgate.db";
pub const DEFAULT_REDIS_PREFIX: &str = "stepgate:";
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(8 * 3600);
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
pub const DEFAULT_PER_IP_PER_MINUTE: u32 = 120;
pub const DEFAULT_PER_USER_PER_MINUTE: u32 = 30;
/// The longest a client token may live unless `session.token_max_lifetime` says otherwise.
pub const DEFAULT_TOKEN_MAX_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// The shortest `session.token_max_lifetime` accepted.
pub const MIN_TOKEN_MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// The shortest `step_up.max_age` accepted.
pub const MIN_MAX_AGE: Duration = Duration::from_secs(10);

/// Compile a shape-checked file; `None` when any error was found (all are in `diags`).
pub fn compile(f: ConfigFile, diags: &mut Diagnostics, now: i64) -> Option<Runtime> {
    let listen = socket(
        diags,
        "listen",
        f.listen.as_deref().unwrap_or(DEFAULT_LISTEN),
    );
    let tls_listen = f
        .tls
        .as_ref()
        .and_then(|t| socket(diags, "tls.listen", &t.listen));
    let tls = f.tls.as_ref().map(|t| Tls {
        cert: t.cert.clone(),
        key: t.key.clone(),
    });
    let threads = threads(diags, f.threads);
    let admin_listen = f
        .admin_listen
        .as_deref()
        .and_then(|a| socket(diags, "admin_listen", a));
    let trusted_proxies = networks(diags, "trusted_proxies", &f.trusted_proxies, true);
    let portal = required_portal(diags, &f);
    let cookie_keys = cookie_keys(diags, &f);
    let session = session(diags, f.session.as_ref());
    let store = store(diags, f.store.as_ref());
    let users = users(diags, &f.users, now);
    let authenticators = authenticators(diags, &f.authenticators);
    let rate_limit = rate_limit(diags, f.rate_limit.as_ref());
    let token_max_lifetime = token_max_lifetime(diags, f.session.as_ref());
    let upstreams = upstreams(diags, &f.upstreams);
    let identity = identity_maps(diags, &f.upstreams);
    let (rules, matchers) = rules(diags, &f.rules, &users, &authenticators, &upstreams);
    let rules = tokens_and_identity(diags, &f.rules, rules, &identity);
    let served = served(
        diags,
        f.served.as_ref(),
        (listen, tls_listen),
        portal.as_ref(),
        &rules,
    );
    let stripped = stripped(&identity, &rules);
    let log_json = f.log.as_ref().and_then(|l| l.format) == Some(LogFormatFile::Json);
    super::lint::Lint {
        raw: &f.rules,
        rules: &rules,
        matchers: &matchers,
        session: &session,
        upstreams: &upstreams,
        identity: &identity,
    }
    .run(diags);

    if diags.has_errors() {
        return None;
    }
    Some(Runtime {
        boot: Boot {
            listen: listen?,
            threads,
            tls_listen,
            admin_listen,
            store,
            portal: portal?,
            log_json,
        },
        tls,
        trusted_proxies,
        served,
        cookie_keys,
        session,
        users,
        authenticators,
        trust: Default::default(),
        rate_limit,
        token_max_lifetime,
        upstreams,
        rules,
        stripped,
        router: Router::new(matchers),
        request_counters: Default::default(),
    })
}

/// `portal:` must be there (unless it failed its shape check, said already).
fn required_portal(diags: &mut Diagnostics, f: &ConfigFile) -> Option<Portal> {
    match &f.portal {
        Some(p) => portal(diags, p),
        None if f.failed.iter().any(|k| k == "portal") => None,
        None => {
            diags.error(
                "portal",
                "missing: the portal url is required (portal: { url: https://auth.example.com })",
            );
            None
        }
    }
}

/// `served:` and what stepgate sees for itself: the ports of the origins
/// browsers use (the listeners' and the portal's, and those listed) and the
/// names under `*.suffix` patterns sign-in may return to (only those listed).
fn served(
    diags: &mut Diagnostics,
    raw: Option<&file::ServedFile>,
    (listen, tls_listen): (Option<SocketAddr>, Option<SocketAddr>),
    portal: Option<&Portal>,
    rules: &[Rule],
) -> Served {
    let empty = file::ServedFile::default();
    let raw = raw.unwrap_or(&empty);
    let mut out = Served::default();
    out.http_ports.extend(listen.map(|a| a.port()));
    out.https_ports.extend(tls_listen.map(|a| a.port()));
    if let Some(p) = portal
        && let Some(port) = Url::parse(&p.origin).ok().and_then(|u| u.port())
    {
        let ports = if p.secure {
            &mut out.https_ports
        } else {
            &mut out.http_ports
        };
        ports.insert(port);
    }
    for (i, &port) in raw.ports.iter().enumerate() {
        if port == 0 {
            diags.error(&format!("served.ports[{i}]"), "0 is not a port");
            continue;
        }
        out.http_ports.insert(port);
        out.https_ports.insert(port);
    }
    let vouching: Vec<&HostPattern> = rules
        .iter()
        .filter(|r| r.policy != Policy::Deny)
        .flat_map(|r| &r.hosts)
        .collect();
    for (i, raw_host) in raw.hosts.iter().enumerate() {
        let path = format!("served.hosts[{i}]");
        let host = match normalize_host(raw_host) {
            Ok(h) if !raw_host.contains('*') => h,
            _ => {
                diags.error(
                    &path,
                    format!("\"{raw_host}\" is not a host name (list each name; no patterns)"),
                );
                continue;
            }
        };
        if !vouching
            .iter()
            .any(|h| matches!(h, HostPattern::Suffix(_)) && h.matches(&host))
            && !vouching
                .iter()
                .any(|h| matches!(h, HostPattern::Exact(e) if *e == host))
        {
            diags.error(
                &path,
                format!(
                    "\"{host}\" is under no `*.suffix` host pattern of a rule that is not deny"
                ),
            );
            continue;
        }
        out.hosts.insert(host);
    }
    warn_unreturnable(diags, rules, &out);
    out
}

/// Warn for each passkey rule whose hosts are only patterns with no name
/// listed under them: sign-in can never return there.
fn warn_unreturnable(diags: &mut Diagnostics, rules: &[Rule], served: &Served) {
    for (i, r) in rules.iter().enumerate() {
        if r.policy != Policy::Passkey {
            continue;
        }
        let returnable = r.hosts.iter().any(|h| match h {
            HostPattern::Exact(_) => true,
            HostPattern::Suffix(_) => served.hosts.iter().any(|s| h.matches(s)),
            HostPattern::Any => false,
        });
        if !returnable {
            diags.warn(
                &format!("rules[{i}].hosts"),
                format!(
                    "rule \"{}\": sign-in never returns to a name a pattern merely matches; list the names browsers use under served.hosts",
                    r.name
                ),
            );
        }
    }
}

/// `secrets.cookie_keys`: at least one key file.
fn cookie_keys(diags: &mut Diagnostics, f: &ConfigFile) -> Vec<PathBuf> {
    match &f.secrets {
        Some(s) if !s.cookie_keys.is_empty() => s.cookie_keys.clone(),
        Some(_) => {
            diags.error(
                "secrets.cookie_keys",
                "at least one key file is required (make one with `stepgate gen-key`)",
            );
            Vec::new()
        }
        None if f.failed.iter().any(|k| k == "secrets") => Vec::new(),
        None => {
            diags.error("secrets", "missing: secrets.cookie_keys names the cookie key files (make one with `stepgate gen-key`)");
            Vec::new()
        }
    }
}

fn threads(diags: &mut Diagnostics, raw: Option<u64>) -> usize {
    match raw {
        None => DEFAULT_THREADS,
        Some(n) if (1..=MAX_THREADS).contains(&n) => n as usize,
        Some(n) => {
            diags.error(
                "threads",
                format!("{n} is not between 1 and {MAX_THREADS} worker threads"),
            );
            DEFAULT_THREADS
        }
    }
}

fn socket(diags: &mut Diagnostics, path: &str, raw: &str) -> Option<SocketAddr> {
    match raw.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            diags.error(
                path,
                format!("\"{raw}\" is not an address:port like 0.0.0.0:8080"),
            );
            None
        }
    }
}

fn networks(diags: &mut Diagnostics, path: &str, raw: &[String], warn_any: bool) -> Vec<IpNet> {
    let mut out = Vec::new();
    for (i, n) in raw.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let parsed = n
            .parse::<IpNet>()
            .or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => {
                if warn_any && net.prefix_len() == 0 {
                    diags.warn(
                        &p,
                        format!(
                            "\"{n}\" trusts forwarded headers from every address on the internet"
                        ),
                    );
                }
                out.push(net.trunc());
            }
            Err(_) => diags.error(
                &p,
                format!("\"{n}\" is not a CIDR network like 192.168.0.0/16 or an IP address"),
            ),
        }
    }
    out
}

fn portal(diags: &mut Diagnostics, p: &file::PortalFile) -> Option<Portal> {
    let url = match Url::parse(&p.url) {
        Ok(u) => u,
        Err(e) => {
            diags.error("portal.url", format!("\"{}\" is not a URL: {e}", p.url));
            return None;
        }
    };
    let secure = match url.scheme() {
        "https" => true,
        "http" => false,
        s => {
            diags.error(
                "portal.url",
                format!("scheme \"{s}\" is not allowed; use https (or http for a local test)"),
            );
            return None;
        }
    };
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        diags.error("portal.url", format!("\"{}\" must be an origin only (scheme, host, optional port) with no path, query or fragment", p.url));
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        diags.error("portal.url", "must not carry a user name or password");
        return None;
    }
    let Some(host) = url
        .host_str()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
    else {
        diags.error("portal.url", "has no host");
        return None;
    };
    let origin = url.origin().ascii_serialization();
    let rp_id = p
        .rp_id
        .clone()
        .unwrap_or_else(|| host.clone())
        .to_ascii_lowercase();
    if !(host == rp_id || host.ends_with(&format!(".{rp_id}"))) {
        diags.error(
            "portal.rp_id",
            format!("\"{rp_id}\" must be the portal host \"{host}\" or a parent domain of it (WebAuthn rule)"),
        );
    }
    if !secure {
        let local = host == "localhost" || host.ends_with(".localhost") || host == "127.0.0.1";
        let hint = if local {
            ""
        } else {
            " — browsers refuse passkeys here; use https"
        };
        diags.warn(
            "portal.url",
            format!("plain-http portal: cookies travel unencrypted{hint}"),
        );
    }
    Some(Portal {
        origin,
        host,
        secure,
        rp_id,
        rp_name: p.rp_name.clone().unwrap_or_else(|| "stepgate".to_string()),
    })
}

fn session(diags: &mut Diagnostics, s: Option<&file::SessionFile>) -> SessionLimits {
    let idle = s
        .and_then(|s| s.idle_timeout)
        .unwrap_or(DEFAULT_IDLE_TIMEOUT);
    let max = s
        .and_then(|s| s.max_lifetime)
        .unwrap_or(DEFAULT_MAX_LIFETIME);
    if idle < Duration::from_secs(60) {
        diags.error("session.idle_timeout", "must be at least 1m");
    }
    if max < idle {
        diags.error(
            "session.max_lifetime",
            "must not be shorter than session.idle_timeout",
        );
    }
    SessionLimits {
        idle_timeout: idle,
        max_lifetime: max,
    }
}

fn token_max_lifetime(diags: &mut Diagnostics, s: Option<&file::SessionFile>) -> Duration {
    let max = s
        .and_then(|s| s.token_max_lifetime)
        .unwrap_or(DEFAULT_TOKEN_MAX_LIFETIME);
    if max < MIN_TOKEN_MAX_LIFETIME {
        diags.error("session.token_max_lifetime", "must be at least 1h");
    }
    max
}

fn store(diags: &mut Diagnostics, s: Option<&file::StoreFile>) -> StoreSettings {
    let default = StoreSettings::Sqlite {
        path: PathBuf::from(DEFAULT_SQLITE_PATH),
    };
    let Some(s) = s else { return default };
    match (&s.sqlite, &s.redis) {
        (Some(_), Some(_)) => {
            diags.error(
                "store",
                "choose exactly one backend: sqlite or redis, not both",
            );
            default
        }
        (None, None) => {
            diags.error(
                "store",
                "name a backend: sqlite: { path: ... } or redis: { url: ... }",
            );
            default
        }
        (Some(sq), None) => StoreSettings::Sqlite {
            path: sq.path.clone(),
        },
        (None, Some(r)) => StoreSettings::Redis {
            target: redis_target(diags, r),
            prefix: r
                .prefix
                .clone()
                .unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_string()),
        },
    }
}

/// Why stepgate needs one Redis primary, said wherever Cluster comes up.
pub const NO_CLUSTER: &str = "Redis Cluster is not supported: ceremony states are taken with one \
     single-read GETDEL and sessions change in Lua scripts over several keys, which needs all \
     keys on one primary; use one Redis (url) or Redis Sentinel (sentinels + master_name) \
     for failover";

/// `store.redis`: exactly one of `url` and `sentinels`; the keys of the other form are errors.
fn redis_target(diags: &mut Diagnostics, r: &file::RedisFile) -> RedisTarget {
    if r.cluster.is_some() {
        diags.error("store.redis.cluster", NO_CLUSTER);
    }
    match (&r.url, &r.sentinels) {
        (Some(_), Some(_)) => {
            diags.error(
                "store.redis",
                "give either url (one Redis) or sentinels + master_name (Redis Sentinel), not both",
            );
            RedisTarget::Url(String::new())
        }
        (None, None) => {
            diags.error(
                "store.redis",
                "name the server: url: redis://host:6379/0, or sentinels: [host:26379, ...] with master_name",
            );
            RedisTarget::Url(String::new())
        }
        (Some(url), None) => {
            redis_url(diags, url, r);
            RedisTarget::Url(url.clone())
        }
        (None, Some(list)) => RedisTarget::Sentinel(sentinel(diags, list, r)),
    }
}

fn redis_url(diags: &mut Diagnostics, url: &str, r: &file::RedisFile) {
    match Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix") => {}
        _ => diags.error(
            "store.redis.url",
            format!("\"{url}\" is not a redis:// URL"),
        ),
    }
    let sentinel_only = [
        ("master_name", r.master_name.is_some()),
        ("username", r.username.is_some()),
        ("password", r.password.is_some()),
        ("sentinel_username", r.sentinel_username.is_some()),
        ("sentinel_password", r.sentinel_password.is_some()),
        ("db", r.db.is_some()),
        ("tls", r.tls.is_some()),
    ];
    for (key, _) in sentinel_only.iter().filter(|(_, present)| *present) {
        diags.key_error(
            &format!("store.redis.{key}"),
            "belongs to the Sentinel form (sentinels: [...]); with url, write it in the URL: \
             rediss://user:password@host:6379/DB",
        );
    }
}

fn sentinel(diags: &mut Diagnostics, list: &[String], r: &file::RedisFile) -> SentinelSettings {
    if list.is_empty() {
        diags.error(
            "store.redis.sentinels",
            "list at least one sentinel as host:port (three or more for a real quorum)",
        );
    }
    let sentinels = list
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            let parsed = host_port(raw);
            if parsed.is_none() {
                diags.error(
                    &format!("store.redis.sentinels[{i}]"),
                    format!("\"{raw}\" is not host:port like 10.0.0.5:26379"),
                );
            }
            parsed
        })
        .collect();
    let master_name = r.master_name.clone().unwrap_or_default();
    if master_name.is_empty() {
        diags.error(
            "store.redis.master_name",
            "missing: the name the sentinels monitor the primary under (sentinel monitor NAME ...)",
        );
    }
    let db = r.db.unwrap_or(0);
    if db < 0 {
        diags.error("store.redis.db", "must be 0 or more");
    }
    SentinelSettings {
        sentinels,
        master_name,
        db,
        tls: r.tls.unwrap_or(false),
        redis_auth: auth(&r.username, &r.password),
        sentinel_auth: auth(&r.sentinel_username, &r.sentinel_password),
    }
}

fn auth(username: &Option<String>, password: &Option<String>) -> RedisAuth {
    RedisAuth {
        username: username.clone(),
        password: password.clone().map(Secret),
    }
}

/// `host:port` or `[v6]:port` with a non-zero port.
fn host_port(raw: &str) -> Option<(String, u16)> {
    let (host, port) = raw.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let ok = (!host.is_empty() && !host.contains([':', '/', ' ']))
        || host.parse::<std::net::Ipv6Addr>().is_ok();
    ok.then(|| (host.to_string(), port))
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

fn users(
    diags: &mut Diagnostics,
    raw: &BTreeMap<String, file::UserFile>,
    now: i64,
) -> BTreeMap<String, User> {
    let mut out = BTreeMap::new();
    for (name, u) in raw {
        let p = format!("users.{name}");
        if !valid_name(name) {
            diags.key_error(
                &p,
                format!("user name \"{name}\" may hold only letters, digits, '-', '_', '.', '@'"),
            );
        }
        for (i, g) in u.groups.iter().enumerate() {
            if !valid_name(g) {
                diags.error(
                    &format!("{p}.groups[{i}]"),
                    format!("group name \"{g}\" may hold only letters, digits, '-', '_', '.', '@'"),
                );
            }
        }
        let expires = match &u.expires {
            None => None,
            Some(raw) => match OffsetDateTime::parse(raw, &Rfc3339) {
                Ok(t) => {
                    let t = t.unix_timestamp();
                    if t <= now {
                        diags.warn(
                            &format!("{p}.expires"),
                            format!("user \"{name}\" expired at {raw}; they can no longer sign in"),
                        );
                    }
                    Some(t)
                }
                Err(_) => {
                    diags.error(
                        &format!("{p}.expires"),
                        format!("\"{raw}\" is not an RFC 3339 time like 2026-12-24T00:00:00Z"),
                    );
                    None
                }
            },
        };
        out.insert(
            name.clone(),
            User {
                name: u.name.clone(),
                email: u.email.clone(),
                groups: u.groups.clone(),
                expires,
            },
        );
    }
    out
}

fn authenticators(
    diags: &mut Diagnostics,
    raw: &BTreeMap<String, file::AuthenticatorSetFile>,
) -> BTreeMap<String, AuthenticatorSet> {
    let mut out = BTreeMap::new();
    for (name, a) in raw {
        let p = format!("authenticators.{name}");
        if a.aaguids.is_empty() {
            diags.error(
                &p,
                "needs aaguids: the authenticator models this set admits",
            );
        }
        let aaguids = aaguid_list(diags, &format!("{p}.aaguids"), &a.aaguids);
        if a.ca_files.is_empty() && a.mds_file.is_none() {
            diags.error(&p, "needs a trust source (ca_files or mds_file): a self-reported AAGUID proves nothing");
        }
        let ca_files = a
            .ca_files
            .iter()
            .enumerate()
            .map(|(i, entry)| ca_file(diags, &format!("{p}.ca_files[{i}]"), entry, &aaguids))
            .collect();
        let mds = match (&a.mds_file, &a.mds_root) {
            (Some(blob), Some(root)) => Some(MdsSource {
                blob: blob.clone(),
                root: root.clone(),
            }),
            (Some(_), None) => {
                diags.error(
                    &format!("{p}.mds_file"),
                    "needs mds_root: the root certificate (PEM) the blob's signature must chain to \
                     (for the FIDO Alliance's blob, the root its download page names)",
                );
                None
            }
            (None, Some(_)) => {
                diags.error(
                    &format!("{p}.mds_root"),
                    "mds_root without mds_file: there is no blob to check",
                );
                None
            }
            (None, None) => None,
        };
        out.insert(
            name.clone(),
            AuthenticatorSet {
                display_name: a.name.clone().unwrap_or_else(|| name.clone()),
                aaguids,
                ca_files,
                mds,
            },
        );
    }
    out
}

/// Parse a list of AAGUIDs at `path`, reporting each bad one.
fn aaguid_list(diags: &mut Diagnostics, path: &str, raw: &[String]) -> Vec<Uuid> {
    aaguid_list_within(diags, path, raw, None)
}

/// [`aaguid_list`]; with `within`, an AAGUID outside it is a warning.
fn aaguid_list_within(
    diags: &mut Diagnostics,
    path: &str,
    raw: &[String],
    within: Option<&[Uuid]>,
) -> Vec<Uuid> {
    let mut out = Vec::new();
    for (i, g) in raw.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match Uuid::parse_str(g) {
            Ok(u) => {
                if within.is_some_and(|w| !w.contains(&u)) {
                    diags.warn(
                        &p,
                        format!(
                            "{u} is not in this set's aaguids, so this root admits nothing with it"
                        ),
                    );
                }
                out.push(u);
            }
            Err(_) => diags.error(
                &p,
                format!(
                    "\"{g}\" is not an AAGUID (a UUID like cb69481e-8ff7-4039-93ec-0a2729a154a8)"
                ),
            ),
        }
    }
    out
}

/// One `ca_files` entry; its own `aaguids` (if any) should be some of the set's.
fn ca_file(
    diags: &mut Diagnostics,
    path: &str,
    entry: &file::CaFileEntry,
    set_aaguids: &[Uuid],
) -> CaFile {
    let aaguids = entry.aaguids.as_ref().map(|list| {
        let p = format!("{path}.aaguids");
        if list.is_empty() {
            diags.error(
                &p,
                "an empty list lets this root vouch for nothing; leave aaguids out to let it vouch for all of the set's",
            );
        }
        aaguid_list_within(diags, &p, list, Some(set_aaguids))
    });
    CaFile {
        path: entry.file.clone(),
        aaguids,
    }
}

fn rate_limit(diags: &mut Diagnostics, r: Option<&file::RateLimitFile>) -> RateLimit {
    let ip = r
        .and_then(|r| r.per_ip_per_minute)
        .unwrap_or(DEFAULT_PER_IP_PER_MINUTE);
    let user = r
        .and_then(|r| r.per_user_per_minute)
        .unwrap_or(DEFAULT_PER_USER_PER_MINUTE);
    if ip == 0 {
        diags.error("rate_limit.per_ip_per_minute", "must be at least 1");
    }
    if user == 0 {
        diags.error("rate_limit.per_user_per_minute", "must be at least 1");
    }
    RateLimit {
        per_ip_per_minute: ip,
        per_user_per_minute: user,
    }
}

fn upstreams(
    diags: &mut Diagnostics,
    raw: &BTreeMap<String, file::UpstreamFile>,
) -> BTreeMap<String, Upstream> {
    let mut out = BTreeMap::new();
    for (name, entry) in raw {
        let target = entry.url();
        let fold_case =
            matches!(entry, file::UpstreamFile::Detailed(d) if d.case_insensitive_paths);
        let p = match entry {
            file::UpstreamFile::Url(_) => format!("upstreams.{name}"),
            file::UpstreamFile::Detailed(_) => format!("upstreams.{name}.url"),
        };
        if target == "builtin:whoami" {
            if fold_case {
                diags.error(
                    &format!("upstreams.{name}.case_insensitive_paths"),
                    "builtin:whoami matches paths as written",
                );
            }
            out.insert(name.clone(), Upstream::Whoami);
            continue;
        }
        if let Some(other) = target.strip_prefix("builtin:") {
            diags.error(
                &p,
                format!("unknown built-in upstream \"{other}\" (known: whoami)"),
            );
            continue;
        }
        let parsed = Url::parse(target)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        let Some(u) = parsed else {
            diags.error(
                &p,
                format!(
                    "\"{target}\" must be http://HOST:PORT, https://HOST:PORT or builtin:whoami"
                ),
            );
            continue;
        };
        if u.path() != "/" || u.query().is_some() {
            diags.error(&p, format!("\"{target}\" must not carry a path or query: the request path is sent as it arrived"));
            continue;
        }
        let (Some(host), Some(port)) = (u.host_str(), u.port_or_known_default()) else {
            diags.error(&p, format!("\"{target}\" has no host"));
            continue;
        };
        let tls = u.scheme() == "https";
        let sni = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        out.insert(
            name.clone(),
            Upstream::Http {
                address: format!("{host}:{port}"),
                tls,
                sni,
                fold_case,
            },
        );
    }
    out
}

/// What a rule is checked against: the compiled users, their groups, the
/// authenticator sets and the upstreams.
struct RuleContext<'a> {
    users: &'a BTreeMap<String, User>,
    groups: HashSet<&'a str>,
    sets: &'a BTreeMap<String, AuthenticatorSet>,
    upstreams: &'a BTreeMap<String, Upstream>,
}

fn rules(
    diags: &mut Diagnostics,
    raw: &[Option<RuleFile>],
    users: &BTreeMap<String, User>,
    sets: &BTreeMap<String, AuthenticatorSet>,
    upstreams: &BTreeMap<String, Upstream>,
) -> (Vec<Rule>, Vec<Matcher>) {
    let cx = RuleContext {
        users,
        groups: users
            .values()
            .flat_map(|u| u.groups.iter().map(String::as_str))
            .collect(),
        sets,
        upstreams,
    };
    let mut rules: Vec<Rule> = Vec::new();
    let mut matchers: Vec<Matcher> = Vec::new();
    let mut names = HashSet::new();
    if raw.is_empty() {
        diags.warn("rules", "no rules: every request is denied");
    }
    for (i, r) in raw.iter().enumerate() {
        let Some(r) = r else { continue };
        let p = format!("rules[{i}]");
        if r.name.trim().is_empty() {
            diags.error(&format!("{p}.name"), "must not be empty");
        } else if !names.insert(r.name.clone()) {
            diags.error(
                &format!("{p}.name"),
                format!("duplicate rule name \"{}\"", r.name),
            );
        }
        let (rule, matcher) = rule(diags, &cx, &p, r);
        rules.push(rule);
        matchers.push(matcher);
    }
    (rules, matchers)
}

/// One rule at `p` and what routes to it.
fn rule(diags: &mut Diagnostics, cx: &RuleContext<'_>, p: &str, r: &RuleFile) -> (Rule, Matcher) {
    let matcher = matcher(diags, cx, p, r);
    let allow = r.allow.as_ref().map(|list| allow_list(diags, cx, p, list));
    if let Some(u) = &r.upstream
        && !cx.upstreams.contains_key(u)
    {
        let known = known_list(cx.upstreams.keys());
        diags.error(
            &format!("{p}.upstream"),
            format!("unknown upstream \"{u}\" ({known})"),
        );
    }
    let policy = match r.policy {
        PolicyFile::Bypass => Policy::Bypass,
        PolicyFile::Deny => Policy::Deny,
        PolicyFile::Passkey => Policy::Passkey,
    };
    if policy != Policy::Passkey && r.allow.is_some() {
        let kind = if policy == Policy::Bypass {
            "bypass"
        } else {
            "deny"
        };
        diags.error(&format!("{p}.allow"), format!("allow only applies to policy: passkey; a {kind} rule never looks at who the user is"));
    }
    let step_up = r.step_up.as_ref().map(|s| {
        if policy != Policy::Passkey {
            diags.error(
                &format!("{p}.step_up"),
                "step_up is only allowed on policy: passkey rules",
            );
        }
        step_up(diags, cx, &format!("{p}.step_up"), s)
    });
    if policy == Policy::Passkey && r.allow.is_none() && matcher.hosts.contains(&HostPattern::Any) {
        diags.warn(
            &format!("{p}.hosts"),
            "passkey rule on \"*\" with no allow: any enrolled user may open any host",
        );
    }
    let rule = Rule {
        name: r.name.clone(),
        hosts: matcher.hosts.clone(),
        upstream: r.upstream.clone(),
        policy,
        allow,
        step_up,
        tokens: None,
        identity_headers: None,
    };
    (rule, matcher)
}

/// What routes to the rule at `p`: its hosts, paths, methods and networks,
/// and whether its upstream folds case.
fn matcher(diags: &mut Diagnostics, cx: &RuleContext<'_>, p: &str, r: &RuleFile) -> Matcher {
    if r.hosts.is_empty() {
        diags.error(
            &format!("{p}.hosts"),
            "list at least one host (exact, \"*.suffix\" or \"*\")",
        );
    }
    let mut hosts = Vec::new();
    for (j, h) in r.hosts.iter().enumerate() {
        match HostPattern::parse(h) {
            Ok(hp) => hosts.push(hp),
            Err(m) => diags.error(&format!("{p}.hosts[{j}]"), m),
        }
    }
    let mut paths = Vec::new();
    for (j, pat) in r.paths.iter().enumerate() {
        match PathPattern::parse(pat) {
            Ok(pp) => paths.push(pp),
            Err(m) => diags.error(&format!("{p}.paths[{j}]"), m),
        }
    }
    let methods = r.methods.as_ref().map(|ms| {
        let mut out = Vec::new();
        for (j, m) in ms.iter().enumerate() {
            let up = m.to_ascii_uppercase();
            if KNOWN_METHODS.contains(&up.as_str()) {
                out.push(up);
            } else {
                diags.error(
                    &format!("{p}.methods[{j}]"),
                    format!("unknown HTTP method \"{m}\""),
                );
            }
        }
        out
    });
    let fold_case = r
        .upstream
        .as_ref()
        .and_then(|u| cx.upstreams.get(u))
        .is_some_and(|u| {
            matches!(
                u,
                Upstream::Http {
                    fold_case: true,
                    ..
                }
            )
        });
    Matcher {
        hosts,
        paths,
        methods,
        networks: networks(diags, &format!("{p}.networks"), &r.networks, false),
        fold_case,
    }
}

/// A rule's `allow` list: `user:NAME` of a configured user or `group:NAME`.
fn allow_list(
    diags: &mut Diagnostics,
    cx: &RuleContext<'_>,
    p: &str,
    list: &[String],
) -> Vec<Principal> {
    let mut out = Vec::new();
    for (j, a) in list.iter().enumerate() {
        let ap = format!("{p}.allow[{j}]");
        if let Some(u) = a.strip_prefix("user:") {
            if !cx.users.contains_key(u) {
                let known = known_list(cx.users.keys());
                diags.error(&ap, format!("unknown user \"{u}\" ({known})"));
            }
            out.push(Principal::User(u.to_string()));
        } else if let Some(g) = a.strip_prefix("group:") {
            if !cx.groups.contains(g) {
                diags.warn(&ap, format!("no configured user is in group \"{g}\""));
            }
            out.push(Principal::Group(g.to_string()));
        } else {
            diags.error(&ap, format!("\"{a}\" must be user:NAME or group:NAME"));
        }
    }
    out
}

/// A rule's `step_up` at `sp`: `max_age` at least [`MIN_MAX_AGE`], known sets.
fn step_up(diags: &mut Diagnostics, cx: &RuleContext<'_>, sp: &str, s: &StepUpFile) -> StepUp {
    if let Some(age) = s.max_age
        && age < MIN_MAX_AGE
    {
        diags.error(
            &format!("{sp}.max_age"),
            format!(
                "{} is too short: the minimum is {}",
                duration::Formatted(age),
                duration::Formatted(MIN_MAX_AGE)
            ),
        );
    }
    for (j, a) in s.authenticators.iter().enumerate() {
        if !cx.sets.contains_key(a) {
            let known = known_list(cx.sets.keys());
            diags.error(
                &format!("{sp}.authenticators[{j}]"),
                format!("unknown authenticator set \"{a}\" ({known})"),
            );
        }
    }
    StepUp {
        max_age: s.max_age,
        scope: match s.scope.unwrap_or(ScopeFile::Rule) {
            ScopeFile::Rule => Scope::Rule,
            ScopeFile::Session => Scope::Session,
        },
        authenticators: s.authenticators.clone(),
        device_bound: s.device_bound,
    }
}

/// `upstreams.NAME.identity_headers` of every upstream that has one: valid
/// header names, none reserved ([`crate::headers::reserved`]), no name twice.
fn identity_maps(
    diags: &mut Diagnostics,
    raw: &BTreeMap<String, file::UpstreamFile>,
) -> BTreeMap<String, Arc<IdentityHeaders>> {
    let mut out = BTreeMap::new();
    for (upstream, entry) in raw {
        let file::UpstreamFile::Detailed(d) = entry else {
            continue;
        };
        let Some(map) = &d.identity_headers else {
            continue;
        };
        let mut headers = IdentityHeaders::default();
        let mut seen: Vec<HeaderName> = Vec::new();
        for (key, name) in map.entries() {
            let Some(name) = name else { continue };
            let p = format!("upstreams.{upstream}.identity_headers.{key}");
            let Some(parsed) = header_name(diags, &p, name) else {
                continue;
            };
            if seen.contains(&parsed) {
                diags.error(
                    &p,
                    format!("\"{name}\" already carries another part of the identity"),
                );
                continue;
            }
            seen.push(parsed.clone());
            let slot = match key {
                "user" => &mut headers.user,
                "email" => &mut headers.email,
                "name" => &mut headers.name,
                _ => &mut headers.groups,
            };
            *slot = Some(parsed);
        }
        out.insert(upstream.clone(), Arc::new(headers));
    }
    out
}

/// Every upstream's mapped names and every rule's token header, as one set.
fn stripped(
    identity: &BTreeMap<String, Arc<IdentityHeaders>>,
    rules: &[Rule],
) -> Arc<crate::headers::Stripped> {
    let token_headers = rules.iter().filter_map(|r| match &r.tokens {
        Some(TokenRule {
            from: TokenFrom::Header(name),
            ..
        }) => Some(name),
        _ => None,
    });
    let mapped = identity.values().flat_map(|m| m.names());
    Arc::new(crate::headers::Stripped::new(mapped, token_headers))
}

/// A header name an identity or a token may travel in, or an error at `path`.
fn header_name(diags: &mut Diagnostics, path: &str, raw: &str) -> Option<HeaderName> {
    let Ok(parsed) = HeaderName::from_bytes(raw.as_bytes()) else {
        diags.error(path, format!("\"{raw}\" is not a header name"));
        return None;
    };
    if let Some(why) = crate::headers::reserved(raw) {
        diags.error(path, format!("\"{raw}\" cannot be used: {why}"));
        return None;
    }
    Some(parsed)
}

/// Give each compiled rule its upstream's identity names and its `tokens:`.
fn tokens_and_identity(
    diags: &mut Diagnostics,
    raw: &[Option<RuleFile>],
    mut rules: Vec<Rule>,
    identity: &BTreeMap<String, Arc<IdentityHeaders>>,
) -> Vec<Rule> {
    // Compiled rules are the parsed ones, in order.
    let parsed = raw
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, r.as_ref()?)));
    for ((i, file), rule) in parsed.zip(rules.iter_mut()) {
        rule.identity_headers = file
            .upstream
            .as_ref()
            .and_then(|u| identity.get(u))
            .cloned();
        let Some(t) = &file.tokens else { continue };
        let p = format!("rules[{i}].tokens");
        if rule.policy != Policy::Passkey {
            diags.error(
                &p,
                "tokens only apply to policy: passkey rules (a bypass rule asks for nothing, a deny rule lets nobody in)",
            );
        }
        let from = match &t.from {
            file::TokenFromFile::Basic => Some(TokenFrom::Basic),
            file::TokenFromFile::Bearer => Some(TokenFrom::Bearer),
            file::TokenFromFile::Header(name) => {
                token_header(diags, &format!("{p}.from.header"), name, rule)
            }
        };
        rule.tokens = from.map(|from| TokenRule {
            from,
            keep: t.keep,
            sessions: t.sessions,
        });
    }
    rules
}

/// The header a rule's tokens travel in: a usable name that is not also one
/// of the rule's identity headers (those are replaced before proxying).
fn token_header(diags: &mut Diagnostics, path: &str, raw: &str, rule: &Rule) -> Option<TokenFrom> {
    let name = header_name(diags, path, raw)?;
    if rule
        .identity_headers
        .as_ref()
        .is_some_and(|m| m.contains(name.as_str()))
    {
        diags.error(
            path,
            format!("\"{raw}\" is one of this rule's upstream identity_headers"),
        );
        return None;
    }
    Some(TokenFrom::Header(name))
}

/// "known: a, b" or "none are configured".
fn known_list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none are configured".to_string()
    } else {
        format!("known: {}", names.join(", "))
    }
}
