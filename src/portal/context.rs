//! [`PortalRequest`]: everything one portal request is handled with, taken
//! once when it arrives — the gateway's [`Snapshot`] (the config with the
//! relying party and cookie keys built from it), the request facts, the time
//! and the body — so a reload in the middle of a ceremony never mixes two
//! configs, and every handler reads one clock.

use bytes::Bytes;

use super::guard;
use super::refusal::{Refusal, Result};
use crate::config::Runtime;
use crate::gateway::{Gateway, Snapshot};
use crate::model::Timestamp;
use crate::ratelimit::Limited;
use crate::request::Facts;
use crate::reserved::PortalRoute;
use crate::session::cookie::CookieKeys;
use crate::store::Store;
use crate::webauthn::RelyingParty;

/// One portal request and the state it is judged against.
pub(crate) struct PortalRequest<'a> {
    pub gw: &'a Gateway,
    /// The config of the request's snapshot.
    pub rt: &'a Runtime,
    /// The relying party built from that config.
    pub rp: &'a RelyingParty,
    /// The cookie keys of that config.
    pub keys: &'a CookieKeys,
    pub facts: &'a Facts,
    /// The gateway's clock, read once.
    pub now: Timestamp,
    pub body: Bytes,
}

/// A submitted HTML form's fields.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    /// The first value of `name`, or "".
    pub fn field(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

impl<'a> PortalRequest<'a> {
    /// One request against `snapshot`, the one its arrival took.
    pub fn new(gw: &'a Gateway, snapshot: &'a Snapshot, facts: &'a Facts, body: Bytes) -> Self {
        PortalRequest {
            gw,
            rt: &snapshot.config,
            rp: &snapshot.rp,
            keys: &snapshot.keys,
            facts,
            now: gw.now(),
            body,
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.gw.store.as_ref()
    }

    /// The absolute URL of `route` on the portal.
    pub fn url(&self, route: PortalRoute) -> String {
        route.url(&self.rt.boot.portal)
    }

    /// A query parameter, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        self.facts.query_param(name)
    }

    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|_| Refusal::Malformed)
    }

    /// The body as a submitted form.
    pub fn form(&self) -> Form {
        Form(
            url::form_urlencoded::parse(&self.body)
                .into_owned()
                .collect(),
        )
    }

    /// Refuse a state-changing request that did not come from a portal page.
    pub fn require_same_origin(&self) -> Result<()> {
        if guard::same_origin(self.facts, &self.rt.boot.portal.origin) {
            Ok(())
        } else {
            Err(Refusal::NotFromPortal)
        }
    }

    /// Count one ceremony request against the client's limit.
    pub async fn limit_client(&self) -> Result<()> {
        let limit = self.rt.rate_limit.per_ip_per_minute;
        let limits = &self.gw.limits;
        Ok(limits
            .client(self.store(), self.facts.client_ip, limit, self.now)
            .await?)
    }

    /// Refuse a verification for `user` from this client once it failed too often.
    pub async fn failures_allowed(&self, user: &str) -> Result<()> {
        let limit = self.rt.rate_limit.per_user_per_minute;
        let limits = &self.gw.limits;
        Ok(limits
            .failures_allowed(self.store(), user, self.facts.client_ip, limit, self.now)
            .await?)
    }

    /// Count a failed verification for `user` from this client.
    pub async fn count_failure(&self, user: &str) {
        let limits = &self.gw.limits;
        let counted = limits
            .count_failure(self.store(), user, self.facts.client_ip, self.now)
            .await;
        if let Err(e) = counted {
            tracing::warn!(error = %e, "could not count a failed verification");
        }
    }
}

impl From<Limited> for Refusal {
    fn from(l: Limited) -> Self {
        match l {
            Limited::RetryAfter(s) => Refusal::RateLimited(s),
            Limited::Store(e) => Refusal::Store(e),
        }
    }
}
