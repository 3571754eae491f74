//! The Redis backend: several gateway instances share one Redis.
//!
//! Every key lives under the configured prefix `P`:
//!
//! | key | type | what |
//! |---|---|---|
//! | `P cred:ID` | hash | a credential: `data` (JSON) + mutable `counter`, `bs`, `last_used`, `label`, `flagged`, `user`, and `standing` (JSON: expiry, backup eligibility, attestation proof) |
//! | `P creds`, `P creds:user:U` | set | credential ids |
//! | `P invite:HASH` | string | an invite (JSON), TTL to its expiry, taken with GETDEL |
//! | `P once:KEY` | string | a single-read item, TTL, taken with GETDEL |
//! | `P ptok:HASH` → id | string | portal cookie token → session id |
//! | `P portal:ID` | hash | `data` (JSON) + `seen`, `uv`, `tok`, `user`, `exp` |
//! | `P portals`, `P portals:user:U` | set | portal session ids (stale ids pruned on listing) |
//! | `P atok:HASH` → id | string | app cookie token → app session id |
//! | `P app:ID` | hash | `data` (JSON) + `seen`, `grants` (JSON), `tok`, `portal` |
//! | `P apps:PORTAL` | set | the app sessions of a portal session |
//! | `P credsess:CRED` | set | portal sessions whose ceremonies used the credential |
//!
//! Client tokens have keys of their own, described in [`tokens`]. The trait
//! methods live one file per aggregate: [`credentials`], [`sessions`],
//! [`tokens`] and [`ephemeral`].
//!
//! Sessions expire natively at their absolute `expires_at` (EXPIREAT). Every
//! multi-key change is one Lua script, so it is atomic. The scripts are files
//! under `lua/`, each run with the shared `lua/prelude.lua` in front (the key
//! prefix is ARGV[1]; the helpers that end a portal session, keep the
//! credential → session index and end tokens live there, once). The per-request app
//! session lookup is one script too: it returns the app session, its portal
//! session, its grants and the standing of every credential those name. Every
//! call is bounded by [`OP_TIMEOUT`]; any Redis error or timeout is
//! [`StoreError::Unavailable`]. [`link`] owns the connection: one URL
//! (reconnecting by itself once Redis is back), or the primary that Redis
//! Sentinel names (found again after a failover).

mod credentials;
mod ephemeral;
mod sessions;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::codec::{corrupt, from_json, unavailable};
use super::{StoreError, order};
use crate::clock::{Clock, SystemClock};
use crate::config::RedisTarget;
use crate::model::{
    AppSession, AttestationProof, Credential, CredentialStanding, PortalSession, Timestamp,
};

/// The most any store call may take before it reports `Unavailable`.
pub const OP_TIMEOUT: Duration = Duration::from_millis(900);

mod link;
use link::{Conn, Link};

/// A script of `lua/`: the shared `lua/prelude.lua` (the key prefix from
/// ARGV[1], the session, index and token helpers) followed by the file.
macro_rules! lua {
    ($file:literal) => {
        Script::new(concat!(
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/store/redis/lua/prelude.lua"
            )),
            "\n",
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/store/redis/lua/",
                $file
            ))
        ))
    };
}
pub(crate) use lua;

/// All scripts, compiled once (their SHA-1s are computed here; Redis loads them on demand).
struct Scripts {
    add_portal: Script,
    portal_by_token: Script,
    rotate_portal: Script,
    touch: Script,
    add_app: Script,
    app_view: Script,
    remove_app: Script,
    list_portals: Script,
    list_apps: Script,
    revoke_session: Script,
    revoke_user: Script,
    add_cred: Script,
    list_creds: Script,
    set_counter_if: Script,
    flag_credential: Script,
    rename_cred: Script,
    revoke_cred: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            add_portal: lua!("add_portal.lua"),
            portal_by_token: lua!("portal_by_token.lua"),
            rotate_portal: lua!("rotate_portal.lua"),
            touch: lua!("touch.lua"),
            add_app: lua!("add_app.lua"),
            app_view: lua!("app_view.lua"),
            remove_app: lua!("remove_app.lua"),
            list_portals: lua!("list_portals.lua"),
            list_apps: lua!("list_apps.lua"),
            revoke_session: lua!("revoke_session.lua"),
            revoke_user: lua!("revoke_user.lua"),
            add_cred: lua!("add_cred.lua"),
            list_creds: lua!("list_creds.lua"),
            set_counter_if: lua!("set_counter_if.lua"),
            flag_credential: lua!("flag_credential.lua"),
            rename_cred: lua!("rename_cred.lua"),
            revoke_cred: lua!("revoke_cred.lua"),
        }
    }
}

