//! A short-lived, in-process cache of app session lookups.
//!
//! Every request to a `passkey` rule resolves its app cookie; without a cache
//! that is one store round trip per request (a blocking-pool hop and a SQLite
//! read, or a Redis command), which the benchmark showed to cost about half of
//! the inline proxy's throughput. A browser sends its requests in bursts (a
//! page and its assets), so the same session is looked up many times a second.
//!
//! What is cached is the store's answer for one token hash (the session, its
//! portal session and grants), for at most [`TTL`]. Everything else is still
//! checked on every request: the cookie's signature, the host binding, idle
//! and absolute lifetimes against the current time, the user in the current
//! config, and the policy. So a revocation made elsewhere (the CLI, another
//! instance) takes effect within [`TTL`], well inside the promised second;
//! anything this process's portal does that may end a session clears the
//! cache at once (see `portal::handle`), as does a config reload. Only found
//! sessions are cached (a forged cookie never gets this far: its signature
//! fails first).
//!
//! A clear cannot be undone by a lookup that was already under way: every
//! clear starts a new *generation*, a lookup notes the generation before it
//! asks the store, and its answer is kept only if no clear happened meanwhile.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::AppView;

/// How long a looked-up session is reused.
pub const TTL: Duration = Duration::from_millis(500);

/// At most this many sessions are kept; a full cache drops what has expired,
/// and everything if that is not enough.
pub const MAX_ENTRIES: usize = 10_000;

/// The cache (one per gateway).
#[derive(Debug, Default)]
pub struct SessionCache {
    /// Shared views: a hit hands out a reference count, not a deep copy.
    entries: Mutex<HashMap<String, (Instant, Arc<AppView>)>>,
    /// Bumped (under the entries lock) by every clear.
    generation: AtomicU64,
}

impl SessionCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached view for `token_hash`, if it was stored less than [`TTL`] ago.
    pub fn get(&self, token_hash: &str) -> Option<Arc<AppView>> {
        let entries = self.entries.lock().ok()?;
        let (at, view) = entries.get(token_hash)?;
        (at.elapsed() < TTL).then(|| Arc::clone(view))
    }

    /// The current generation: note it before asking the store, hand it to [`put`](Self::put).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Remember `view`, read from the store after [`generation`](Self::generation)
    /// returned `generation`, for `token_hash` — unless the cache was cleared since.
    pub fn put(&self, token_hash: String, view: Arc<AppView>, generation: u64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(token_hash, (Instant::now(), view));
    }

    /// Replace the view cached for `token_hash` with `view` (the same session
    /// with its idle clocks moved on), keeping the time it was read from the
    /// store: it still expires [`TTL`] after that read. Nothing happens when
    /// there is no entry or the cache was cleared after `generation`.
    pub fn refresh(&self, token_hash: &str, view: Arc<AppView>, generation: u64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if let Some(entry) = entries.get_mut(token_hash) {
            entry.1 = view;
        }
    }

    /// Forget `token_hash` (its record was just written).
    pub fn remove(&self, token_hash: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(token_hash);
        }
    }

    /// Forget everything (after a write that may end sessions).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AppSession, PortalSession};

    fn view() -> AppView {
        AppView {
            app: AppSession {
                id: "a".into(),
                portal_id: "p".into(),
                user: "alice".into(),
                host: "app.lab".into(),
                created_at: 0,
                last_seen_at: 0,
                expires_at: 10,
            },
            portal: PortalSession {
                id: "p".into(),
                user: "alice".into(),
                created_at: 0,
                last_seen_at: 0,
                expires_at: 10,
                last_uv: None,
                signed_in_with: None,
                client: None,
            },
            grants: vec![],
            credentials: vec![],
        }
    }

    #[test]
    fn entries_live_for_the_ttl_and_can_be_dropped() {
        let c = SessionCache::new();
        assert_eq!(c.get("h"), None);
        c.put("h".into(), Arc::new(view()), c.generation());
        assert_eq!(c.get("h").as_deref(), Some(&view()));
        c.remove("h");
        assert_eq!(c.get("h"), None);
        c.put("h".into(), Arc::new(view()), c.generation());
        c.clear();
        assert_eq!(c.get("h"), None);
        c.put("h".into(), Arc::new(view()), c.generation());
        std::thread::sleep(TTL + Duration::from_millis(20));
        assert_eq!(c.get("h"), None, "an entry older than the TTL is not used");
    }

    #[test]
    fn a_read_that_began_before_a_clear_is_not_kept() {
        let c = SessionCache::new();
        let before = c.generation();
        // ... the store is asked; meanwhile a sign-out clears the cache ...
        c.clear();
        c.put("h".into(), Arc::new(view()), before);
        assert_eq!(c.get("h"), None, "the old answer must not come back");
        c.put("h".into(), Arc::new(view()), c.generation());
        assert_eq!(c.get("h").as_deref(), Some(&view()));
    }

    #[test]
    fn a_refresh_keeps_the_read_time_and_respects_clears() {
        let c = SessionCache::new();
        let mut newer = view();
        newer.app.last_seen_at = 5;
        // No entry: nothing to refresh.
        c.refresh("h", Arc::new(newer.clone()), c.generation());
        assert_eq!(c.get("h"), None);
        c.put("h".into(), Arc::new(view()), c.generation());
        let read_at = c.entries.lock().map(|e| e["h"].0).ok();
        c.refresh("h", Arc::new(newer.clone()), c.generation());
        assert_eq!(c.get("h").as_deref(), Some(&newer));
        assert_eq!(c.entries.lock().map(|e| e["h"].0).ok(), read_at);
        // A refresh from before a clear does not bring anything back.
        let before = c.generation();
        c.clear();
        c.put("h".into(), Arc::new(view()), c.generation());
        c.refresh("h", Arc::new(newer), before);
        assert_eq!(c.get("h").as_deref(), Some(&view()));
    }

    #[test]
    fn a_full_cache_makes_room() {
        let c = SessionCache::new();
        for i in 0..MAX_ENTRIES + 5 {
            c.put(format!("h{i}"), Arc::new(view()), c.generation());
        }
        assert!(c.entries.lock().map(|e| e.len()).unwrap_or(0) <= MAX_ENTRIES);
        assert!(c.get(&format!("h{}", MAX_ENTRIES + 4)).is_some());
    }
}
