//! Config reload while serving: on SIGHUP the config file is checked again and,
//! if it compiles, swapped in whole (the portal's relying party too); a file
//! with errors keeps the running config and logs every error. Listener
//! addresses (`listen`, `tls`, `admin_listen`) only change on restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{self, ConfigError};
use crate::gateway::Gateway;
use crate::telemetry::metrics;

/// Why a reload did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("portal: {0}")]
    Portal(#[from] crate::portal::PortalError),
}

/// Check `path` and swap it in; on any error the running config stays.
pub fn reload(gw: &Gateway, path: &Path) -> Result<(), ReloadError> {
    let now = gw.now();
    let result = config::check_file(path, now)
        .map_err(ReloadError::from)
        .and_then(|checked| {
            gw.portal.reload(&checked.runtime)?;
            Ok(checked)
        });
    match result {
        Ok(checked) => {
            for w in &checked.warnings {
                tracing::warn!(warning = %w, "config reload");
            }
            let old = gw.config.load();
            let new = &checked.runtime;
            if old.listen != new.listen
                || old.tls != new.tls
                || old.admin_listen != new.admin_listen
            {
                tracing::warn!("listener addresses changed: they take effect on restart");
            }
            gw.config.store(Arc::new(checked.runtime));
            metrics().reload(true);
            tracing::info!(file = %path.display(), "config reloaded");
            Ok(())
        }
        Err(e) => {
            metrics().reload(false);
            match &e {
                ReloadError::Config(c) => {
                    for d in c.errors() {
                        tracing::error!(error = %d, "config reload refused; keeping the running config");
                    }
                }
                other => {
                    tracing::error!(error = %other, "config reload refused; keeping the running config")
                }
            }
            Err(e)
        }
    }
}

/// Reload on every SIGHUP, from a thread of its own (with its own small
/// runtime, apart from pingora's). The thread lives as long as the process.
pub fn watch_sighup(gw: Arc<Gateway>, path: PathBuf) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Register the handler before returning, so a SIGHUP right after start-up
    // is a reload and not the default action (exit).
    let mut hup = rt.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    })?;
    std::thread::Builder::new()
        .name("stepgate-reload".into())
        .spawn(move || {
            rt.block_on(async move {
                tracing::debug!(file = %path.display(), "config reload on SIGHUP");
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading the config");
                    let _ = reload(&gw, &path);
                }
            })
        })?;
    Ok(())
}
