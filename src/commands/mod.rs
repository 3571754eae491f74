//! What each CLI subcommand does; `main.rs` only parses arguments and calls here.
//!
//! Commands write their normal output to the given writer and return the
//! process exit code, so tests can run them without spawning a process.

mod admin;
mod config;
mod keys;
mod serve;

pub use admin::{
    InviteArgs, credentials_list, credentials_revoke, invite, sessions_list, sessions_revoke,
    sessions_revoke_user, tokens_list, tokens_revoke, tokens_revoke_user,
};
pub use config::{ExplainArgs, check, explain};
pub use keys::gen_key;
pub use serve::{ServeArgs, serve};

/// Exit codes shared by the commands.
pub mod exit {
    pub const OK: u8 = 0;
    /// Bad input: a config with errors, an unknown id.
    pub const FAILED: u8 = 1;
    /// `explain`: the request would be refused before any rule applies.
    pub const DENIED: u8 = 2;
}
