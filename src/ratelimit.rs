//! Rate limits on ceremonies, built so that nobody can lock a user out.
//!
//! - **Per client**: every ceremony begin (and an enrollment's finish) counts
//!   against the client's network (an IPv4 address, or an IPv6 /64: one host
//!   usually owns a whole /64), `rate_limit.per_ip_per_minute`. An
//!   assertion's finish does not: its begin was counted and each ceremony
//!   finishes once, so others on the network never refuse it.
//! - **Per user**: only *failed verifications* count — an assertion for one of
//!   the user's passkeys whose signature or UV did not verify — and they count
//!   per user *and* client network, `rate_limit.per_user_per_minute`. A
//!   stranger's failures therefore slow down only the stranger; naming a user
//!   in a begin costs that user nothing.
//! - **Client tokens**: the store is asked first; a token it knows (live or
//!   not) counts nothing and is never refused here, whatever its neighbours
//!   did, so a sync client's many requests are never slowed. Misses
//!   (malformed or unknown tokens) count against the client's network,
//!   `rate_limit.per_ip_per_minute`; past it a miss is answered 429 until the
//!   window ends.
//!
//! Windows are fixed, one minute. Past a limit the caller answers 429 with
//! `Retry-After`. When the store keeps shared counters (Redis), the counts are
//! kept there, atomically and with expiry, so several gateway instances do not
//! multiply the allowance; otherwise they are kept in this process. Either way
//! memory is bounded: keys are hashed (a flood of long or numerous user names
//! costs a fixed size per entry) and the in-process table holds at most
//! [`MAX_KEYS`] entries, the least recently used going first.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use lru::LruCache;

use crate::model::Timestamp;
use crate::request::forwarded::canonical_ip;
use crate::store::{Store, StoreError};

const WINDOW: i64 = 60;
/// The most entries one in-process table holds.
pub const MAX_KEYS: usize = 65_536;

