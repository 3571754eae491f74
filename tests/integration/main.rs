//! The one integration-test binary: the store conformance suite (run against
//! SQLite and a private Redis), the CLI commands that work on the store.

mod cli;
mod session;
mod store;
mod util;
