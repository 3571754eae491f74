//! The portal: every `/.stepgate/…` path except `/.stepgate/authz/*`.
//!
//! [`handle`] dispatches on method and path; each page or API lives in its own
//! module. Pages are served only on the portal host (a login link that lands
//! on an app host is bounced to the portal); the callback and the assets are
//! served on every host. Every state-changing endpoint checks
//! `Origin`/`Sec-Fetch-Site` ([`guard`]) and forms carry a CSRF token.
//!
//! # Layout
//! - [`redirect`]: `rd` validation (open-redirect defence).
//! - `pending`: ceremony state in the store, bound to one browser.
//! - `login`, `enroll`, `callback`, `account`: the pages and their JSON APIs.
//! - `tokens`: client tokens on the account page (mint with a passkey, revoke).
//! - `assertion`: verifying one assertion, shared by sign-in and minting.
//! - [`ratelimit`]: per-IP and per-user limits on ceremony begin/finish.
//! - `sso`: what a portal session already proves for a rule (sign in once).
//! - [`bootstrap`]: the first invite when no credential exists.

mod account;
mod assertion;
mod bootstrap;
mod callback;
pub mod cookies;
mod enroll;
pub mod guard;
mod login;
mod logout;
pub mod pages;
mod pending;
pub mod ratelimit;
pub mod redirect;
mod sessions;
mod sso;
mod tokens;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::StatusCode;
use http::header::{CACHE_CONTROL, RETRY_AFTER};

use crate::config::Runtime;
use crate::gateway::{Facts, Gateway, Reply};
use crate::store::StoreError;
use crate::webauthn::{CeremonyError, RelyingParty, TrustError};

pub use bootstrap::bootstrap;

const JS: &str = include_str!("assets/portal.js");
const CSS: &str = include_str!("assets/portal.css");

/// Why the portal state could not be built from a config.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("attestation trust anchors: {0}")]
    Trust(#[from] TrustError),
    #[error("relying party: {0}")]
    RelyingParty(#[from] CeremonyError),
}

/// What the portal keeps between requests (besides the store).
pub struct PortalState {
    /// The relying party (origin, RP id) for the current config.
    pub rp: ArcSwap<RelyingParty>,
    pub limits: ratelimit::RateLimits,
}

impl PortalState {
    pub fn new(runtime: &Runtime) -> Result<Self, PortalError> {
        Ok(PortalState {
            rp: ArcSwap::from_pointee(relying_party(runtime)?),
            limits: ratelimit::RateLimits::default(),
        })
    }

    /// Rebuild the relying party after a config reload; on error the old one stays.
    pub fn reload(&self, runtime: &Runtime) -> Result<(), PortalError> {
        self.rp.store(std::sync::Arc::new(relying_party(runtime)?));
        Ok(())
    }
}

fn relying_party(runtime: &Runtime) -> Result<RelyingParty, PortalError> {
    Ok(RelyingParty::new(&runtime.portal)?)
}

/// What went wrong handling a portal request; each maps to one answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// 400 with a message a person understands.
    #[error("{0}")]
    Bad(String),
    /// 403 with a message.
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    Method,
    #[error("rate limited")]
    RateLimited(u64),
    #[error("ceremony: {0}")]
    Ceremony(#[from] CeremonyError),
}

pub(crate) type Result<T, E = Failure> = std::result::Result<T, E>;

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Failure::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Bad(_) | Failure::Ceremony(_) => StatusCode::BAD_REQUEST,
            Failure::Forbidden(_) => StatusCode::FORBIDDEN,
            Failure::NotFound => StatusCode::NOT_FOUND,
            Failure::Method => StatusCode::METHOD_NOT_ALLOWED,
            Failure::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// A short machine-readable code for the JSON API (and the audit log).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Failure::Store(_) => "unavailable",
            Failure::Bad(_) => "bad_request",
            Failure::Forbidden(_) => "forbidden",
            Failure::NotFound => "not_found",
            Failure::Method => "method_not_allowed",
            Failure::RateLimited(_) => "rate_limited",
            Failure::Ceremony(e) => match e {
                CeremonyError::UserNotVerified => "user_not_verified",
                CeremonyError::UserNotPresent => "user_not_present",
                CeremonyError::WrongOrigin => "wrong_origin",
                CeremonyError::CrossOrigin => "cross_origin",
                CeremonyError::ChallengeMismatch => "challenge_mismatch",
                CeremonyError::CounterRegressed => "counter_regressed",
                CeremonyError::BackupEligibilityChanged => "backup_eligibility_changed",
                CeremonyError::BadAttestation(_) => "bad_attestation",
                _ => "ceremony_failed",
            },
        }
    }

    /// What a person reads.
    fn message(&self) -> String {
        match self {
            Failure::Store(_) => {
                "The sign-in service cannot reach its database right now. Please try again in a minute.".into()
            }
            Failure::Bad(m) | Failure::Forbidden(m) => m.clone(),
            Failure::NotFound => "There is no such page.".into(),
            Failure::Method => "This address does not accept that kind of request.".into(),
            Failure::RateLimited(s) => format!("Too many attempts. Please wait {s} seconds and try again."),
            Failure::Ceremony(e) => match e {
                CeremonyError::UserNotVerified => "Your authenticator must ask for your PIN or fingerprint. It did not verify you, so this passkey cannot be used here.".into(),
                CeremonyError::UserNotPresent => "Your authenticator did not confirm that you are present. Please touch it when asked.".into(),
                CeremonyError::WrongOrigin | CeremonyError::CrossOrigin => "This sign-in did not happen on the portal's own page, so it was refused.".into(),
                CeremonyError::ChallengeMismatch => "This sign-in attempt timed out or was already used. Please try again.".into(),
                CeremonyError::CounterRegressed => "This passkey looks like it was copied (its counter went backwards). It has been blocked; use another passkey and check your account.".into(),
                CeremonyError::BackupEligibilityChanged => "This passkey changed in a way that is not allowed (it became synced). Please register it again.".into(),
                CeremonyError::BadAttestation(_) => "Your authenticator's proof of its model is not valid, so it cannot be registered.".into(),
                _ => "Your authenticator's answer could not be verified. Please try again.".into(),
            },
        }
    }

    fn reply(&self, json: bool) -> Reply {
        if let Failure::Store(e) = self {
            tracing::warn!(error = %e, "portal: store unavailable");
        }
        let mut r = if json {
            let body = serde_json::json!({ "error": self.code(), "message": self.message() });
            Reply::new(self.status()).body("application/json", body.to_string())
        } else {
            let title = match self {
                Failure::NotFound => "Not found",
                Failure::RateLimited(_) => "Please wait",
                Failure::Store(_) => "Temporarily unavailable",
                _ => "Something is not right",
            };
            Reply::new(self.status()).body(
                "text/html; charset=utf-8",
                pages::message(title, &self.message(), None),
            )
        };
        r = r.header(CACHE_CONTROL, "no-store");
        if let Failure::RateLimited(s) = self {
            r = r.header(RETRY_AFTER, s.to_string());
        }
        r
    }
}

