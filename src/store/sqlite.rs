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
//! Client tokens live in [`tokens`].

mod tokens;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::codec::{corrupt, from_json, from_json_opt, to_json, unavailable};
use super::{
    CounterSwap, CredentialStore, EphemeralStore, MAX_ONCE_TTL, SessionStore, StoreError,
    TokenStore, order,
};
use crate::clock::{Clock, SystemClock};
use crate::model::{
    AppSession, AppView, Credential, CredentialStanding, Grant, Invite, PortalSession, Timestamp,
    Verification,
};
use crate::token::ClientToken;

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

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn add_credential(&self, cred: &Credential) -> Result<(), StoreError> {
        let c = cred.clone();
        self.run(move |conn, _| {
            conn.execute(
                &format!(
                    "INSERT INTO credentials ({CREDENTIAL_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ),
                params![
                    c.id,
                    c.user,
                    c.label,
                    c.passkey,
                    c.counter,
                    c.aaguid.to_string(),
                    c.attestation.as_ref().map(to_json).transpose()?,
                    c.backup_eligible,
                    c.backup_state,
                    c.created_at,
                    c.last_used_at,
                    c.expires_at,
                    c.flagged,
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn credential(&self, id: &str) -> Result<Option<Credential>, StoreError> {
        let id = id.to_string();
        self.run(move |conn, _| {
            let row = conn
                .query_row(
                    &format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE id = ?1"),
                    [id],
                    credential_row,
                )
                .optional()?;
            row.map(finish_credential).transpose()
        })
        .await
    }

    async fn credentials(&self, user: Option<&str>) -> Result<Vec<Credential>, StoreError> {
        let user = user.map(str::to_string);
        self.run(move |conn, _| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials \
                     WHERE ?1 IS NULL OR user = ?1"
            ))?;
            let rows = stmt
                .query_map([user], credential_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = rows
                .into_iter()
                .map(finish_credential)
                .collect::<Result<Vec<_>, _>>()?;
            order::credentials(&mut out);
            Ok(out)
        })
        .await
    }

    async fn count_credentials(&self) -> Result<u64, StoreError> {
        self.run(|conn, _| {
            let n: i64 = conn.query_row("SELECT count(*) FROM credentials", [], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        })
        .await
    }

    async fn set_counter_if(
        &self,
        id: &str,
        expected: u32,
        counter: u32,
        backup_state: bool,
        now: Timestamp,
    ) -> Result<CounterSwap, StoreError> {
        let id = id.to_string();
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE credentials SET counter = ?3, backup_state = ?4, last_used_at = ?5 \
                 WHERE id = ?1 AND counter = ?2",
                params![id, expected, counter, backup_state, now],
            )?;
            let swap = if n > 0 {
                CounterSwap::Set
            } else {
                tx.query_row(
                    "SELECT counter FROM credentials WHERE id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .optional()?
                .map_or(CounterSwap::Missing, CounterSwap::Moved)
            };
            tx.commit()?;
            Ok(swap)
        })
        .await
    }

    async fn flag_credential(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute("UPDATE credentials SET flagged = 1 WHERE id = ?1", [&id])?;
            if n > 0 {
                end_sessions_of_credential(&tx, &id)?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn rename_credential(&self, id: &str, label: &str) -> Result<bool, StoreError> {
        let (id, label) = (id.to_string(), label.to_string());
        self.run(move |conn, _| {
            let n = conn.execute(
                "UPDATE credentials SET label = ?2 WHERE id = ?1",
                params![id, label],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn revoke_credential(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.run(move |conn, clock| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute("DELETE FROM credentials WHERE id = ?1", [&id])?;
            end_sessions_of_credential(&tx, &id)?;
            tokens::remove(&tx, tokens::Column::Credential, &id, clock.now())?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn add_portal_session(
        &self,
        token_hash: &str,
        session: &PortalSession,
    ) -> Result<(), StoreError> {
        let (h, s) = (token_hash.to_string(), session.clone());
        self.run(move |conn, clock| {
            let uv = s.last_uv.as_ref().map(to_json).transpose()?;
            let client = s.client.as_ref().map(to_json).transpose()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            sweep(&tx, clock)?;
            tx.execute(
                &format!(
                    "INSERT INTO portal_sessions (token_hash, {PORTAL_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    h,
                    s.id,
                    s.user,
                    s.created_at,
                    s.last_seen_at,
                    s.expires_at,
                    uv,
                    s.signed_in_with,
                    client,
                ],
            )?;
            let uv_cred = s.last_uv.as_ref().map(|v| &v.credential_id);
            for cred in s.signed_in_with.iter().chain(uv_cred) {
                note_credential(&tx, &s.id, cred)?;
            }
            Ok(tx.commit()?)
        })
        .await
    }

    async fn portal_session(&self, token_hash: &str) -> Result<Option<PortalSession>, StoreError> {
        let h = token_hash.to_string();
        self.run(move |conn, clock| {
            let row = conn
                .query_row(
                    &format!(
                        "SELECT {PORTAL_COLUMNS} FROM portal_sessions \
                         WHERE token_hash = ?1 AND expires_at > ?2"
                    ),
                    params![h, clock.now()],
                    portal_row,
                )
                .optional()?;
            row.map(finish_portal).transpose()
        })
        .await
    }

    async fn rotate_portal_session(
        &self,
        old_token_hash: &str,
        new_token_hash: &str,
        last_uv: Option<&Verification>,
    ) -> Result<Option<PortalSession>, StoreError> {
        let (old, new) = (old_token_hash.to_string(), new_token_hash.to_string());
        let uv = last_uv.cloned();
        self.run(move |conn, clock| {
            let uv_json = uv.as_ref().map(to_json).transpose()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                ?;
            let row = tx
                .query_row(
                    &format!(
                        "UPDATE portal_sessions SET token_hash = ?2, last_uv = coalesce(?3, last_uv) \
                         WHERE token_hash = ?1 AND expires_at > ?4 RETURNING {PORTAL_COLUMNS}"
                    ),
                    params![old, new, uv_json, clock.now()],
                    portal_row,
                )
                .optional()
                ?;
            let Some(row) = row else {
                return Ok(None);
            };
            let session = finish_portal(row)?;
            if let Some(v) = &uv {
                note_credential(&tx, &session.id, &v.credential_id)?;
            }
            tx.commit()?;
            Ok(Some(session))
        })
        .await
    }

    async fn touch_portal_session(&self, id: &str, now: Timestamp) -> Result<(), StoreError> {
        let id = id.to_string();
        self.run(move |conn, _| {
            conn.execute(
                "UPDATE portal_sessions SET last_seen_at = max(last_seen_at, ?2) WHERE id = ?1",
                params![id, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn add_app_session(
        &self,
        token_hash: &str,
        session: &AppSession,
        grants: &[Grant],
    ) -> Result<(), StoreError> {
        let (h, s, grants) = (token_hash.to_string(), session.clone(), grants.to_vec());
        self.run(move |conn, clock| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let portal_exists = tx
                .query_row(
                    "SELECT 1 FROM portal_sessions WHERE id = ?1 AND expires_at > ?2",
                    params![s.portal_id, clock.now()],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !portal_exists || s.expires_at <= clock.now() {
                return Ok(());
            }
            tx.execute(
                &format!(
                    "INSERT INTO app_sessions (token_hash, {APP_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    h,
                    s.id,
                    s.portal_id,
                    s.user,
                    s.host,
                    s.created_at,
                    s.last_seen_at,
                    s.expires_at
                ],
            )?;
            for g in &grants {
                tx.execute(
                    "INSERT INTO grants (app_id, rule, verification) VALUES (?1, ?2, ?3)",
                    params![s.id, g.rule, to_json(&g.verification)?],
                )?;
                note_credential(&tx, &s.portal_id, &g.verification.credential_id)?;
            }
            Ok(tx.commit()?)
        })
        .await
    }

    async fn app_session(&self, token_hash: &str) -> Result<Option<AppView>, StoreError> {
        let h = token_hash.to_string();
        self.run(move |conn, clock| {
            let now = clock.now();
            // One read transaction: the app, its portal and its grants as of one moment.
            let tx = conn.transaction()?;
            // Cached statements: this runs on every request to a passkey
            // rule, and parsing the SQL each time cost more than running it.
            let app = tx
                .prepare_cached(APP_BY_TOKEN)
                .and_then(|mut st| st.query_row(params![h, now], app_row).optional())?;
            let Some(app) = app else { return Ok(None) };
            let portal = tx.prepare_cached(PORTAL_BY_ID).and_then(|mut st| {
                st.query_row(params![app.portal_id, now], portal_row)
                    .optional()
            })?;
            let Some(portal) = portal else {
                return Ok(None);
            };
            let portal = finish_portal(portal)?;
            let grants = grants_in(&tx, &app.id)?;
            let credentials = standings(&tx, &portal.id)?;
            tx.commit()?;
            Ok(Some(AppView {
                app,
                portal,
                grants,
                credentials,
            }))
        })
        .await
    }

    async fn touch_app_session(&self, id: &str, now: Timestamp) -> Result<(), StoreError> {
        let id = id.to_string();
        self.run(move |conn, _| {
            conn.execute(
                "UPDATE app_sessions SET last_seen_at = max(last_seen_at, ?2) WHERE id = ?1",
                params![id, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn remove_app_session(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.run(move |conn, _| {
            conn.execute("DELETE FROM app_sessions WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    async fn grants_of(&self, app_id: &str) -> Result<Vec<Grant>, StoreError> {
        let id = app_id.to_string();
        self.run(move |conn, _| grants_in(conn, &id)).await
    }

    async fn portal_sessions(&self, user: Option<&str>) -> Result<Vec<PortalSession>, StoreError> {
        let user = user.map(str::to_string);
        self.run(move |conn, clock| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {PORTAL_COLUMNS} FROM portal_sessions \
                     WHERE (?1 IS NULL OR user = ?1) AND expires_at > ?2"
            ))?;
            let rows = stmt
                .query_map(params![user, clock.now()], portal_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = rows
                .into_iter()
                .map(finish_portal)
                .collect::<Result<Vec<_>, _>>()?;
            order::portal_sessions(&mut out);
            Ok(out)
        })
        .await
    }

    async fn app_sessions(&self, portal_id: &str) -> Result<Vec<AppSession>, StoreError> {
        let id = portal_id.to_string();
        self.run(move |conn, clock| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {APP_COLUMNS} FROM app_sessions \
                     WHERE portal_id = ?1 AND expires_at > ?2"
            ))?;
            let mut rows = stmt
                .query_map(params![id, clock.now()], app_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            order::app_sessions(&mut rows);
            Ok(rows)
        })
        .await
    }

    async fn revoke_session(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.run(move |conn, _| Ok(end_portal_sessions(conn, "id = ?1", &id)? > 0))
            .await
    }

    async fn revoke_user_sessions(&self, user: &str) -> Result<u64, StoreError> {
        let user = user.to_string();
        self.run(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = end_portal_sessions(&tx, "user = ?1", &user)?;
            // App sessions always belong to a portal session of the same user; be thorough anyway.
            tx.execute("DELETE FROM app_sessions WHERE user = ?1", [&user])?;
            tx.commit()?;
            Ok(n)
        })
        .await
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn add_token(&self, token_hash: &str, token: &ClientToken) -> Result<(), StoreError> {
        let (h, t) = (token_hash.to_string(), token.clone());
        self.run(move |conn, clock| {
            sweep(conn, clock)?;
            tokens::add(conn, &h, &t, clock.now())
        })
        .await
    }

    async fn token(&self, token_hash: &str) -> Result<Option<ClientToken>, StoreError> {
        let h = token_hash.to_string();
        self.run(move |conn, clock| tokens::by_hash(conn, &h, clock.now()))
            .await
    }

    async fn tokens(&self, user: Option<&str>) -> Result<Vec<ClientToken>, StoreError> {
        let user = user.map(str::to_string);
        self.run(move |conn, clock| tokens::list(conn, user.as_deref(), clock.now()))
            .await
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.run(move |conn, clock| {
            Ok(tokens::remove(conn, tokens::Column::Id, &id, clock.now())? > 0)
        })
        .await
    }

    async fn revoke_user_tokens(&self, user: &str) -> Result<u64, StoreError> {
        let user = user.to_string();
        self.run(move |conn, clock| tokens::remove(conn, tokens::Column::User, &user, clock.now()))
            .await
    }
}

#[async_trait]
impl EphemeralStore for SqliteStore {
    async fn add_invite(&self, token_hash: &str, invite: &Invite) -> Result<(), StoreError> {
        let (h, inv) = (token_hash.to_string(), invite.clone());
        self.run(move |conn, clock| {
            sweep(conn, clock)?;
            conn.execute(
                "INSERT INTO invites (token_hash, user, credential_ttl, expires_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    h,
                    inv.user,
                    inv.credential_ttl.map(|t| t.min(i64::MAX as u64) as i64),
                    inv.expires_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn take_invite(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Invite>, StoreError> {
        let h = token_hash.to_string();
        self.run(move |conn, clock| {
            let row = conn
                .query_row(
                    "DELETE FROM invites WHERE token_hash = ?1 \
                     RETURNING user, credential_ttl, expires_at",
                    [h],
                    |r| {
                        Ok(Invite {
                            user: r.get(0)?,
                            credential_ttl: r.get::<_, Option<i64>>(1)?.map(|t| t.max(0) as u64),
                            expires_at: r.get(2)?,
                        })
                    },
                )
                .optional()?;
            // Judged by the caller's clock and by the wall clock (as Redis's TTL would).
            Ok(row.filter(|i| now < i.expires_at && clock.now() < i.expires_at))
        })
        .await
    }

    async fn put_once(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let (key, value) = (key.to_string(), value.to_vec());
        let ttl = ttl.min(MAX_ONCE_TTL);
        let expires = self
            .inner
            .clock
            .now_ms()
            .saturating_add(ttl.as_millis() as i64);
        self.run(move |conn, clock| {
            sweep(conn, clock)?;
            conn.execute(
                "INSERT OR REPLACE INTO once_items (key, value, expires_at_ms) VALUES (?1, ?2, ?3)",
                params![key, value, expires],
            )?;
            Ok(())
        })
        .await
    }

    async fn take_once(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_string();
        self.run(move |conn, clock| {
            let row: Option<(Vec<u8>, i64)> = conn
                .query_row(
                    "DELETE FROM once_items WHERE key = ?1 RETURNING value, expires_at_ms",
                    [key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(row.filter(|(_, exp)| clock.now_ms() < *exp).map(|(v, _)| v))
        })
        .await
    }
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
