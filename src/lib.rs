//! stepgate: a reverse proxy and forward-auth gateway that puts step-up passkey
//! verification (with user verification: PIN or biometric) in front of
//! self-hosted services, per host and path.
//!
//! # Layout
//! - [`config`]: the YAML file, its checks, the validated [`config::Runtime`], reload.
//! - [`routing`]: host and path patterns, path normalisation, [`routing::Router`].
//! - [`policy`]: [`policy::decide`], the single decision point.
//! - [`session`]: sessions, credentials, grants, the cookie codec.
//! - [`store`]: the [`store::Store`] trait and its backends.
//! - [`gateway`]: shared state and the request/response types handlers speak.
//! - [`audit`]: structured audit events (ceremonies, grants, denials, revocations, reloads).
//! - [`commands`]: what the CLI subcommands do (`main.rs` only parses arguments).

pub mod audit;
pub mod commands;
pub mod config;
pub mod gateway;
pub mod policy;
pub mod routing;
pub mod session;
pub mod store;
