//! Ceremony state between begin and finish, kept in the store and bound to one browser.
//!
//! The browser holds only a random *binding* id in a short-lived cookie; each
//! begin returns a random *ceremony* id. The state is stored with `put_once`
//! ([`TTL`]) under a hash of both, so a finish from another browser (which
//! lacks the cookie) finds nothing, and the first finish consumes it whether
//! it succeeds or fails.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use webauthn_rs_core::proto::{AuthenticationState, RegistrationState};

use super::cookie;
use crate::model::{Invite, Timestamp, new_secret, token_hash};
use crate::portal::{PortalRequest, Refusal, Result, json};
use crate::reply::Reply;

/// Lifetime of a ceremony state.
pub const TTL: Duration = Duration::from_secs(300);
/// Lifetime of the binding cookie (longer than one ceremony).
const COOKIE_AGE: i64 = 600;

/// What a begun ceremony remembers.
#[derive(Debug, Serialize, Deserialize)]
pub enum Pending {
    Enroll {
        user: String,
        label: String,
        invite_hash: String,
        invite: Invite,
        state: RegistrationState,
    },
    Login {
        /// The validated target, if any.
        rd: Option<String>,
        /// The browser binding the app host gave (see `super::code::CodeRecord`).
        binding: Option<String>,
        /// The user named before the ceremony (session or user name), if any.
        user: Option<String>,
        state: AuthenticationState,
    },
    /// Minting a client token (`portal::tokens`): the assertion is the token's own ceremony.
    Mint {
        user: String,
        /// The public id of the portal session the mint began in.
        session: String,
        label: String,
        rules: Vec<String>,
        /// Seconds asked for; `None`: the default lifetime.
        lifetime: Option<u64>,
        state: AuthenticationState,
    },
}

/// What is stored: the state and when it began (judged by the gateway's clock
/// as well as by the store's TTL).
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    at: Timestamp,
    pending: Pending,
}

/// A stored ceremony: its id for the page, and the cookie to set if the browser had none.
pub struct Begun {
    pub ceremony: String,
    pub set_cookie: Option<String>,
}

fn key(binding: &str, ceremony: &str) -> String {
    format!("ceremony:{}", token_hash(&format!("{binding}\0{ceremony}")))
}

/// Store `pending` for this browser.
pub async fn put(req: &PortalRequest<'_>, pending: Pending) -> Result<Begun> {
    let secure = req.rt.boot.portal.secure;
    let (binding, set_cookie) = match cookie::ceremony(req.facts, secure) {
        Some(b) if b.len() >= 16 => (b, None),
        _ => {
            let b = new_secret();
            let c = cookie::set_ceremony(secure, &b, COOKIE_AGE);
            (b, Some(c))
        }
    };
    let ceremony = new_secret();
    let stored = Stored {
        at: req.now,
        pending,
    };
    let bytes = serde_json::to_vec(&stored).map_err(|_| Refusal::NotStored)?;
    req.store()
        .put_once(&key(&binding, &ceremony), &bytes, TTL)
        .await?;
    Ok(Begun {
        ceremony,
        set_cookie,
    })
}

/// Store `pending` for this browser and answer the page's begin call with
/// `{ceremony, publicKey: options}` and `extra` fields (and the binding
/// cookie if it had none).
pub async fn begin_reply(
    req: &PortalRequest<'_>,
    pending: Pending,
    options: serde_json::Value,
    extra: &[(&str, &str)],
) -> Result<Reply> {
    let begun = put(req, pending).await?;
    let mut body = serde_json::json!({
        "ceremony": begun.ceremony,
        "publicKey": options,
    });
    for (k, v) in extra {
        body[*k] = serde_json::Value::from(*v);
    }
    let mut reply = json(&body);
    if let Some(c) = begun.set_cookie {
        reply = reply.header(http::header::SET_COOKIE, c);
    }
    Ok(reply)
}

/// Take (and so consume) the ceremony `ceremony` of this browser.
pub async fn take(req: &PortalRequest<'_>, ceremony: &str) -> Result<Option<Pending>> {
    let Some(binding) = cookie::ceremony(req.facts, req.rt.boot.portal.secure) else {
        return Ok(None);
    };
    if ceremony.is_empty() || ceremony.len() > 64 {
        return Ok(None);
    }
    let Some(bytes) = req.store().take_once(&key(&binding, ceremony)).await? else {
        return Ok(None);
    };
    let Ok(stored) = serde_json::from_slice::<Stored>(&bytes) else {
        return Ok(None);
    };
    let age = req.now - stored.at;
    if !(0..=TTL.as_secs() as i64).contains(&age) {
        return Ok(None);
    }
    Ok(Some(stored.pending))
}
