//! Invites, single-read items and shared counters in Redis: the `EphemeralStore` methods of [`super::RedisStore`].

use std::time::Duration;

use async_trait::async_trait;
use redis::{AsyncCommands, Script};

use super::RedisStore;
use crate::model::{Invite, Timestamp};
use crate::store::codec::{from_json, to_json};
use crate::store::{EphemeralStore, MAX_ONCE_TTL, SharedCount, StoreError};

#[async_trait]
impl EphemeralStore for RedisStore {
    async fn add_invite(&self, token_hash: &str, invite: &Invite) -> Result<(), StoreError> {
        if invite.expires_at <= self.clock.now() {
            return Ok(());
        }
        let key = self.key("invite", token_hash);
        let data = to_json(invite)?;
        let at = invite.expires_at;
        self.with(move |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(data)
                .arg("EXAT")
                .arg(at)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn take_invite(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Invite>, StoreError> {
        let key = self.key("invite", token_hash);
        let raw: Option<String> = self
            .with(move |mut c| async move { c.get_del(key).await })
            .await?;
        match raw {
            None => Ok(None),
            Some(s) => {
                let inv: Invite = from_json(&s)?;
                Ok((now < inv.expires_at).then_some(inv))
            }
        }
    }

    async fn put_once(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let ms = ttl.min(MAX_ONCE_TTL).as_millis() as u64;
        if ms == 0 {
            return Ok(());
        }
        let key = self.key("once", key);
        let value = value.to_vec();
        self.with(move |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn take_once(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key("once", key);
        self.with(move |mut c| async move { c.get_del(key).await })
            .await
    }

    async fn count_shared(
        &self,
        key: &str,
        by: u32,
        window: Duration,
    ) -> Result<Option<SharedCount>, StoreError> {
        let key = self.key("count", key);
        let ms = window.as_millis().max(1) as u64;
        static COUNT: std::sync::LazyLock<Script> =
            std::sync::LazyLock::new(|| Script::new(include_str!("lua/count.lua")));
        let (count, ttl): (u64, i64) =
            self.with(move |mut c| async move {
                COUNT.key(key).arg(by).arg(ms).invoke_async(&mut c).await
            })
            .await?;
        Ok(Some(SharedCount {
            count,
            resets_in: Duration::from_millis(ttl.max(0) as u64),
        }))
    }
}
