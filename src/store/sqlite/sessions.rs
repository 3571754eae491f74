//! Portal and app sessions and their grants in SQLite: the `SessionStore`
//! methods of [`super::SqliteStore`] (the credential → session index is
//! written by `note_credential`, ended by `end_sessions_of_credential`).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{
    APP_BY_TOKEN, APP_COLUMNS, PORTAL_BY_ID, PORTAL_COLUMNS, SqliteStore, app_row,
    end_portal_sessions, finish_portal, grants_in, note_credential, portal_row, standings, sweep,
};
use crate::model::{AppSession, AppView, Grant, PortalSession, Timestamp, Verification};
use crate::store::codec::to_json;
use crate::store::{SessionStore, StoreError, order};

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
