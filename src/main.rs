//! The `stepgate` command line: parse arguments, set up logging, call into the library.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use stepgate::commands;

/// jemalloc: pingora allocates and frees many small objects per request from
/// several threads; the measured throughput gain over the system allocator is
/// in docs/performance.md.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(
    name = "stepgate",
    version,
    about = "Step-up passkey gateway: reverse proxy and forward-auth"
)]
struct Cli {
    /// Config file (default: ./stepgate.yaml, or $STEPGATE_CONFIG).
    #[arg(
        short,
        long,
        global = true,
        env = "STEPGATE_CONFIG",
        default_value = "stepgate.yaml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway (proxy, portal, forward-auth, admin listener) until SIGTERM/SIGINT;
    /// SIGQUIT hands the listening sockets to a process started with --upgrade.
    Serve {
        /// Log format; overrides `log.format` in the config.
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
        /// Take the listening sockets over from the running stepgate: start this,
        /// then send the running one SIGQUIT (within 5 s).
        #[arg(short, long)]
        upgrade: bool,
        /// The Unix socket where listening sockets are handed over (in a directory
        /// only this user can write).
        #[arg(long, env = "STEPGATE_UPGRADE_SOCK", default_value = stepgate::server::DEFAULT_UPGRADE_SOCK)]
        upgrade_sock: PathBuf,
        /// On SIGTERM or after handing over: how long in-flight requests and open
        /// WebSockets may go on before the process exits (90s, 5m, ...).
        #[arg(long, default_value = "5s", value_parser = stepgate::config::duration::parse)]
        drain_timeout: Duration,
    },
    /// Validate the config; exit 1 listing every error.
    Check,
    /// Show the rule a URL falls under and what it needs.
    Explain {
        /// Absolute URL, e.g. https://git.home.lab/admin
        url: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// Check this user against the rule's allow list.
        #[arg(long)]
        user: Option<String>,
        /// Client address, for rules with networks.
        #[arg(long, default_value = "127.0.0.1")]
        ip: IpAddr,
    },
    /// Print a new cookie signing key (base64) to stdout.
    GenKey,
    /// Print a single-use enrollment URL for a configured user.
    Invite {
        /// A user named under `users:` in the config.
        user: String,
        /// How long the link works.
        #[arg(long, default_value = "1h", value_parser = stepgate::config::duration::parse)]
        ttl: Duration,
        /// Lifetime of the passkey enrolled with it (default: until revoked).
        #[arg(long, value_parser = stepgate::config::duration::parse)]
        credential_ttl: Option<Duration>,
    },
    /// List or revoke passkeys.
    Credentials {
        #[command(subcommand)]
        action: CredentialsAction,
    },
    /// List or revoke sign-in sessions.
    Sessions {
        #[command(subcommand)]
        action: ListOrRevoke,
    },
    /// List or revoke client tokens (minted by a passkey for git, WebDAV, CalDAV, scripts).
    Tokens {
        #[command(subcommand)]
        action: ListOrRevoke,
    },
}

#[derive(Subcommand, Debug)]
enum CredentialsAction {
    /// List passkeys, all or one user's.
    List {
        /// Only this user's.
        user: Option<String>,
    },
    /// Revoke a passkey; sessions that used it end.
    Revoke {
        /// The credential id, as listed.
        id: String,
    },
}

/// `sessions` and `tokens`: `list [USER]`, `revoke ID`, `revoke --user USER`.
#[derive(Subcommand, Debug)]
enum ListOrRevoke {
    /// List them (never a secret), all or one user's.
    List {
        /// Only this user's.
        user: Option<String>,
    },
    /// Revoke one by id, or every one of a user.
    Revoke {
        /// The id, as listed.
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<String>,
        /// Revoke every one of this user instead.
        #[arg(long)]
        user: Option<String>,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<u8> {
    let cli = Cli::parse();
    // Unlocked handles: `serve` runs threads that log to stderr while this one waits.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    if matches!(
        cli.command,
        Command::Credentials { .. } | Command::Sessions { .. } | Command::Tokens { .. }
    ) {
        // Revocations made here are audit events like those made through the portal.
        stepgate::telemetry::init_tracing(false);
    }
    let code = match cli.command {
        Command::Serve {
            log_format,
            upgrade,
            upgrade_sock,
            drain_timeout,
        } => {
            let args = commands::ServeArgs {
                log_json: log_format.map(|f| matches!(f, LogFormat::Json)),
                server: stepgate::server::ServeOptions {
                    grace_period: drain_timeout,
                    upgrade_sock,
                    upgrade,
                    ..Default::default()
                },
            };
            commands::serve(&cli.config, &args, &mut err)?
        }
        Command::Check => commands::check(&cli.config, &mut out, &mut err)?,
        Command::Explain {
            url,
            method,
            user,
            ip,
        } => {
            let args = commands::ExplainArgs {
                url,
                method,
                user,
                ip,
            };
            commands::explain(&cli.config, &args, &mut out, &mut err)?
        }
        Command::GenKey => commands::gen_key(&mut out)?,
        Command::Invite {
            user,
            ttl,
            credential_ttl,
        } => {
            let args = commands::InviteArgs {
                user,
                ttl,
                credential_ttl,
            };
            block_on(commands::invite(&cli.config, &args, &mut out, &mut err))??
        }
        Command::Credentials { action } => match action {
            CredentialsAction::List { user } => block_on(commands::credentials_list(
                &cli.config,
                user.as_deref(),
                &mut out,
                &mut err,
            ))??,
            CredentialsAction::Revoke { id } => block_on(commands::credentials_revoke(
                &cli.config,
                &id,
                &mut out,
                &mut err,
            ))??,
        },
        Command::Sessions { action } => sessions(&cli.config, action, &mut out, &mut err)?,
        Command::Tokens { action } => tokens(&cli.config, action, &mut out, &mut err)?,
    };
    Ok(code)
}

/// `stepgate sessions …`
fn sessions(
    config: &std::path::Path,
    action: ListOrRevoke,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> Result<u8> {
    let code = match action {
        ListOrRevoke::List { user } => {
            block_on(commands::sessions_list(config, user.as_deref(), out, err))??
        }
        ListOrRevoke::Revoke { id, user } => match (id, user) {
            (_, Some(user)) => block_on(commands::sessions_revoke_user(config, &user, out, err))??,
            (Some(id), None) => block_on(commands::sessions_revoke(config, &id, out, err))??,
            (None, None) => anyhow::bail!("sessions revoke: give a session ID or --user USER"),
        },
    };
    Ok(code)
}

/// `stepgate tokens …`
fn tokens(
    config: &std::path::Path,
    action: ListOrRevoke,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> Result<u8> {
    let code = match action {
        ListOrRevoke::List { user } => {
            block_on(commands::tokens_list(config, user.as_deref(), out, err))??
        }
        ListOrRevoke::Revoke { id, user } => match (id, user) {
            (_, Some(user)) => block_on(commands::tokens_revoke_user(config, &user, out, err))??,
            (Some(id), None) => block_on(commands::tokens_revoke(config, &id, out, err))??,
            (None, None) => anyhow::bail!("tokens revoke: give a token ID or --user USER"),
        },
    };
    Ok(code)
}

/// Run an admin command on a small tokio runtime of its own.
fn block_on<T>(fut: impl std::future::Future<Output = T>) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(fut))
}
