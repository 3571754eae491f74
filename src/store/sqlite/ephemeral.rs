//! Invites, single-read items and shared counters in SQLite: the `EphemeralStore` methods of [`super::SqliteStore`].

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, sweep};
use crate::model::{Invite, Timestamp};
use crate::store::{EphemeralStore, MAX_ONCE_TTL, StoreError};

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
