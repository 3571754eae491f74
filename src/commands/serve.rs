//! `stepgate serve`: check the config, make a first run's cookie key, open the
//! store, run the gateway until a signal.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::{self, Runtime, StoreSettings};
use crate::gateway::Gateway;
use crate::server::{self, ServeOptions, Stop};
use crate::telemetry;

use super::exit;

/// How `serve` was asked to run (its flags).
#[derive(Debug, Clone, Default)]
pub struct ServeArgs {
    /// Overrides the config's `log.format` when given (`--log-format`).
    pub log_json: Option<bool>,
    /// Listening-socket handover and drain timeout.
    pub server: ServeOptions,
}

/// Run the gateway with the config at `path`; returns the exit code once it stopped.
pub fn serve(path: &Path, args: &ServeArgs, err: &mut dyn Write) -> std::io::Result<u8> {
    let log_json = args.log_json;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let checked = match config::check_file(path, now) {
        Ok(c) => c,
        Err(e) => {
            for d in e.errors() {
                writeln!(err, "error: {d}")?;
            }
            writeln!(err, "{}: not started", path.display())?;
            return Ok(exit::FAILED);
        }
    };
    for w in &checked.warnings {
        writeln!(err, "warning: {w}")?;
    }
    let rt = checked.runtime;
    let rt_threads = rt.boot.threads;
    telemetry::init_tracing(log_json.unwrap_or(rt.boot.log_json));
    if let Err(e) = first_run_key(&rt) {
        writeln!(err, "error: {e}")?;
        return Ok(exit::FAILED);
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = match crate::store::open(&rt.boot.store, Arc::clone(&clock)) {
        Ok(s) => s,
        Err(e) => {
            writeln!(err, "error: store: {e}")?;
            return Ok(exit::FAILED);
        }
    };
    let built = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(tokio_rt) => tokio_rt.block_on(async {
            let gw = Gateway::build(rt, store, clock).await?;
            // No credential at all: one enrollment link for the first user, on
            // standard output (the log never holds a secret).
            match crate::portal::bootstrap(&gw).await {
                Ok(Some(url)) => {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(
                        out,
                        "Enroll the first passkey (one-time link, valid 24h): {url}"
                    );
                    let _ = out.flush();
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "bootstrap invite could not be created"),
            }
            Ok::<_, crate::gateway::BuildError>(gw)
        }),
        Err(e) => {
            writeln!(err, "error: {e}")?;
            return Ok(exit::FAILED);
        }
    };
    let gw = match built {
        Ok(gw) => Arc::new(gw),
        Err(e) => {
            writeln!(err, "error: {e}")?;
            return Ok(exit::FAILED);
        }
    };
    start_reloader(path, gw.clone());
    let opts = server::ServeOptions {
        threads: rt_threads,
        ..args.server.clone()
    };
    match server::run(gw, opts, Stop::Signals) {
        Ok(()) => Ok(exit::OK),
        Err(e) => {
            writeln!(err, "error: {e}")?;
            Ok(exit::FAILED)
        }
    }
}

/// With the embedded SQLite store, create the signing key file (the first of
/// `secrets.cookie_keys`) when it is missing, and say so once. With Redis a
/// missing key stays an error: every instance must sign with the same key.
fn first_run_key(rt: &Runtime) -> Result<(), String> {
    let Some(path) = rt.cookie_keys.first() else {
        return Ok(());
    };
    match &rt.boot.store {
        StoreSettings::Sqlite { .. } => match super::keys::create_key_file(path) {
            Ok(true) => {
                tracing::info!(path = %path.display(), "created a new cookie signing key (mode 0600); keep it: replacing it ends every session");
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(format!(
                "cannot create the cookie key file {}: {e}",
                path.display()
            )),
        },
        StoreSettings::Redis { .. } if !path.exists() => Err(format!(
            "cookie key file {} does not exist; with the Redis store every instance must sign with the same key, \
             so none is made up: copy it from another instance, or make it once with `stepgate gen-key > {}`",
            path.display(),
            path.display()
        )),
        StoreSettings::Redis { .. } => Ok(()),
    }
}

/// Watch the config file and SIGHUP on a thread of its own; a failure to watch
/// is logged and the gateway keeps serving its current config.
fn start_reloader(path: &Path, gw: Arc<Gateway>) {
    let path = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("stepgate-reload".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "config reload disabled: cannot start its runtime");
                    return;
                }
            };
            if let Err(e) = rt.block_on(crate::server::reload::watch(path, gw)) {
                tracing::error!(error = %e, "config reload disabled: cannot watch the config file");
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "config reload disabled: cannot start its thread");
    }
}