/// Why a hit was not allowed.
#[derive(Debug, thiserror::Error)]
pub enum Limited {
    #[error("rate limited for {0} s")]
    RetryAfter(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One family of fixed-window counters kept in this process.
#[derive(Debug)]
pub struct Limiter {
    hasher: RandomState,
    windows: Mutex<LruCache<u64, (Timestamp, u32)>>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            hasher: RandomState::new(),
            windows: Mutex::new(LruCache::new(
                NonZeroUsize::new(MAX_KEYS).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }
}

impl Limiter {
    /// Add `by` hits (0: only look) to `key`; `Err(retry_after_secs)` when the
    /// count already reached `limit` in this window.
    pub fn hit(&self, key: &str, by: u32, limit: u32, now: Timestamp) -> Result<(), u64> {
        let Ok(mut map) = self.windows.lock() else {
            // A poisoned lock: fail closed.
            return Err(WINDOW as u64);
        };
        let hashed = self.hasher.hash_one(key);
        let entry = map.get_or_insert_mut(hashed, || (now, 0));
        if now - entry.0 >= WINDOW || now < entry.0 {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            return Err((WINDOW - (now - entry.0)).max(1) as u64);
        }
        entry.1 = entry.1.saturating_add(by);
        Ok(())
    }

    /// How many windows are held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.windows.lock().map_or(0, |m| m.len())
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The portal's limiters.
#[derive(Debug, Default)]
pub struct RateLimits {
    clients: Limiter,
    failures: Limiter,
    tokens: Limiter,
}

/// The network a client address stands for: IPv4 as is, IPv6 by its /64.
pub fn client_net(ip: IpAddr) -> String {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

impl RateLimits {
    /// Count one ceremony request from `ip`'s network.
    pub async fn client(
        &self,
        store: &dyn Store,
        ip: IpAddr,
        limit: u32,
        now: Timestamp,
    ) -> Result<(), Limited> {
        let key = format!("client\0{}", client_net(ip));
        count(&self.clients, store, &key, 1, limit, now).await
    }

    /// Refuse when `user` already had `limit` failed verifications from `ip`'s
    /// network in this window (counts nothing).
    pub async fn failures_allowed(
        &self,
        store: &dyn Store,
        user: &str,
        ip: IpAddr,
        limit: u32,
        now: Timestamp,
    ) -> Result<(), Limited> {
        count(&self.failures, store, &failure_key(user, ip), 0, limit, now).await
    }

    /// Count one failed verification for `user` from `ip`'s network.
    pub async fn count_failure(
        &self,
        store: &dyn Store,
        user: &str,
        ip: IpAddr,
        now: Timestamp,
    ) -> Result<(), Limited> {
        count(
            &self.failures,
            store,
            &failure_key(user, ip),
            1,
            u32::MAX,
            now,
        )
        .await
    }
}

impl RateLimits {
    /// Count one failed token check (a miss) from `ip`'s network; refused
    /// when the network already had `limit` misses in this window. Tokens the
    /// store knows never come here, so misses never refuse them.
    pub async fn count_token_miss(
        &self,
        store: &dyn Store,
        ip: IpAddr,
        limit: u32,
        now: Timestamp,
    ) -> Result<(), Limited> {
        count(&self.tokens, store, &token_key(ip), 1, limit, now).await
    }
}

fn token_key(ip: IpAddr) -> String {
    format!("tokens\0{}", client_net(ip))
}

fn failure_key(user: &str, ip: IpAddr) -> String {
    format!("failures\0{user}\0{}", client_net(ip))
}

/// Count in the store when it keeps shared counters, else in `local`.
async fn count(
    local: &Limiter,
    store: &dyn Store,
    key: &str,
    by: u32,
    limit: u32,
    now: Timestamp,
) -> Result<(), Limited> {
    let hashed = crate::model::token_hash(key);
    match store
        .count_shared(&hashed, by, Duration::from_secs(WINDOW as u64))
        .await?
    {
        Some(shared) => {
            let before = shared.count.saturating_sub(u64::from(by));
            if before >= u64::from(limit) {
                Err(Limited::RetryAfter(shared.resets_in.as_secs().max(1)))
            } else {
                Ok(())
            }
        }
        None => local.hit(key, by, limit, now).map_err(Limited::RetryAfter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_within_a_window_then_resets() {
        let l = Limiter::default();
        for _ in 0..3 {
            assert!(l.hit("a", 1, 3, 100).is_ok());
        }
        assert_eq!(l.hit("a", 1, 3, 110), Err(50));
        assert_eq!(l.hit("a", 0, 3, 110), Err(50), "looking is refused too");
        assert!(l.hit("b", 1, 3, 110).is_ok());
        assert!(l.hit("a", 1, 3, 160).is_ok());
        assert!(l.hit("c", 0, 1, 160).is_ok(), "looking counts nothing");
        assert!(l.hit("c", 0, 1, 160).is_ok());
    }

    #[test]
    fn ipv6_clients_count_by_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_net(a), client_net(b));
        assert_ne!(client_net(a), client_net(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(client_net(mapped), "192.0.2.1");
    }

    /// Resident memory of this process, from /proc (Linux).
    fn rss_bytes() -> Option<u64> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * 4096)
    }

    /// Run by [`a_flood_of_a_million_user_names_stays_bounded`] in a process
    /// of its own (other tests would share this one's memory): floods a
    /// limiter with a million long, distinct keys and prints how much the
    /// process grew.
    #[test]
    #[ignore = "run in its own process by a_flood_of_a_million_user_names_stays_bounded"]
    fn flood_in_a_process_of_its_own() {
        let l = Limiter::default();
        let before = rss_bytes().unwrap_or(0);
        for i in 0..1_000_000u32 {
            let name = format!("failures\0user-{i}-{}\0192.0.2.1", "x".repeat(200));
            let _ = l.hit(&name, 1, 30, 100);
        }
        let grown = rss_bytes().unwrap_or(0).saturating_sub(before);
        println!("FLOOD entries={} grown={grown}", l.len());
    }

    #[test]
    fn a_flood_of_a_million_user_names_stays_bounded() {
        let Ok(exe) = std::env::current_exe() else {
            panic!("no test binary path");
        };
        // The test's own path, taken from the module so a move cannot
        // silently turn this into a run of zero tests.
        let name = format!(
            "{}::flood_in_a_process_of_its_own",
            module_path!().trim_start_matches("stepgate::")
        );
        let out = std::process::Command::new(exe)
            .args(["--exact", name.as_str(), "--ignored", "--nocapture"])
            .output();
        let text = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let line = text
            .lines()
            .find(|l| l.starts_with("FLOOD "))
            .unwrap_or_else(|| panic!("the flood did not run: {text}"));
        let field = |name: &str| -> u64 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(u64::MAX)
        };
        assert_eq!(field("entries="), MAX_KEYS as u64, "{line}");
        assert!(
            field("grown=") < 64 << 20,
            "a million names grew the process by more than 64 MiB: {line}"
        );
    }
}
