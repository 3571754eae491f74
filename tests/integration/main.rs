//! The one integration-test binary: the store conformance suite (run against
//! SQLite and a private Redis), the CLI commands that work on the store, the
//! session lifecycle, the portal ceremonies with software authenticators, the
//! gateway end to end, real front proxies, config files as users write them,
//! real app clients through the app recipes, and client tokens.

use stepgate_kit as kit;

mod apps;
mod apps_through;
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
mod neighbours;
mod portal;
mod reload;
mod session;
mod signin_attacks;
mod sso;
mod store;
mod tokens;
mod upgrade;
mod upstreams;