/// The Redis store; share it behind an `Arc`.
///
/// It owns a one-thread tokio runtime on which the connection lives and every
/// call runs, so it works from any caller runtime (pingora's, a test's, the
/// CLI's) and keeps working when the runtime that first used it goes away.
pub struct RedisStore {
    link: Arc<Link>,
    prefix: String,
    scripts: Scripts,
    runtime: Option<tokio::runtime::Runtime>,
    /// Every wall-clock read of ours goes through it (Redis expires keys by its own).
    clock: Arc<dyn Clock>,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // Never blocks, so dropping the store inside async code is fine.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        unavailable(e)
    }
}

fn num<T: std::str::FromStr>(s: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| corrupt(format!("not a number: {s:?}")))
}

/// A portal session from its stored `data`, `seen` and `uv` fields.
fn portal_from(data: &str, seen: &str, uv: &str) -> Result<PortalSession, StoreError> {
    let mut p: PortalSession = from_json(data)?;
    p.last_seen_at = num(seen)?;
    p.last_uv = if uv.is_empty() {
        None
    } else {
        Some(from_json(uv)?)
    };
    Ok(p)
}

fn app_from(data: &str, seen: &str) -> Result<AppSession, StoreError> {
    let mut a: AppSession = from_json(data)?;
    a.last_seen_at = num(seen)?;
    Ok(a)
}

/// A credential from `data`, `counter`, `bs`, `last_used`, `label`, `flagged`.
fn credential_from(f: &[String]) -> Result<Credential, StoreError> {
    let [data, counter, bs, last_used, label, flagged] = f else {
        return Err(corrupt("credential: wrong number of fields"));
    };
    let mut c: Credential = from_json(data)?;
    c.counter = num(counter)?;
    c.backup_state = bs == "1";
    c.last_used_at = if last_used.is_empty() {
        None
    } else {
        Some(num(last_used)?)
    };
    c.label = label.clone();
    c.flagged = flagged == "1";
    Ok(c)
}

/// The `standing` field of a credential hash (also readable from a credential's `data`).
#[derive(serde::Serialize, serde::Deserialize)]
struct StandingRecord {
    expires_at: Option<Timestamp>,
    backup_eligible: bool,
    #[serde(default)]
    attestation: Option<AttestationProof>,
}

