//! stepgate: a reverse proxy and forward-auth gateway that puts step-up passkey
//! verification (with user verification: PIN or biometric) in front of
//! self-hosted services, per host and path.
//!
//! How the layers fit, the path of a request through them, and where each kind
//! of change goes: `docs/architecture.md`.
//!
//! # Layout
//! - [`config`]: the YAML file, its checks, the validated [`config::Runtime`].
//! - [`routing`]: host and path patterns, path normalisation, [`routing::Router`].
//! - [`headers`]: what header names mean (identity, forwarded, meaning-changing, framing) and spelling folds.
//! - [`request`]: the request facts every decision reads, their one builder (inline and forward-auth), request targets, forwarded headers.
//! - [`policy`]: [`policy::decide`], the single decision point.
//! - [`model`]: the records every layer passes around (passkeys, sessions, grants) and their ids.
//! - [`session`]: session lifetimes, resolving a cookie to a session, the cookie codec, the lookup cache.
//! - [`client_token`]: client tokens minted by a passkey for native clients (git, WebDAV, CalDAV, scripts).
//! - [`store`]: the [`store::Store`] trait and its backends.
//! - [`reply`]: the complete answers handlers write (refusals, pages, forward-auth answers).
//! - [`gateway`]: the shared state of a running gateway.
//! - [`clock`]: the one source of the current time (tests move it).
//! - [`trust`]: authenticator sets and what proves a model: attestation roots and verified MDS3 blobs.
//! - [`webauthn`]: passkey ceremonies at the portal origin and what an attestation proved.
//! - [`reserved`]: every path under the reserved `/.stepgate/` prefix (`PortalRoute`), parsed once, and the links to them. (Rule matching is [`routing`]'s.)
//! - [`ratelimit`]: ceremony and token rate limits that nobody can use to lock a user out.
//! - [`portal`]: the portal pages and JSON API under `/.stepgate/` (login, enroll, account, callback).
//! - [`access`]: the access check shared by the proxy and forward-auth: judging a request, and answering the verdict.
//! - [`authz`]: forward-auth endpoints for Traefik, Caddy and nginx.
//! - [`peers`]: the upstreams' addresses, resolved at load and reload.
//! - [`proxy`]: the pingora `ProxyHttp` implementation (thin hooks), reading a request's facts, upstream hygiene.
//! - [`server`]: building and running the pingora server and the admin listener; live reload.
//! - [`telemetry`]: tracing setup and Prometheus metrics.
//! - [`tls`]: the HTTPS listener's certificate, re-read on reload.
//! - [`audit`]: structured audit events (ceremonies, grants, denials, revocations, reloads).
//! - [`commands`]: what the CLI subcommands do (`main.rs` only parses arguments).

pub mod access;
pub mod audit;
pub mod authz;
pub mod client_token;
pub mod clock;
pub mod commands;
pub mod config;
pub mod gateway;
pub mod headers;
pub mod model;
pub mod peers;
pub mod policy;
pub mod portal;
pub mod proxy;
pub mod ratelimit;
pub mod reply;
pub mod request;
pub mod reserved;
pub mod routing;
pub mod server;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod trust;
pub mod webauthn;
