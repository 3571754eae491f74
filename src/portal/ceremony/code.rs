//! The one-time callback code: what a finished sign-in (or a silent one)
//! stores for the app host's `/.stepgate/callback`, single use, for at most
//! [`CODE_TTL`], bound to one app origin and one browser.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{Verification, new_secret, token_hash};
use crate::portal::redirect::Target;
use crate::portal::{PortalRequest, Refusal, Result};
use crate::reserved::PortalRoute;

/// Lifetime of a callback code.
pub const CODE_TTL: Duration = Duration::from_secs(60);

/// What the callback code stands for.
#[derive(Debug, Serialize, Deserialize)]
pub struct CodeRecord {
    /// When the code was made (gateway clock).
    pub at: i64,
    pub portal_id: String,
    pub user: String,
    /// The app origin (`scheme://host[:port]`) the code may be redeemed at.
    pub origin: String,
    /// The browser binding ([`CookieKeys::browser_binding`]) the app host gave
    /// the browser it sent here: only that browser can redeem the code.
    pub binding: String,
    /// The rule the ceremony was done for.
    pub rule: Option<String>,
    /// The assertion the app session's grant for `rule` carries; `None` when
    /// a portal session opens a rule that asks for no fresh proof.
    pub verification: Option<Verification>,
}

/// Store `code` (single use, [`CODE_TTL`]) and return the app host's callback
/// URL that redeems it and lands on `target`.
pub async fn callback_url(
    req: &PortalRequest<'_>,
    target: &Target,
    code: &CodeRecord,
) -> Result<String> {
    let secret = new_secret();
    let bytes = serde_json::to_vec(code).map_err(|_| Refusal::NotStored)?;
    req.store()
        .put_once(&code_key(&secret), &bytes, CODE_TTL)
        .await?;
    let pairs = [("code", secret.as_str()), ("rd", target.url.as_str())];
    Ok(PortalRoute::Callback.at(&target.origin(), &pairs))
}

/// The store key of a callback code.
pub fn code_key(code: &str) -> String {
    format!("code:{}", token_hash(code))
}
