//! Credentials in SQLite: the `CredentialStore` methods of [`super::SqliteStore`].

use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{
    CREDENTIAL_COLUMNS, SqliteStore, credential_row, end_sessions_of_credential, finish_credential,
    tokens,
};
use crate::model::{Credential, Timestamp};
use crate::store::codec::to_json;
use crate::store::{CounterSwap, CredentialStore, StoreError, order};

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
