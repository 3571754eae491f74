//! The embedded SQLite backend (the default): one file, WAL, shared by the
//! server and the CLI.
//!
//! Every call runs on tokio's blocking pool with a connection taken from a small
//! pool. Multi-statement changes run in `BEGIN IMMEDIATE` transactions and
//! single-read items are taken with one `DELETE … RETURNING`, so they stay atomic
//! across connections *and* across processes (the CLI and `serve` share the file).
//! The schema is versioned with `PRAGMA user_version`.
//!
//! `synchronous=FULL`: a committed ceremony (credential, counter, flag) survives
//! a power cut, not only a crash.
//!
//! Records whose absolute expiry has passed are treated as gone (like Redis's
//! native TTLs) and swept now and then.
//!
//! This file holds the schema, the connection pool and the row mapping; the
//! trait methods live one file per aggregate: [`credentials`], [`sessions`]
//! (with the credential → session index, `session_credentials`), [`tokens`]
//! and [`ephemeral`].

mod credentials;
mod ephemeral;
mod sessions;
mod tokens;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, Row, TransactionBehavior, params};

use super::codec::{corrupt, from_json, from_json_opt, unavailable};
use super::{StoreError, order};
use crate::clock::{Clock, SystemClock};
use crate::model::{AppSession, Credential, CredentialStanding, Grant, PortalSession};

/// How long a statement waits for another writer (CLI or server) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections in use at once (and kept idle for reuse); more callers wait their turn.
const POOL_SIZE: usize = 8;

/// The schema, one entry per version; `user_version` says how many have been applied.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "
    CREATE TABLE credentials (
        id TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        label TEXT NOT NULL,
        passkey TEXT NOT NULL,
        counter INTEGER NOT NULL,
        aaguid TEXT NOT NULL,
        attestation_root TEXT,
        backup_eligible INTEGER NOT NULL,
        backup_state INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER,
        expires_at INTEGER,
        flagged INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX credentials_user ON credentials(user);

    CREATE TABLE invites (
        token_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        credential_ttl INTEGER,
        expires_at INTEGER NOT NULL
    );

    CREATE TABLE once_items (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL,
        expires_at_ms INTEGER NOT NULL
    );

    CREATE TABLE portal_sessions (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        user TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        last_uv TEXT
    );
    CREATE INDEX portal_sessions_user ON portal_sessions(user);

    -- Every credential a portal session's ceremonies (sign-in, step-ups, grants) used.
    CREATE TABLE session_credentials (
        portal_id TEXT NOT NULL REFERENCES portal_sessions(id) ON DELETE CASCADE,
        credential_id TEXT NOT NULL,
        PRIMARY KEY (portal_id, credential_id)
    );
    CREATE INDEX session_credentials_credential ON session_credentials(credential_id);

    CREATE TABLE app_sessions (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        portal_id TEXT NOT NULL REFERENCES portal_sessions(id) ON DELETE CASCADE,
        user TEXT NOT NULL,
        host TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX app_sessions_portal ON app_sessions(portal_id);

    CREATE TABLE grants (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id TEXT NOT NULL REFERENCES app_sessions(id) ON DELETE CASCADE,
        rule TEXT NOT NULL,
        verification TEXT NOT NULL
    );
    CREATE INDEX grants_app ON grants(app_id);
    ",
    // 2: client tokens.
    tokens::SCHEMA,
    // 3: what an attestation proved (format, root, AAGUID) replaces the bare
    // root fingerprint, which did not say whether the signature covered the
    // AAGUID: credentials registered before prove no model until re-registered.
    // A portal session names the credential that started it.
    "
    ALTER TABLE credentials DROP COLUMN attestation_root;
    ALTER TABLE credentials ADD COLUMN attestation TEXT;
    ALTER TABLE portal_sessions ADD COLUMN signed_in_with TEXT;
    ",
    // 4: where a portal session was started from (address, user agent), for the account page.
    "ALTER TABLE portal_sessions ADD COLUMN client TEXT;",
];

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Every wall-clock read (expiries, sweeps) goes through it.
    clock: Arc<dyn Clock>,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict,
            _ => unavailable(e),
        }
    }
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Bring the schema up to date; safe when several processes start at once.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(unavailable(format!(
            "cannot switch the database to WAL (journal_mode is {mode})"
        )));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(unavailable(format!(
            "the database schema is version {version}, newer than this stepgate knows ({known})"
        )));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    Ok(tx.commit()?)
}

