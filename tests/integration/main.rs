//! The one integration-test binary: the store conformance suite (run against
//! SQLite and a private Redis), the CLI commands that work on the store, and
//! the portal ceremonies with software authenticators.

mod attestation;
mod browser;
mod cli;
mod gateway;
mod gateway_util;
mod portal;
mod portal_util;
mod session;
mod store;
mod util;
