//! Session lifecycle: how a request's cookie becomes a live session, how idle
//! time is refreshed, and how long new sessions live.
//!
//! The gateway calls [`resolve_app_cached`] on every request to a `passkey` rule (its
//! result goes straight into `policy::decide`); the portal calls
//! [`resolve_portal`] for its own pages and ceremonies, and builds new sessions
//! with [`new_portal_session`] / [`new_app_session`] and [`CookieKeys::mint`].
//!
//! Liveness (`session::is_live`): before the absolute `expires_at`, within
//! `max_lifetime` of creation, and within `idle_timeout` of the last activity.
//! Activity is written back at most once a minute per session, so a busy app
//! costs one store read per request and one write per minute.

use std::sync::Arc;

use http::HeaderMap;

use super::cache::SessionCache;
use super::cookie::{CookieKeys, CookieKind};
use super::{is_live, needs_touch};
use crate::config::SessionLimits;
use crate::model::{AppSession, AppView, PortalSession, Timestamp, Verification};
use crate::model::{new_public_id, token_hash};
use crate::store::{Store, StoreError};

/// A live portal session found from a request's portal cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalLookup {
    /// The store key of the cookie's token: what `Store::rotate_portal_session` takes
    /// as the old hash when a ceremony (sign-in, step-up) issues a new cookie.
    pub token_hash: String,
    pub session: PortalSession,
}

/// Resolve the app cookie of a request on `host` to a live app session,
/// reusing a store answer from `cache` when it is fresh (see
/// [`SessionCache`]); every check after the store read still runs.
///
/// - `headers`: the request headers as they arrived (every `Cookie` header is read;
///   a cookie present twice means no session).
/// - `secure`: the request came over https (then only the `__Host-` cookie counts).
/// - `host`: the request's normalised host (lower case, no port); an app session
///   minted for another host is ignored, so a cookie copied elsewhere is worthless.
///
/// Returns `Ok(None)` for "no session" (no or bad cookie, unknown token, wrong
/// host, app or portal session idle or past its lifetime, revoked) and
/// `Err(StoreError::Unavailable)` when the store cannot say (answer 503). The idle
/// clocks of the app session *and* its portal session are written when they are
/// at least a minute old (activity in an app keeps the sign-in alive), and the
/// returned view carries the refreshed times.
///
/// A store answer is reused from `cache` when it is fresh (see
/// [`SessionCache`]); every check after the store read still runs. The view is
/// shared with the cache: it is copied only when its idle clocks are written.
#[allow(clippy::too_many_arguments)]
pub async fn resolve_app_cached(
    store: &dyn Store,
    cache: Option<&SessionCache>,
    keys: &CookieKeys,
    limits: &SessionLimits,
    headers: &HeaderMap,
    secure: bool,
    host: &str,
    now: Timestamp,
) -> Result<Option<Arc<AppView>>, StoreError> {
    let Some(token) = keys.token_from_headers(headers, CookieKind::App, secure) else {
        return Ok(None);
    };
    let hash = token_hash(&token);
    // Noted before the cache or the store is read: a clear after this point
    // keeps this request's view out of the cache.
    let generation = cache.map(SessionCache::generation);
    let view = match cache.and_then(|c| c.get(&hash)) {
        Some(view) => view,
        None => {
            let Some(view) = store.app_session(&hash).await? else {
                return Ok(None);
            };
            let view = Arc::new(view);
            if let (Some(c), Some(g)) = (cache, generation) {
                c.put(hash.clone(), Arc::clone(&view), g);
            }
            view
        }
    };
    let (app, portal) = (&view.app, &view.portal);
    if app.host != host
        || app.user != portal.user
        || app.portal_id != portal.id
        || !is_live(
            app.created_at,
            app.last_seen_at,
            app.expires_at,
            limits,
            now,
        )
        || !is_live(
            portal.created_at,
            portal.last_seen_at,
            portal.expires_at,
            limits,
            now,
        )
    {
        return Ok(None);
    }
    let view = touch_idle_clocks(store, cache, &hash, view, generation, now).await?;
    Ok(Some(view))
}