impl SqliteStore {
    /// Open (creating the file and its parent directory if needed) and
    /// migrate, on the system clock.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Arc::new(SystemClock))
    }

    /// [`SqliteStore::open`], reading the time from `clock`.
    pub fn open_with(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| unavailable(format!("cannot create {}: {e}", parent.display())))?;
        }
        let mut conn = connect(path)?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                clock,
                idle: Mutex::new(vec![conn]),
                permits: Arc::new(tokio::sync::Semaphore::new(POOL_SIZE)),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Run `f` with a pooled connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &dyn Clock) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let permit = Arc::clone(&inner.permits)
            .acquire_owned()
            .await
            .map_err(unavailable)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let pooled = inner.idle.lock().map_err(unavailable)?.pop();
            let mut conn = match pooled {
                Some(c) => c,
                None => connect(&inner.path)?,
            };
            let out = f(&mut conn, inner.clock.as_ref());
            if let Ok(mut idle) = inner.idle.lock()
                && idle.len() < POOL_SIZE
            {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(unavailable)?
    }
}

// --- row mapping ---

const CREDENTIAL_COLUMNS: &str = "id, user, label, passkey, counter, aaguid, attestation, \
     backup_eligible, backup_state, created_at, last_used_at, expires_at, flagged";

/// A credential row, with its AAGUID and attestation still text.
type CredentialRow = (Credential, String, Option<String>);

fn credential_row(r: &Row<'_>) -> rusqlite::Result<CredentialRow> {
    Ok((
        Credential {
            id: r.get(0)?,
            user: r.get(1)?,
            label: r.get(2)?,
            passkey: r.get(3)?,
            counter: r.get(4)?,
            aaguid: uuid::Uuid::nil(),
            attestation: None,
            backup_eligible: r.get(7)?,
            backup_state: r.get(8)?,
            created_at: r.get(9)?,
            last_used_at: r.get(10)?,
            expires_at: r.get(11)?,
            flagged: r.get(12)?,
        },
        r.get(5)?,
        r.get(6)?,
    ))
}

fn finish_credential(
    (mut c, aaguid, attestation): CredentialRow,
) -> Result<Credential, StoreError> {
    c.aaguid = uuid::Uuid::parse_str(&aaguid).map_err(corrupt)?;
    c.attestation = from_json_opt(attestation)?;
    Ok(c)
}

/// The standing of every credential a portal session's ceremonies used, per
/// request (a missing one no longer exists).
const STANDING_BY_PORTAL: &str = "SELECT c.id, c.flagged, c.expires_at, c.backup_eligible, c.attestation \
     FROM session_credentials s JOIN credentials c ON c.id = s.credential_id WHERE s.portal_id = ?1";

fn standing_row(r: &Row<'_>) -> rusqlite::Result<(CredentialStanding, Option<String>)> {
    Ok((
        CredentialStanding {
            id: r.get(0)?,
            flagged: r.get(1)?,
            expires_at: r.get(2)?,
            backup_eligible: r.get(3)?,
            attestation: None,
        },
        r.get(4)?,
    ))
}

const PORTAL_COLUMNS: &str =
    "id, user, created_at, last_seen_at, expires_at, last_uv, signed_in_with, client";

/// A portal session row, with its JSON columns (`last_uv`, `client`) still text.
type PortalRow = (PortalSession, Option<String>, Option<String>);

fn portal_row(r: &Row<'_>) -> rusqlite::Result<PortalRow> {
    Ok((
        PortalSession {
            id: r.get(0)?,
            user: r.get(1)?,
            created_at: r.get(2)?,
            last_seen_at: r.get(3)?,
            expires_at: r.get(4)?,
            last_uv: None,
            signed_in_with: r.get(6)?,
            client: None,
        },
        r.get(5)?,
        r.get(7)?,
    ))
}

