//! Client tokens in SQLite: the `tokens` table (schema step [`SCHEMA`]) and the
//! statements the [`super::SqliteStore`]'s `TokenStore` methods run for them.
//!
//! A row is keyed by the public id and by the secret's hash (both unique); its
//! rules and the minting ceremony are JSON. Rows past `expires_at` are never
//! returned, and swept with the other expired records.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::client_token::ClientToken;
use crate::model::Timestamp;
use crate::store::codec::{from_json, to_json};
use crate::store::{StoreError, TokenStore, order};

/// The schema step that adds the table.
pub(super) const SCHEMA: &str = "
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        user TEXT NOT NULL,
        label TEXT NOT NULL,
        rules TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        credential_id TEXT NOT NULL,
        verification TEXT NOT NULL
    );
    CREATE INDEX tokens_user ON tokens(user);
    CREATE INDEX tokens_credential ON tokens(credential_id);
    ";

const COLUMNS: &str = "id, user, label, rules, created_at, expires_at, verification";

/// A row as read, its JSON columns (`rules`, `verification`) still to decode.
struct RawToken {
    id: String,
    user: String,
    label: String,
    rules: String,
    created_at: i64,
    expires_at: i64,
    verification: String,
}

fn row(r: &Row<'_>) -> rusqlite::Result<RawToken> {
    Ok(RawToken {
        id: r.get(0)?,
        user: r.get(1)?,
        label: r.get(2)?,
        rules: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        verification: r.get(6)?,
    })
}

fn finish(raw: RawToken) -> Result<ClientToken, StoreError> {
    Ok(ClientToken {
        id: raw.id,
        user: raw.user,
        label: raw.label,
        rules: from_json(&raw.rules)?,
        created_at: raw.created_at,
        expires_at: raw.expires_at,
        verification: from_json(&raw.verification)?,
    })
}

/// Store `t` under `token_hash`, unless it has expired by `now`.
pub(super) fn add(
    conn: &Connection,
    token_hash: &str,
    t: &ClientToken,
    now: Timestamp,
) -> Result<(), StoreError> {
    if t.expires_at <= now {
        return Ok(());
    }
    conn.execute(
        &format!(
            "INSERT INTO tokens (token_hash, credential_id, {COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ),
        params![
            token_hash,
            t.verification.credential_id,
            t.id,
            t.user,
            t.label,
            to_json(&t.rules)?,
            t.created_at,
            t.expires_at,
            to_json(&t.verification)?,
        ],
    )?;
    Ok(())
}

pub(super) fn by_hash(
    conn: &Connection,
    token_hash: &str,
    now: Timestamp,
) -> Result<Option<ClientToken>, StoreError> {
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tokens WHERE token_hash = ?1 AND expires_at > ?2"
        ))
        .and_then(|mut st| st.query_row(params![token_hash, now], row).optional())?;
    raw.map(finish).transpose()
}

pub(super) fn list(
    conn: &Connection,
    user: Option<&str>,
    now: Timestamp,
) -> Result<Vec<ClientToken>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM tokens WHERE (?1 IS NULL OR user = ?1) AND expires_at > ?2"
    ))?;
    let rows = stmt
        .query_map(params![user, now], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = rows
        .into_iter()
        .map(finish)
        .collect::<Result<Vec<_>, _>>()?;
    order::tokens(&mut out);
    Ok(out)
}

/// Delete live tokens where `column = value`; returns how many were live.
pub(super) fn remove(
    conn: &Connection,
    column: Column,
    value: &str,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let n = conn.execute(
        &format!(
            "DELETE FROM tokens WHERE {} = ?1 AND expires_at > ?2",
            column.name()
        ),
        params![value, now],
    )?;
    Ok(n as u64)
}

/// The columns tokens are removed by.
#[derive(Debug, Clone, Copy)]
pub(super) enum Column {
    Id,
    User,
    Credential,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::Id => "id",
            Column::User => "user",
            Column::Credential => "credential_id",
        }
    }
}

/// Drop tokens past their expiry.
pub(super) fn sweep(conn: &Connection, now: Timestamp) -> Result<(), StoreError> {
    conn.execute("DELETE FROM tokens WHERE expires_at <= ?1", [now])?;
    Ok(())
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn add_token(&self, token_hash: &str, token: &ClientToken) -> Result<(), StoreError> {
        let (h, t) = (token_hash.to_string(), token.clone());
        self.run(move |conn, clock| {
            super::sweep(conn, clock)?;
            add(conn, &h, &t, clock.now())
        })
        .await
    }

    async fn token(&self, token_hash: &str) -> Result<Option<ClientToken>, StoreError> {
        let h = token_hash.to_string();
        self.run(move |conn, clock| by_hash(conn, &h, clock.now()))
            .await
    }

    async fn tokens(&self, user: Option<&str>) -> Result<Vec<ClientToken>, StoreError> {
        let user = user.map(str::to_string);
        self.run(move |conn, clock| list(conn, user.as_deref(), clock.now()))
            .await
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.run(move |conn, clock| Ok(remove(conn, Column::Id, &id, clock.now())? > 0))
            .await
    }

    async fn revoke_user_tokens(&self, user: &str) -> Result<u64, StoreError> {
        let user = user.to_string();
        self.run(move |conn, clock| remove(conn, Column::User, &user, clock.now()))
            .await
    }
}