/// The credential standings that follow the six session fields of an app view.
fn standings_from(rest: &[String]) -> Result<Vec<CredentialStanding>, StoreError> {
    rest.chunks(3)
        .map(|r| match r {
            [id, flagged, json] => {
                let s: StandingRecord = from_json(json)?;
                Ok(CredentialStanding {
                    id: id.clone(),
                    flagged: flagged == "1",
                    expires_at: s.expires_at,
                    backup_eligible: s.backup_eligible,
                    attestation: s.attestation,
                })
            }
            _ => Err(corrupt("app session: a credential standing is cut short")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|mut v| {
            order::standings(&mut v);
            v
        })
}

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

impl RedisStore {
    /// A store for `url` with every key under `prefix`. Connects lazily: a Redis
    /// that is down now makes calls fail with `Unavailable`, not this.
    pub fn open(url: &str, prefix: &str) -> Result<Self, StoreError> {
        Self::connect(&RedisTarget::Url(url.to_string()), prefix)
    }

    /// A store on `target` (one URL, or the primary Sentinel names) with every key
    /// under `prefix`. Connects lazily, like [`RedisStore::open`].
    pub fn connect(target: &RedisTarget, prefix: &str) -> Result<Self, StoreError> {
        Self::connect_with(target, prefix, Arc::new(SystemClock))
    }

    /// [`RedisStore::connect`], reading the time from `clock`.
    pub fn connect_with(
        target: &RedisTarget,
        prefix: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let link = Arc::new(Link::new(target)?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("stepgate-redis")
            .enable_all()
            .build()
            .map_err(|e| unavailable(format!("cannot start the redis runtime: {e}")))?;
        link.watch(&runtime);
        Ok(RedisStore {
            link,
            prefix: prefix.to_string(),
            scripts: Scripts::new(),
            runtime: Some(runtime),
            clock,
        })
    }

    /// Run one operation against Redis on the store's runtime, bounded by
    /// [`OP_TIMEOUT`]. A failed or late call makes the link drop its connection.
    async fn with<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Conn) -> Fut + Send + 'static,
        Fut: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        let link = Arc::clone(&self.link);
        let task = async move {
            let op = async {
                let (conn, ticket) = link.conn().await?;
                f(conn).await.map_err(|e| {
                    link.failed(Some(ticket));
                    unavailable(e)
                })
            };
            match tokio::time::timeout(OP_TIMEOUT, op).await {
                Ok(r) => r,
                Err(_) => {
                    link.failed(None);
                    Err(unavailable("redis did not answer in time"))
                }
            }
        };
        let Some(rt) = &self.runtime else {
            return Err(unavailable("the redis store is closed"));
        };
        rt.spawn(task).await.map_err(unavailable)?
    }

    /// Invoke a script with the prefix as ARGV[1] followed by `args`.
    async fn eval<T: redis::FromRedisValue + Send + 'static>(
        &self,
        script: &Script,
        args: &[&str],
    ) -> Result<T, StoreError> {
        let script = script.clone();
        let mut argv: Vec<String> = Vec::with_capacity(args.len() + 1);
        argv.push(self.prefix.clone());
        argv.extend(args.iter().map(|a| a.to_string()));
        self.with(move |mut c| async move {
            let mut inv = script.prepare_invoke();
            for a in &argv {
                inv.arg(a);
            }
            inv.invoke_async(&mut c).await
        })
        .await
    }

    /// [`Self::eval`] for a write that must survive a failover: in the Sentinel
    /// form, when `durable(&reply)`, wait on the same connection until a replica
    /// has it (`WAIT 1`, at most [`link::CONFIRM_TIMEOUT`]). If none confirms, the
    /// write stands on the primary but the caller gets `Unavailable` and may retry
    /// (revocations and flags are idempotent): it is not yet safe from a failover.
    async fn eval_durable<T: redis::FromRedisValue + Send + 'static>(
        &self,
        script: &Script,
        args: &[&str],
        durable: fn(&T) -> bool,
    ) -> Result<T, StoreError> {
        let script = script.clone();
        let mut argv: Vec<String> = Vec::with_capacity(args.len() + 1);
        argv.push(self.prefix.clone());
        argv.extend(args.iter().map(|a| a.to_string()));
        let (reply, confirmed) = self
            .with(move |mut c| async move {
                let mut inv = script.prepare_invoke();
                for a in &argv {
                    inv.arg(a);
                }
                let reply: T = inv.invoke_async(&mut c).await?;
                let confirmed = !durable(&reply) || link::confirm(&mut c).await?;
                Ok((reply, confirmed))
            })
            .await?;
        if confirmed {
            Ok(reply)
        } else {
            Err(unavailable(
                "written on the Redis primary, but no replica confirmed it in time: it could be lost in a failover; retry",
            ))
        }
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }
}

/// Turn a script's flat reply into rows of `width` strings.
fn rows(v: Vec<String>, width: usize) -> Vec<Vec<String>> {
    v.chunks(width).map(<[String]>::to_vec).collect()
}
