//! The serde mirror of the YAML file: every key of the config reference (`config/reference.yaml`), nothing else.
//!
//! Types here only describe shape (`deny_unknown_fields` everywhere); meaning,
//! cross-references and defaults that depend on other keys are checked in
//! [`super::compile`]. Each top-level section is deserialized on its own so that
//! one broken section never hides the errors of another.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `tls:` — the optional HTTPS listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub listen: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `portal:` — the one origin where ceremonies happen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalFile {
    pub url: String,
    pub rp_id: Option<String>,
    pub rp_name: Option<String>,
}

/// `secrets:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsFile {
    pub cookie_keys: Vec<PathBuf>,
}

/// `session:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    #[serde(default, deserialize_with = "super::duration::optional")]
    pub idle_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "super::duration::optional")]
    pub max_lifetime: Option<Duration>,
    /// The longest a client token may be minted for.
    #[serde(default, deserialize_with = "super::duration::optional")]
    pub token_max_lifetime: Option<Duration>,
}

/// `store:` — exactly one backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    pub sqlite: Option<SqliteFile>,
    pub redis: Option<RedisFile>,
}

/// `store.sqlite:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteFile {
    pub path: PathBuf,
}

/// `store.redis:` — one Redis by `url`, or the primary that Redis Sentinel names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    pub url: Option<String>,
    /// `host:port` of each sentinel.
    pub sentinels: Option<Vec<String>>,
    pub master_name: Option<String>,
    /// ACL user and password for the Redis primary (Sentinel form).
    pub username: Option<String>,
    pub password: Option<String>,
    /// ACL user and password for the sentinels, when they have their own.
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<String>,
    pub db: Option<i64>,
    /// TLS to the primary and the sentinels (Sentinel form; a URL says `rediss://`).
    pub tls: Option<bool>,
    /// Present only to be refused with the reason (Redis Cluster is not supported).
    pub cluster: Option<serde_norway::Value>,
    pub prefix: Option<String>,
}

/// `users.NAME:`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserFile {
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub expires: Option<String>,
}

/// `authenticators.NAME:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticatorSetFile {
    /// Shown to users ("this page needs your YubiKey 5"); defaults to the set's key.
    pub name: Option<String>,
    #[serde(default)]
    pub aaguids: Vec<String>,
    #[serde(default)]
    pub ca_files: Vec<CaFileEntry>,
    pub mds_file: Option<PathBuf>,
    /// The root certificate (PEM) the MDS blob's signing chain must end at.
    pub mds_root: Option<PathBuf>,
}

/// `authenticators.NAME.ca_files[N]`: a PEM path, or `{file, aaguids}` to let
/// that root vouch only for some of the set's AAGUIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFileEntry {
    pub file: PathBuf,
    /// `None`: the root vouches for every AAGUID of the set.
    pub aaguids: Option<Vec<String>>,
}

/// The mapping form of [`CaFileEntry`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaFileMapping {
    file: PathBuf,
    aaguids: Vec<String>,
}

impl<'de> Deserialize<'de> for CaFileEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = CaFileEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a PEM file path, or a mapping {file: PATH, aaguids: [...]}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CaFileEntry, E> {
                Ok(CaFileEntry {
                    file: PathBuf::from(v),
                    aaguids: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<CaFileEntry, A::Error> {
                let m =
                    CaFileMapping::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(CaFileEntry {
                    file: m.file,
                    aaguids: Some(m.aaguids),
                })
            }
        }
        d.deserialize_any(Entry)
    }
}

/// `served:` — the app origins browsers really use, besides the ones stepgate
/// can see for itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServedFile {
    /// Ports a front proxy or a port mapping serves app hosts on.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Names under a `*.suffix` rule that sign-in may return to.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `rate_limit:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    pub per_ip_per_minute: Option<u32>,
    pub per_user_per_minute: Option<u32>,
}

/// `upstreams.NAME:` — a URL (`http://127.0.0.1:3000`, `builtin:whoami`), or
/// the long form with settings.
#[derive(Debug, Clone)]
pub enum UpstreamFile {
    Url(String),
    Detailed(UpstreamDetailFile),
}

/// `upstreams.NAME: { url: …, … }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamDetailFile {
    pub url: String,
    /// The app treats `/Admin` as `/admin`: rules routing to it match paths
    /// without regard to case.
    #[serde(default)]
    pub case_insensitive_paths: bool,
    /// The app's own header names for the identity stepgate vouches for.
    pub identity_headers: Option<IdentityHeadersFile>,
}

