//! How the Redis store reaches its server: one URL, or the primary that Redis
//! Sentinel names.
//!
//! - **URL**: one [`ConnectionManager`], made on first use, that reconnects by itself.
//! - **Sentinel**: one multiplexed connection to the primary the sentinels name
//!   (the redis crate asks them with `SENTINEL MASTERS` and checks the node's
//!   `ROLE` before it is used). Any error or timeout on it drops it, so the next
//!   call asks the sentinels again; while they still name a dead primary, or none,
//!   calls fail with `Unavailable` (503), never with a stale answer. A watcher
//!   also asks the sentinels every [`PRIMARY_CHECK`] and drops a connection to a
//!   node they no longer name, so a demoted or cut-off old primary is left even
//!   when it still answers. Writes that must survive a failover (revocations,
//!   a flagged passkey) are [`confirm`]ed by a connected replica.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, RedisFuture, TlsMode, Value};
use tokio::sync::OnceCell;

use super::{OP_TIMEOUT, unavailable};
use crate::config::{RedisTarget, SentinelSettings};
use crate::store::StoreError;

/// How long opening a TCP connection to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// How often the sentinels are asked whether the connected primary is still theirs.
pub const PRIMARY_CHECK: Duration = Duration::from_secs(1);

/// After the sentinels named no usable primary, calls fail at once for this long
/// instead of asking them again (a failover under load asks them a few times a
/// second, not once a request).
const ASK_AGAIN_AFTER: Duration = Duration::from_millis(100);

/// How long a write that must survive a failover waits for a replica to confirm it.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_millis(500);

/// After a write on `conn`: has a replica that could be promoted got it?
/// Always yes for the URL form, whose topology stepgate does not know. In the
/// Sentinel form: `ROLE` names the replicas connected now; with none there is
/// nothing a failover could promote over this write, else `WAIT 1` on the same
/// connection (so it covers that write) must see one acknowledge it. A node that
/// is no longer primary confirms nothing.
pub async fn confirm(conn: &mut Conn) -> redis::RedisResult<bool> {
    let Conn::Primary(c) = conn else {
        return Ok(true);
    };
    match redis::cmd("ROLE").query_async(c).await? {
        redis::Role::Primary { replicas, .. } if replicas.is_empty() => Ok(true),
        redis::Role::Primary { .. } => {
            let acked: i64 = redis::cmd("WAIT")
                .arg(1)
                .arg(CONFIRM_TIMEOUT.as_millis() as u64)
                .query_async(c)
                .await?;
            Ok(acked >= 1)
        }
        _ => Ok(false),
    }
}

/// A connection to use for one call.
#[derive(Clone)]
pub enum Conn {
    Direct(ConnectionManager),
    Primary(MultiplexedConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Direct(c) => c.req_packed_command(cmd),
            Conn::Primary(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Primary(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Direct(c) => c.get_db(),
            Conn::Primary(c) => c.get_db(),
        }
    }
}

/// Which connection a call used, so a failure drops that one and not a newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// The store's way to its server; share it behind an `Arc`.
#[allow(clippy::large_enum_variant)] // one per store, never moved after it is made
pub enum Link {
    Direct {
        client: Client,
        manager: OnceCell<ConnectionManager>,
    },
    Sentinel(SentinelLink),
}

impl Link {
    /// A link for `target`; nothing is connected yet.
    pub fn new(target: &RedisTarget) -> Result<Link, StoreError> {
        match target {
            RedisTarget::Url(url) => Ok(Link::Direct {
                client: Client::open(url.as_str())
                    .map_err(|e| unavailable(format!("bad redis url: {e}")))?,
                manager: OnceCell::new(),
            }),
            RedisTarget::Sentinel(s) => Ok(Link::Sentinel(SentinelLink::new(s)?)),
        }
    }

    /// The connection for the next call (made, or asked of the sentinels, when there is none).
    pub async fn conn(&self) -> Result<(Conn, Ticket), StoreError> {
        match self {
            Link::Direct { client, manager } => {
                let m = manager
                    .get_or_try_init(|| async {
                        let config = ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(CONNECT_TIMEOUT))
                            .set_response_timeout(Some(OP_TIMEOUT))
                            .set_number_of_retries(2)
                            .set_min_delay(Duration::from_millis(50))
                            .set_max_delay(Duration::from_millis(200));
                        Ok::<_, StoreError>(ConnectionManager::new_lazy_with_config(
                            client.clone(),
                            config,
                        )?)
                    })
                    .await?;
                Ok((Conn::Direct(m.clone()), Ticket(0)))
            }
            Link::Sentinel(s) => s.conn().await,
        }
    }

    /// A call on `ticket`'s connection failed or timed out: stop using that connection.
    /// (The URL form's manager reconnects by itself.)
    pub fn failed(&self, ticket: Option<Ticket>) {
        if let Link::Sentinel(s) = self {
            s.forget(ticket);
        }
    }

    /// Start the background check of the primary (Sentinel form only) on `rt`;
    /// it ends when the link is dropped.
    pub fn watch(self: &Arc<Self>, rt: &tokio::runtime::Runtime) {
        if matches!(**self, Link::Sentinel(_)) {
            rt.spawn(watch_primary(Arc::downgrade(self)));
        }
    }
}