/// Write the idle clocks of `view`'s app and portal sessions when they are at
/// least a minute old; returns the view with the times written.
async fn touch_idle_clocks(
    store: &dyn Store,
    cache: Option<&SessionCache>,
    hash: &str,
    mut view: Arc<AppView>,
    generation: Option<u64>,
    now: Timestamp,
) -> Result<Arc<AppView>, StoreError> {
    let touch_app = needs_touch(view.app.last_seen_at, now);
    let touch_portal = needs_touch(view.portal.last_seen_at, now);
    if !(touch_app || touch_portal) {
        return Ok(view);
    }
    let fresh = Arc::make_mut(&mut view);
    if touch_app {
        fresh.app.last_seen_at = now;
    }
    if touch_portal {
        fresh.portal.last_seen_at = now;
    }
    // The cached copy gets the new idle clocks before they are written, so
    // the requests arriving meanwhile (a page and its assets) do not each
    // write them again.
    if let (Some(c), Some(g)) = (cache, generation) {
        c.refresh(hash, Arc::clone(&view), g);
    }
    let written = async {
        if touch_app {
            store.touch_app_session(&view.app.id, now).await?;
        }
        if touch_portal {
            store.touch_portal_session(&view.portal.id, now).await?;
        }
        Ok::<(), StoreError>(())
    }
    .await;
    if let Err(e) = written {
        if let Some(c) = cache {
            c.remove(hash);
        }
        return Err(e);
    }
    Ok(view)
}

/// Resolve the portal cookie of a request (on the portal host) to a live portal
/// session; same rules and return values as [`resolve_app_cached`].
pub async fn resolve_portal(
    store: &dyn Store,
    keys: &CookieKeys,
    limits: &SessionLimits,
    headers: &HeaderMap,
    secure: bool,
    now: Timestamp,
) -> Result<Option<PortalLookup>, StoreError> {
    let Some(token) = keys.token_from_headers(headers, CookieKind::Portal, secure) else {
        return Ok(None);
    };
    let hash = token_hash(&token);
    let Some(mut session) = store.portal_session(&hash).await? else {
        return Ok(None);
    };
    if !is_live(
        session.created_at,
        session.last_seen_at,
        session.expires_at,
        limits,
        now,
    ) {
        return Ok(None);
    }
    if needs_touch(session.last_seen_at, now) {
        store.touch_portal_session(&session.id, now).await?;
        session.last_seen_at = now;
    }
    Ok(Some(PortalLookup {
        token_hash: hash,
        session,
    }))
}

/// A new portal session for `user` after a sign-in ceremony `uv` (whose
/// credential becomes `signed_in_with`; a registration sets that itself).
///
/// Its absolute end is `now + max_lifetime`, brought forward to the credential's
/// own expiry (`Credential::expires_at`, e.g. a guest's 24 h passkey): a session
/// never outlives the credential it was made with.
pub fn new_portal_session(
    user: &str,
    uv: Option<Verification>,
    credential_expires_at: Option<Timestamp>,
    limits: &SessionLimits,
    now: Timestamp,
) -> PortalSession {
    let max = now.saturating_add(limits.max_lifetime.as_secs() as i64);
    PortalSession {
        id: new_public_id(),
        user: user.to_string(),
        created_at: now,
        last_seen_at: now,
        expires_at: credential_expires_at.map_or(max, |c| c.min(max)),
        signed_in_with: uv.as_ref().map(|v| v.credential_id.clone()),
        last_uv: uv,
        client: None,
    }
}

/// A new app session on `host` (normalised) from `portal`; it ends no later than
/// its portal session (and dies with it anyway).
pub fn new_app_session(
    portal: &PortalSession,
    host: &str,
    limits: &SessionLimits,
    now: Timestamp,
) -> AppSession {
    let max = now.saturating_add(limits.max_lifetime.as_secs() as i64);
    AppSession {
        id: new_public_id(),
        portal_id: portal.id.clone(),
        user: portal.user.clone(),
        host: host.to_string(),
        created_at: now,
        last_seen_at: now,
        expires_at: portal.expires_at.min(max),
    }
}
