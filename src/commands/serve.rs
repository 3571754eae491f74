//! `stepgate serve`: check the config, open the store, run the gateway until a signal.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::config;
use crate::gateway::{Gateway, SystemClock};
use crate::server::{self, ServeOptions, Stop};
use crate::telemetry;

use super::exit;

/// Run the gateway with the config at `path`; returns the exit code once it stopped.
/// `log_json` overrides the config's `log.format` when given (`--log-format`).
pub fn serve(path: &Path, log_json: Option<bool>, err: &mut dyn Write) -> std::io::Result<u8> {
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
    telemetry::init_tracing(log_json.unwrap_or(rt.log_json));
    let store = match crate::store::open(&rt.store) {
        Ok(s) => s,
        Err(e) => {
            writeln!(err, "error: store: {e}")?;
            return Ok(exit::FAILED);
        }
    };
    let built = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(tokio_rt) => tokio_rt.block_on(async {
            let gw = Gateway::build(rt, store, Arc::new(SystemClock)).await?;
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
    match server::run(gw, ServeOptions::default(), Stop::Signals) {
        Ok(()) => Ok(exit::OK),
        Err(e) => {
            writeln!(err, "error: {e}")?;
            Ok(exit::FAILED)
        }
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
            if let Err(e) = rt.block_on(config::reload::watch(path, gw)) {
                tracing::error!(error = %e, "config reload disabled: cannot watch the config file");
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "config reload disabled: cannot start its thread");
    }
}
