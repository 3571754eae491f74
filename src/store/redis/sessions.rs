//! Portal and app sessions and their grants in Redis: the `SessionStore`
//! methods of [`super::RedisStore`] (the credential → session index is kept
//! by the `lua/prelude.lua` helpers the scripts call).

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{RedisStore, app_from, portal_from, rows, standings_from};
use crate::model::{AppSession, AppView, Grant, PortalSession, Timestamp, Verification};
use crate::store::codec::{corrupt, from_json, to_json};
use crate::store::{SessionStore, StoreError, order};

#[async_trait]
impl SessionStore for RedisStore {
    async fn add_portal_session(
        &self,
        token_hash: &str,
        session: &PortalSession,
    ) -> Result<(), StoreError> {
        let data = to_json(session)?;
        let uv = session.last_uv.as_ref().map(to_json).transpose()?;
        let (seen, exp) = (
            session.last_seen_at.to_string(),
            session.expires_at.to_string(),
        );
        let mut args: Vec<&str> = vec![
            &session.id,
            token_hash,
            &session.user,
            &data,
            &seen,
            uv.as_deref().unwrap_or_default(),
            &exp,
        ];
        // The credentials it rests on: revoking or flagging one ends it.
        args.extend(session.signed_in_with.as_deref());
        args.extend(session.last_uv.as_ref().map(|v| v.credential_id.as_str()));
        let _: i64 = self.eval(&self.scripts.add_portal, &args).await?;
        Ok(())
    }

    async fn portal_session(&self, token_hash: &str) -> Result<Option<PortalSession>, StoreError> {
        let f: Option<Vec<String>> = self
            .eval(&self.scripts.portal_by_token, &[token_hash])
            .await?;
        match f.as_deref() {
            Some([data, seen, uv]) => portal_from(data, seen, uv).map(Some),
            Some(_) => Err(corrupt("portal session: wrong number of fields")),
            None => Ok(None),
        }
    }

    async fn rotate_portal_session(
        &self,
        old_token_hash: &str,
        new_token_hash: &str,
        last_uv: Option<&Verification>,
    ) -> Result<Option<PortalSession>, StoreError> {
        let uv = last_uv.map(to_json).transpose()?;
        let cred = last_uv
            .map(|v| v.credential_id.as_str())
            .unwrap_or_default();
        let f: Option<Vec<String>> = self
            .eval(
                &self.scripts.rotate_portal,
                &[
                    old_token_hash,
                    new_token_hash,
                    uv.as_deref().unwrap_or_default(),
                    cred,
                ],
            )
            .await?;
        match f.as_deref() {
            Some([data, seen, uv]) => portal_from(data, seen, uv).map(Some),
            Some(_) => Err(corrupt("portal session: wrong number of fields")),
            None => Ok(None),
        }
    }

    async fn touch_portal_session(&self, id: &str, now: Timestamp) -> Result<(), StoreError> {
        self.touch(&format!("portal:{id}"), now).await
    }

    async fn add_app_session(
        &self,
        token_hash: &str,
        session: &AppSession,
        grants: &[Grant],
    ) -> Result<(), StoreError> {
        let data = to_json(session)?;
        let grants_json = to_json(&grants)?;
        let (seen, exp) = (
            session.last_seen_at.to_string(),
            session.expires_at.to_string(),
        );
        let mut args: Vec<&str> = vec![
            &session.id,
            token_hash,
            &session.portal_id,
            &data,
            &seen,
            &grants_json,
            &exp,
        ];
        args.extend(grants.iter().map(|g| g.verification.credential_id.as_str()));
        let _: i64 = self.eval(&self.scripts.add_app, &args).await?;
        Ok(())
    }

    async fn app_session(&self, token_hash: &str) -> Result<Option<AppView>, StoreError> {
        let f: Option<Vec<String>> = self.eval(&self.scripts.app_view, &[token_hash]).await?;
        match f.as_deref() {
            Some([adata, aseen, grants, pdata, pseen, uv, rest @ ..]) => Ok(Some(AppView {
                app: app_from(adata, aseen)?,
                portal: portal_from(pdata, pseen, uv)?,
                grants: from_json(grants)?,
                credentials: standings_from(rest)?,
            })),
            Some(_) => Err(corrupt("app session: wrong number of fields")),
            None => Ok(None),
        }
    }

    async fn touch_app_session(&self, id: &str, now: Timestamp) -> Result<(), StoreError> {
        self.touch(&format!("app:{id}"), now).await
    }

    async fn remove_app_session(&self, id: &str) -> Result<(), StoreError> {
        let _: i64 = self.eval(&self.scripts.remove_app, &[id]).await?;
        Ok(())
    }

    async fn grants_of(&self, app_id: &str) -> Result<Vec<Grant>, StoreError> {
        let key = self.key("app", app_id);
        let grants: Option<String> = self
            .with(move |mut c| async move { c.hget(key, "grants").await })
            .await?;
        grants.map_or(Ok(Vec::new()), |g| from_json(&g))
    }

    async fn portal_sessions(&self, user: Option<&str>) -> Result<Vec<PortalSession>, StoreError> {
        let set = match user {
            Some(u) => format!("portals:user:{u}"),
            None => "portals".to_string(),
        };
        let flat: Vec<String> = self.eval(&self.scripts.list_portals, &[&set]).await?;
        let mut out = rows(flat, 3)
            .iter()
            .map(|r| match r.as_slice() {
                [data, seen, uv] => portal_from(data, seen, uv),
                _ => Err(corrupt("portal session: wrong number of fields")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let now = self.clock.now();
        out.retain(|p| p.expires_at > now);
        order::portal_sessions(&mut out);
        Ok(out)
    }

    async fn app_sessions(&self, portal_id: &str) -> Result<Vec<AppSession>, StoreError> {
        let flat: Vec<String> = self.eval(&self.scripts.list_apps, &[portal_id]).await?;
        let mut out = rows(flat, 2)
            .iter()
            .map(|r| match r.as_slice() {
                [data, seen] => app_from(data, seen),
                _ => Err(corrupt("app session: wrong number of fields")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        order::app_sessions(&mut out);
        Ok(out)
    }

    async fn revoke_session(&self, id: &str) -> Result<bool, StoreError> {
        let n: i64 = self
            .eval_durable(&self.scripts.revoke_session, &[id], |_| true)
            .await?;
        Ok(n == 1)
    }

    async fn revoke_user_sessions(&self, user: &str) -> Result<u64, StoreError> {
        let n: i64 = self
            .eval_durable(&self.scripts.revoke_user, &[user], |_| true)
            .await?;
        Ok(n.max(0) as u64)
    }
}

impl RedisStore {
    /// Move the idle clock of the session record under `key` (`portal:ID` or `app:ID`).
    async fn touch(&self, key: &str, now: Timestamp) -> Result<(), StoreError> {
        let _: i64 = self
            .eval(&self.scripts.touch, &[key, &now.to_string()])
            .await?;
        Ok(())
    }
}
