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
pub fn serve(path: &Path, err: &mut dyn Write) -> std::io::Result<u8> {
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
    telemetry::init_tracing(rt.log_json);
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
            // No credential at all: log one enrollment link for the first user.
            if let Err(e) = crate::portal::bootstrap(&gw).await {
                tracing::warn!(error = %e, "bootstrap invite could not be created");
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
    let opts = ServeOptions {
        reload_from: Some(path.to_path_buf()),
        ..ServeOptions::default()
    };
    match server::run(gw, opts, Stop::Signals) {
        Ok(()) => Ok(exit::OK),
        Err(e) => {
            writeln!(err, "error: {e}")?;
            Ok(exit::FAILED)
        }
    }
}
