//! The one integration-test binary: the store conformance suite (run against
//! SQLite and a private Redis), the CLI commands that work on the store, the
//! session lifecycle, the portal ceremonies with software authenticators, the
//! gateway end to end, real front proxies, and config files as users write them.

mod apps;
mod apps_util;
mod attacks;
mod attestation;
mod audit;
mod browser;
mod cli;
mod config;
mod containers;
mod e2e;
mod failover;
mod first_run;
mod front_proxies;
mod gateway;
mod gateway_util;
mod handmade;
mod portal;
mod portal_util;
mod reload;
mod session;
mod store;
mod upgrade;
mod upstreams;
mod util;
