//! stepgate: a reverse proxy and forward-auth gateway that puts step-up passkey
//! verification (with user verification: PIN or biometric) in front of
//! self-hosted services, per host and path.
//!
//! How the layers fit, the path of a request through them, and where each kind
//! of change goes: `docs/architecture.md`.
//!
//! # Layout
//! - [`config`]: the YAML file, its checks, the validated [`config::Runtime`], reload.
//! - [`routing`]: host and path patterns, path normalisation, [`routing::Router`].
//! - [`request`]: the one builder of request facts (inline and forward-auth), forwarded headers.
//! - [`policy`]: [`policy::decide`], the single decision point.
//! - [`session`]: sessions, credentials, grants, the cookie codec.
//! - [`token`]: client tokens minted by a passkey for native clients (git, WebDAV, CalDAV, scripts).
//! - [`store`]: the [`store::Store`] trait and its backends.
//! - [`gateway`]: shared state and the request/response types handlers speak.
//! - [`clock`]: the one source of the current time (tests move it).
//! - [`webauthn`]: passkey ceremonies at the portal origin; attestation proofs, trust anchors and verified MDS3 blobs.
//! - [`portal`]: the portal pages and JSON API under `/.stepgate/` (login, enroll, account, callback).
//! - [`access`]: the access check shared by the proxy and forward-auth, and refusals.
//! - [`authz`]: forward-auth endpoints for Traefik, Caddy and nginx.
//! - [`proxy`]: the pingora `ProxyHttp` implementation (thin hooks), upstream hygiene, upstream addresses resolved at load.
//! - [`server`]: building and running the pingora server and the admin listener.
//! - [`telemetry`]: tracing setup and Prometheus metrics.
//! - [`tls`]: the HTTPS listener's certificate, re-read on reload.
//! - [`audit`]: structured audit events (ceremonies, grants, denials, revocations, reloads).
//! - [`commands`]: what the CLI subcommands do (`main.rs` only parses arguments).

pub mod access;
pub mod audit;
pub mod authz;
pub mod clock;
pub mod commands;
pub mod config;
pub mod gateway;
pub mod policy;
pub mod portal;
pub mod proxy;
pub mod request;
pub mod routing;
pub mod server;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod token;
pub mod webauthn;
