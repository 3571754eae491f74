//! Upstream addresses, resolved when a config is loaded or reloaded rather
//! than on every request.
//!
//! An upstream written as `ip:port` is parsed once and never looked up again.
//! One written as `name:port` is resolved at load and reload, and again when
//! its answer is older than [`NAME_TTL`]; the request that finds it stale
//! resolves it anew (the others keep using the answer until then). A name
//! that does not resolve is not remembered: each request asks again and is
//! answered 502 until it does, as before the table existed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::config::{Runtime, Upstream};

/// How long a resolved name is used before it is looked up again.
pub const NAME_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: SocketAddr,
    /// `None` for an `ip:port` address (valid for ever).
    resolved_at: Option<Instant>,
}

impl Entry {
    fn fresh(&self) -> bool {
        self.resolved_at.is_none_or(|at| at.elapsed() < NAME_TTL)
    }
}

/// The resolved address of every upstream, keyed by the address as written.
#[derive(Debug, Default)]
pub struct PeerTable {
    entries: RwLock<HashMap<String, Entry>>,
}

impl PeerTable {
    /// A table with every upstream of `rt` resolved (blocking, for names).
    pub fn for_config(rt: &Runtime) -> Self {
        let table = PeerTable::default();
        table.load(rt);
        table
    }

    /// Resolve every upstream of a newly loaded `rt` (blocking, for names)
    /// and forget the addresses no upstream uses any more.
    pub fn load(&self, rt: &Runtime) {
        let mut fresh = HashMap::new();
        for u in rt.upstreams.values() {
            if let Upstream::Http { address, .. } = u
                && let Some(entry) = resolve_blocking(address)
            {
                fresh.insert(address.clone(), entry);
            }
        }
        if let Ok(mut entries) = self.entries.write() {
            *entries = fresh;
        }
    }

    /// The address to connect to for `address` (`host:port`): from the table
    /// while fresh, otherwise resolved now (and remembered).
    pub async fn get(&self, address: &str) -> Option<SocketAddr> {
        let known = self
            .entries
            .read()
            .ok()
            .and_then(|e| e.get(address).copied());
        if let Some(entry) = known.filter(Entry::fresh) {
            return Some(entry.addr);
        }
        let entry = match address.parse::<SocketAddr>() {
            Ok(addr) => Entry {
                addr,
                resolved_at: None,
            },
            Err(_) => Entry {
                addr: tokio::net::lookup_host(address).await.ok()?.next()?,
                resolved_at: Some(Instant::now()),
            },
        };
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(address.to_string(), entry);
        }
        Some(entry.addr)
    }
}

fn resolve_blocking(address: &str) -> Option<Entry> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Some(Entry {
            addr,
            resolved_at: None,
        });
    }
    use std::net::ToSocketAddrs;
    let addr = address.to_socket_addrs().ok()?.next()?;
    Some(Entry {
        addr,
        resolved_at: Some(Instant::now()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_are_parsed_and_names_resolved_and_remembered() {
        let t = PeerTable::default();
        assert_eq!(
            t.get("127.0.0.1:3000").await,
            Some(SocketAddr::from(([127, 0, 0, 1], 3000)))
        );
        let local = t.get("localhost:3001").await.expect("localhost resolves");
        assert_eq!(local.port(), 3001);
        assert!(local.ip().is_loopback());
        let e = t.entries.read().expect("lock");
        assert!(e["127.0.0.1:3000"].resolved_at.is_none());
        assert!(e["localhost:3001"].fresh());
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_not_remembered() {
        let t = PeerTable::default();
        assert_eq!(t.get("no-such-host.invalid:80").await, None);
        assert!(t.entries.read().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_stale_name_is_resolved_again() {
        let t = PeerTable::default();
        let old = Instant::now().checked_sub(NAME_TTL + Duration::from_secs(1));
        let Some(old) = old else { return };
        t.entries.write().expect("lock").insert(
            "localhost:3002".into(),
            Entry {
                addr: SocketAddr::from(([192, 0, 2, 1], 3002)),
                resolved_at: Some(old),
            },
        );
        let addr = t.get("localhost:3002").await.expect("resolves");
        assert!(addr.ip().is_loopback(), "the stale answer was used: {addr}");
    }
}
