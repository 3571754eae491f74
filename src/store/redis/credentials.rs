//! Credentials in Redis: the `CredentialStore` methods of [`super::RedisStore`].

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{RedisStore, StandingRecord, credential_from, flag, num, rows};
use crate::model::{Credential, Timestamp};
use crate::store::codec::to_json;
use crate::store::{CounterSwap, CredentialStore, StoreError, order};

#[async_trait]
impl CredentialStore for RedisStore {
    async fn add_credential(&self, cred: &Credential) -> Result<(), StoreError> {
        let data = to_json(cred)?;
        let standing = to_json(&StandingRecord {
            expires_at: cred.expires_at,
            backup_eligible: cred.backup_eligible,
            attestation: cred.attestation.clone(),
        })?;
        let counter = cred.counter.to_string();
        let last_used = cred.last_used_at.map(|t| t.to_string()).unwrap_or_default();
        let added: i64 = self
            .eval(
                &self.scripts.add_cred,
                &[
                    &cred.id,
                    &cred.user,
                    &data,
                    &counter,
                    flag(cred.backup_state),
                    &last_used,
                    &cred.label,
                    flag(cred.flagged),
                    &standing,
                ],
            )
            .await?;
        if added == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn credential(&self, id: &str) -> Result<Option<Credential>, StoreError> {
        let key = self.key("cred", id);
        let f: Vec<Option<String>> = self
            .with(move |mut c| async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg(&["data", "counter", "bs", "last_used", "label", "flagged"])
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if f.first().is_none_or(Option::is_none) {
            return Ok(None);
        }
        let f: Vec<String> = f.into_iter().map(Option::unwrap_or_default).collect();
        credential_from(&f).map(Some)
    }

    async fn credentials(&self, user: Option<&str>) -> Result<Vec<Credential>, StoreError> {
        let set = match user {
            Some(u) => format!("creds:user:{u}"),
            None => "creds".to_string(),
        };
        let flat: Vec<String> = self.eval(&self.scripts.list_creds, &[&set]).await?;
        let mut out = rows(flat, 6)
            .iter()
            .map(|r| credential_from(r))
            .collect::<Result<Vec<_>, _>>()?;
        order::credentials(&mut out);
        Ok(out)
    }

    async fn count_credentials(&self) -> Result<u64, StoreError> {
        let key = format!("{}creds", self.prefix);
        self.with(move |mut c| async move { c.scard(key).await })
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
        let (expected, counter, now) = (expected.to_string(), counter.to_string(), now.to_string());
        let r: String = self
            .eval(
                &self.scripts.set_counter_if,
                &[id, &expected, &counter, flag(backup_state), &now],
            )
            .await?;
        match r.as_str() {
            "set" => Ok(CounterSwap::Set),
            "missing" => Ok(CounterSwap::Missing),
            stored => Ok(CounterSwap::Moved(num(stored)?)),
        }
    }

    async fn flag_credential(&self, id: &str) -> Result<bool, StoreError> {
        // A flag lost in a failover would let a cloned passkey in again.
        let n: i64 = self
            .eval_durable(&self.scripts.flag_credential, &[id], |_| true)
            .await?;
        Ok(n == 1)
    }

    async fn rename_credential(&self, id: &str, label: &str) -> Result<bool, StoreError> {
        let n: i64 = self.eval(&self.scripts.rename_cred, &[id, label]).await?;
        Ok(n == 1)
    }

    async fn revoke_credential(&self, id: &str) -> Result<bool, StoreError> {
        let n: i64 = self
            .eval_durable(&self.scripts.revoke_cred, &[id], |_| true)
            .await?;
        Ok(n == 1)
    }
}