/// `upstreams.NAME.identity_headers:` — header names, each optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeadersFile {
    pub user: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Option<String>,
}

impl IdentityHeadersFile {
    /// Each mapped key with its header name, in the order the reference lists them.
    pub fn entries(&self) -> [(&'static str, Option<&str>); 4] {
        [
            ("user", self.user.as_deref()),
            ("email", self.email.as_deref()),
            ("name", self.name.as_deref()),
            ("groups", self.groups.as_deref()),
        ]
    }
}

impl UpstreamFile {
    pub fn url(&self) -> &str {
        match self {
            UpstreamFile::Url(u) => u,
            UpstreamFile::Detailed(d) => &d.url,
        }
    }
}

impl<'de> Deserialize<'de> for UpstreamFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = UpstreamFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a URL or a mapping with url")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UpstreamFile, E> {
                Ok(UpstreamFile::Url(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<UpstreamFile, A::Error> {
                UpstreamDetailFile::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(UpstreamFile::Detailed)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// `rules[N]:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub name: String,
    pub hosts: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub networks: Vec<String>,
    pub allow: Option<Vec<String>>,
    pub upstream: Option<String>,
    pub policy: PolicyFile,
    pub step_up: Option<StepUpFile>,
    pub tokens: Option<TokensFile>,
}

/// `rules[N].tokens:` — the rule accepts passkey-minted client tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    pub from: TokenFromFile,
    /// Pass the header that carried the token on to the app.
    #[serde(default)]
    pub keep: bool,
    /// Requests without a token are judged by their browser session.
    #[serde(default)]
    pub sessions: bool,
}

/// `rules[N].tokens.from`: `basic`, `bearer` or `{ header: NAME }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFromFile {
    Basic,
    Bearer,
    Header(String),
}

/// The mapping form of [`TokenFromFile`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenHeaderFile {
    header: String,
}

impl<'de> Deserialize<'de> for TokenFromFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = TokenFromFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("basic, bearer or a mapping {header: NAME}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TokenFromFile, E> {
                match v {
                    "basic" => Ok(TokenFromFile::Basic),
                    "bearer" => Ok(TokenFromFile::Bearer),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<TokenFromFile, A::Error> {
                TokenHeaderFile::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(|h| TokenFromFile::Header(h.header))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// `rules[N].policy`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyFile {
    Bypass,
    Deny,
    Passkey,
}

/// `rules[N].step_up:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpFile {
    #[serde(default, deserialize_with = "super::duration::optional")]
    pub max_age: Option<Duration>,
    pub scope: Option<ScopeFile>,
    #[serde(default)]
    pub authenticators: Vec<String>,
    #[serde(default)]
    pub device_bound: bool,
}

/// `rules[N].step_up.scope`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeFile {
    Rule,
    Session,
}

/// `log:` — how the gateway writes its log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    pub format: Option<LogFormatFile>,
}

/// `log.format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatFile {
    Text,
    Json,
}

/// The whole file, each section already shape-checked.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    pub listen: Option<String>,
    /// Worker threads of the proxy listener.
    pub threads: Option<u64>,
    pub tls: Option<TlsFile>,
    pub admin_listen: Option<String>,
    pub trusted_proxies: Vec<String>,
    pub portal: Option<PortalFile>,
    pub served: Option<ServedFile>,
    pub secrets: Option<SecretsFile>,
    pub session: Option<SessionFile>,
    pub store: Option<StoreFile>,
    pub users: BTreeMap<String, UserFile>,
    pub authenticators: BTreeMap<String, AuthenticatorSetFile>,
    pub rate_limit: Option<RateLimitFile>,
    pub upstreams: BTreeMap<String, UpstreamFile>,
    /// `None` marks a rule that failed to parse: later rules keep their index.
    pub rules: Vec<Option<RuleFile>>,
    pub log: Option<LogFile>,
    /// Top-level keys that were present but could not be read (already reported).
    pub failed: Vec<String>,
    /// The text had a syntax error: nothing else can be checked.
    pub unreadable: bool,
}

/// The top-level keys the file may hold, in the order the reference documents them.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "threads",
    "tls",
    "admin_listen",
    "trusted_proxies",
    "portal",
    "served",
    "secrets",
    "session",
    "store",
    "users",
    "authenticators",
    "rate_limit",
    "upstreams",
    "rules",
    "log",
];