/// The primary in use and the connection to it.
struct Primary {
    conn: MultiplexedConnection,
    /// `host:port` as the sentinels named it.
    addr: String,
    ticket: Ticket,
}

/// The Sentinel form's state.
pub struct SentinelLink {
    /// Asking the sentinels is one at a time; it keeps their connections.
    client: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<Primary>>,
    next_ticket: AtomicU64,
    /// When asking the sentinels last failed, and why.
    last_failure: Mutex<Option<(std::time::Instant, String)>>,
    config: AsyncConnectionConfig,
}

impl SentinelLink {
    fn new(s: &SentinelSettings) -> Result<SentinelLink, StoreError> {
        Ok(SentinelLink {
            client: tokio::sync::Mutex::new(sentinel_client(s)?),
            current: Mutex::new(None),
            next_ticket: AtomicU64::new(1),
            last_failure: Mutex::new(None),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(OP_TIMEOUT)),
        })
    }

    fn current(&self) -> Option<(Conn, Ticket)> {
        let cur = self.current.lock().ok()?;
        cur.as_ref()
            .map(|p| (Conn::Primary(p.conn.clone()), p.ticket))
    }

    async fn conn(&self) -> Result<(Conn, Ticket), StoreError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let mut client = self.client.lock().await;
        // Another call may have found the primary while this one waited.
        if let Some(c) = self.current() {
            return Ok(c);
        }
        if let Ok(last) = self.last_failure.lock()
            && let Some((at, why)) = last.as_ref()
            && at.elapsed() < ASK_AGAIN_AFTER
        {
            return Err(unavailable(why));
        }
        let found = async {
            let primary = client
                .async_get_client()
                .await
                .map_err(|e| format!("no primary from the sentinels: {e}"))?;
            let addr = primary.get_connection_info().addr().to_string();
            let conn = primary
                .get_multiplexed_async_connection_with_config(&self.config)
                .await
                .map_err(|e| format!("primary {addr}: {e}"))?;
            Ok::<_, String>((conn, addr))
        };
        let (conn, addr) = match found.await {
            Ok(found) => found,
            Err(why) => {
                if let Ok(mut last) = self.last_failure.lock() {
                    *last = Some((std::time::Instant::now(), why.clone()));
                }
                return Err(unavailable(why));
            }
        };
        let ticket = self.new_ticket();
        tracing::info!(primary = %addr, "redis: connected to the primary the sentinels name");
        if let Ok(mut cur) = self.current.lock() {
            *cur = Some(Primary {
                conn: conn.clone(),
                addr,
                ticket,
            });
        }
        Ok((Conn::Primary(conn), ticket))
    }

    fn new_ticket(&self) -> Ticket {
        Ticket(self.next_ticket.fetch_add(1, Ordering::Relaxed))
    }

    /// Drop the connection `ticket` names (any connection when `None`).
    fn forget(&self, ticket: Option<Ticket>) {
        if let Ok(mut cur) = self.current.lock()
            && let Some(p) = cur.as_ref()
            && ticket.is_none_or(|t| t == p.ticket)
        {
            tracing::warn!(primary = %p.addr, "redis: primary connection failed; asking the sentinels again");
            *cur = None;
        }
    }

    /// Ask the sentinels once; drop the connection if they name another primary now.
    async fn check(&self) {
        let Some((connected, ticket)) = self
            .current
            .lock()
            .ok()
            .and_then(|c| c.as_ref().map(|p| (p.addr.clone(), p.ticket)))
        else {
            return;
        };
        let named = {
            let mut client = self.client.lock().await;
            tokio::time::timeout(OP_TIMEOUT, client.async_get_client()).await
        };
        // Sentinels that do not answer say nothing about the primary: keep it.
        if let Ok(Ok(c)) = named {
            let now = c.get_connection_info().addr().to_string();
            if now != connected {
                tracing::warn!(old = %connected, new = %now, "redis: the sentinels name another primary");
                self.forget(Some(ticket));
            }
        }
    }
}

async fn watch_primary(link: std::sync::Weak<Link>) {
    let mut every = tokio::time::interval(PRIMARY_CHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(link) = link.upgrade() else { return };
        if let Link::Sentinel(s) = &*link {
            s.check().await;
        }
    }
}

/// The redis crate's Sentinel client for these settings.
fn sentinel_client(s: &SentinelSettings) -> redis::RedisResult<SentinelClient> {
    let nodes = s.sentinels.iter().map(|(host, port)| {
        if s.tls {
            ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.clone(), *port)
        }
    });
    let mut b = SentinelClientBuilder::new(nodes, &s.master_name, SentinelServerType::Master)?
        .set_client_to_redis_db(s.db);
    if s.tls {
        b = b
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(TlsMode::Secure);
    }
    if let Some(u) = &s.redis_auth.username {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(p) = &s.redis_auth.password {
        b = b.set_client_to_redis_password(&p.0);
    }
    if let Some(u) = &s.sentinel_auth.username {
        b = b.set_client_to_sentinel_username(u);
    }
    if let Some(p) = &s.sentinel_auth.password {
        b = b.set_client_to_sentinel_password(&p.0);
    }
    b.build()
}
