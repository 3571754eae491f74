//! The `stepgate` command line: parse arguments, set up logging, call into the library.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use stepgate::commands;

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

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway (proxy, portal, forward-auth, admin listener) until SIGTERM/SIGINT.
    Serve,
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
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let code = match cli.command {
        Command::Serve => commands::serve(&cli.config, &mut err)?,
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
    };
    Ok(code)
}
