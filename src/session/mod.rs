//! Sessions: how long they live, how a request's cookie becomes one, the
//! cookie codec, and the short in-process cache of lookups.
//!
//! A *portal session* is made by a ceremony at the portal; an *app session* is
//! minted on one app host from a portal session and dies with it. A *grant*
//! records that a UV assertion was made for a rule of an app session. Grants
//! and a portal session's last assertion name the credential they rest on;
//! the store returns that credential's current standing with every session
//! lookup, so a flagged, revoked, expired or no longer trusted credential
//! stops counting at once. The records themselves live in [`crate::model`].

pub mod cache;
pub mod cookie;
pub mod lifecycle;

pub use cache::SessionCache;
pub use cookie::{CookieKeys, CookieKind, Minted};
pub use lifecycle::{
    PortalLookup, new_app_session, new_portal_session, resolve_app_cached, resolve_portal,
};

use crate::config::SessionLimits;
use crate::model::Timestamp;

/// Is a session with these times alive at `now`?
pub fn is_live(
    created_at: Timestamp,
    last_seen_at: Timestamp,
    expires_at: Timestamp,
    limits: &SessionLimits,
    now: Timestamp,
) -> bool {
    let idle = limits.idle_timeout.as_secs() as i64;
    let max = limits.max_lifetime.as_secs() as i64;
    now < expires_at
        && now < created_at.saturating_add(max)
        && now < last_seen_at.saturating_add(idle)
}

/// Should the idle clock be written back? At most once a minute per session.
pub fn needs_touch(last_seen_at: Timestamp, now: Timestamp) -> bool {
    now - last_seen_at >= 60
}