/// An HTML page answer.
pub(crate) fn html(status: StatusCode, body: String) -> Reply {
    Reply::new(status)
        .body("text/html; charset=utf-8", body)
        .header(CACHE_CONTROL, "no-store")
        .header(
            http::HeaderName::from_static("content-security-policy"),
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        .header(
            http::HeaderName::from_static("x-content-type-options"),
            "nosniff",
        )
        // Not `no-referrer`: browsers then send `Origin: null` on the pages'
        // own form posts, which the same-origin check must refuse. URLs (an
        // invite token) still never leave for another origin.
        .header(
            http::HeaderName::from_static("referrer-policy"),
            "same-origin",
        )
}

/// A JSON answer.
pub(crate) fn json(value: &serde_json::Value) -> Reply {
    Reply::new(StatusCode::OK)
        .body("application/json", value.to_string())
        .header(CACHE_CONTROL, "no-store")
}

fn asset(ct: &str, body: &'static str) -> Reply {
    Reply::new(StatusCode::OK)
        .body(ct, Bytes::from_static(body.as_bytes()))
        .header(CACHE_CONTROL, "public, max-age=300")
        .header(
            http::HeaderName::from_static("x-content-type-options"),
            "nosniff",
        )
}

/// Answer one `/.stepgate/…` request (not `/.stepgate/authz/*`).
pub async fn handle(gw: &Gateway, facts: &Facts, body: Bytes) -> Reply {
    let reply = handle_request(gw, facts, body).await;
    let reading = matches!(facts.method.as_str(), "GET" | "HEAD");
    if !reading || facts.path == "/.stepgate/callback" {
        // Sign-in, step-up, callback, sign-out, revocations: sessions may have
        // ended or been replaced; the access check must not reuse an old
        // answer. Pages that only read (and 404s) leave the cache alone.
        gw.sessions.clear();
    }
    reply
}

async fn handle_request(gw: &Gateway, facts: &Facts, body: Bytes) -> Reply {
    let sub = facts.path.strip_prefix("/.stepgate/").unwrap_or("");
    let is_api = sub.starts_with("api/");
    let get = matches!(facts.method.as_str(), "GET" | "HEAD");
    let post = facts.method == "POST";
    let config = gw.config.load();
    let on_portal = facts.host == config.portal.host;

    // Served on every host.
    match sub {
        "assets/portal.js" if get => return asset("text/javascript; charset=utf-8", JS),
        "assets/portal.css" if get => return asset("text/css; charset=utf-8", CSS),
        "callback" if get => {
            return callback::handle(gw, facts)
                .await
                .unwrap_or_else(|e| e.reply(false));
        }
        _ => {}
    }
    if !on_portal {
        // Signing out works on every app host (its cookie is only there).
        let signed_out = match sub {
            "logout" if get => Some(logout::app_page(gw, facts).await),
            "logout" if post => Some(logout::app_submit(gw, facts, &body).await),
            _ => None,
        };
        if let Some(result) = signed_out {
            return result.unwrap_or_else(|e| e.reply(false));
        }
        // A portal page asked for on an app host: bounce GETs to the portal.
        if get && matches!(sub, "login" | "enroll" | "account") {
            let mut url = config.portal.url(&facts.path);
            if let Some(q) = &facts.query {
                url.push('?');
                url.push_str(q);
            }
            return Reply::redirect(StatusCode::FOUND, &url);
        }
        return Failure::NotFound.reply(is_api);
    }
    let result = match sub {
        "login" if get => login::page(gw, facts).await,
        "enroll" if get => enroll::page(gw, facts).await,
        "account" if get => account::page(gw, facts).await,
        "logout" if get => logout::portal_page(gw, facts).await,
        "logout" if post => logout::portal_submit(gw, facts, &body).await,
        "account/rename"
        | "account/revoke"
        | "account/end-session"
        | "account/end-others"
        | "account/end-all"
            if post =>
        {
            account::action(gw, facts, sub, &body).await
        }
        "account/revoke-token" if post => tokens::revoke(gw, facts, &body).await,
        "api/tokens/begin" if post => tokens::begin(gw, facts, &body).await,
        "api/tokens/finish" if post => tokens::finish(gw, facts, &body).await,
        "api/login/begin" if post => login::begin(gw, facts, &body).await,
        "api/login/finish" if post => login::finish(gw, facts, &body).await,
        "api/enroll/begin" if post => enroll::begin(gw, facts, &body).await,
        "api/enroll/finish" if post => enroll::finish(gw, facts, &body).await,
        "api/enroll/cancel" if post => enroll::cancel(gw, facts, &body).await,
        "login"
        | "enroll"
        | "account"
        | "logout"
        | "account/rename"
        | "account/revoke"
        | "account/end-session"
        | "account/end-others"
        | "account/end-all"
        | "account/revoke-token"
        | "api/tokens/begin"
        | "api/tokens/finish"
        | "api/login/begin"
        | "api/login/finish"
        | "api/enroll/begin"
        | "api/enroll/finish"
        | "api/enroll/cancel" => Err(Failure::Method),
        _ => Err(Failure::NotFound),
    };
    result.unwrap_or_else(|e| e.reply(is_api))
}

/// Refuse a state-changing request that did not come from a portal page.
pub(crate) fn require_same_origin(gw: &Gateway, facts: &Facts) -> Result<()> {
    let config = gw.config.load();
    if guard::same_origin(facts, &config.portal.origin) {
        Ok(())
    } else {
        Err(Failure::Forbidden(
            "This request did not come from the sign-in portal's own page, so it was refused."
                .into(),
        ))
    }
}

impl From<ratelimit::Limited> for Failure {
    fn from(l: ratelimit::Limited) -> Self {
        match l {
            ratelimit::Limited::RetryAfter(s) => Failure::RateLimited(s),
            ratelimit::Limited::Store(e) => Failure::Store(e),
        }
    }
}

/// Count one ceremony request against the client's limit.
pub(crate) async fn limit_client(gw: &Gateway, facts: &Facts) -> Result<()> {
    let limit = gw.config.load().rate_limit.per_ip_per_minute;
    let store = gw.store.as_ref();
    Ok(gw
        .portal
        .limits
        .client(store, facts.client_ip, limit, gw.now())
        .await?)
}

/// Refuse a verification for `user` from this client once it failed too often.
pub(crate) async fn failures_allowed(gw: &Gateway, facts: &Facts, user: &str) -> Result<()> {
    let limit = gw.config.load().rate_limit.per_user_per_minute;
    let store = gw.store.as_ref();
    Ok(gw
        .portal
        .limits
        .failures_allowed(store, user, facts.client_ip, limit, gw.now())
        .await?)
}

/// Count a failed verification for `user` from this client.
pub(crate) async fn count_failure(gw: &Gateway, facts: &Facts, user: &str) {
    let store = gw.store.as_ref();
    let counted = gw
        .portal
        .limits
        .count_failure(store, user, facts.client_ip, gw.now())
        .await;
    if let Err(e) = counted {
        tracing::warn!(error = %e, "could not count a failed verification");
    }
}

/// Parse a JSON body.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|_| Failure::Bad("The request was malformed.".into()))
}

/// A human date (UTC) for unix seconds.
pub(crate) fn human_time(t: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(t) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute()
        ),
        Err(_) => t.to_string(),
    }
}