fn finish_portal((mut p, uv, client): PortalRow) -> Result<PortalSession, StoreError> {
    p.last_uv = from_json_opt(uv)?;
    p.client = from_json_opt(client)?;
    Ok(p)
}

const APP_COLUMNS: &str = "id, portal_id, user, host, created_at, last_seen_at, expires_at";

/// The per-request app session lookup (a literal so it can be a cached statement;
/// the columns are [`APP_COLUMNS`], checked by a test).
const APP_BY_TOKEN: &str = "SELECT id, portal_id, user, host, created_at, last_seen_at, expires_at \
     FROM app_sessions WHERE token_hash = ?1 AND expires_at > ?2";

/// The portal session of an app session, per request (columns: [`PORTAL_COLUMNS`]).
const PORTAL_BY_ID: &str = "SELECT id, user, created_at, last_seen_at, expires_at, last_uv, signed_in_with, \
     client FROM portal_sessions WHERE id = ?1 AND expires_at > ?2";

fn app_row(r: &Row<'_>) -> rusqlite::Result<AppSession> {
    Ok(AppSession {
        id: r.get(0)?,
        portal_id: r.get(1)?,
        user: r.get(2)?,
        host: r.get(3)?,
        created_at: r.get(4)?,
        last_seen_at: r.get(5)?,
        expires_at: r.get(6)?,
    })
}

/// The standing of the credentials portal session `portal_id` rests on.
fn standings(conn: &Connection, portal_id: &str) -> Result<Vec<CredentialStanding>, StoreError> {
    let mut stmt = conn.prepare_cached(STANDING_BY_PORTAL)?;
    let rows = stmt
        .query_map([portal_id], standing_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = rows
        .into_iter()
        .map(|(mut c, attestation)| {
            c.attestation = from_json_opt(attestation)?;
            Ok(c)
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    order::standings(&mut out);
    Ok(out)
}

/// Drop every record whose absolute expiry has passed.
fn sweep(conn: &Connection, clock: &dyn Clock) -> Result<(), StoreError> {
    let now = clock.now();
    conn.execute("DELETE FROM portal_sessions WHERE expires_at <= ?1", [now])?;
    conn.execute("DELETE FROM app_sessions WHERE expires_at <= ?1", [now])?;
    conn.execute("DELETE FROM invites WHERE expires_at <= ?1", [now])?;
    tokens::sweep(conn, now)?;
    conn.execute(
        "DELETE FROM once_items WHERE expires_at_ms <= ?1",
        [clock.now_ms()],
    )?;
    Ok(())
}

/// The grants of one app session, oldest first.
fn grants_in(conn: &Connection, app_id: &str) -> Result<Vec<Grant>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT rule, verification FROM grants WHERE app_id = ?1 ORDER BY seq")?;
    let raw = stmt
        .query_map([app_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_iter()
        .map(|(rule, v)| {
            Ok(Grant {
                rule,
                verification: from_json(&v)?,
            })
        })
        .collect()
}

/// End portal sessions (and, by cascade, their app sessions and grants).
fn end_portal_sessions(conn: &Connection, where_sql: &str, arg: &str) -> Result<u64, StoreError> {
    let n = conn.execute(
        &format!("DELETE FROM portal_sessions WHERE {where_sql}"),
        [arg],
    )?;
    Ok(n as u64)
}

/// End every portal session any ceremony with credential `id` touched.
fn end_sessions_of_credential(conn: &Connection, id: &str) -> Result<u64, StoreError> {
    end_portal_sessions(
        conn,
        "id IN (SELECT portal_id FROM session_credentials WHERE credential_id = ?1)",
        id,
    )
}

fn note_credential(conn: &Connection, portal_id: &str, credential: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR IGNORE INTO session_credentials (portal_id, credential_id) VALUES (?1, ?2)",
        params![portal_id, credential],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_lookups_select_the_mapped_columns() {
        assert!(APP_BY_TOKEN.starts_with(&format!("SELECT {APP_COLUMNS} FROM app_sessions ")));
        assert!(
            PORTAL_BY_ID.starts_with(&format!("SELECT {PORTAL_COLUMNS} FROM portal_sessions "))
        );
    }
}
