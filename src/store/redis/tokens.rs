//! Client tokens in Redis: keys, Lua scripts and the calls the
//! [`super::RedisStore`]'s `TokenStore` methods make for them.
//!
//! | key | type | what |
//! |---|---|---|
//! | `P ttok:HASH` | string | the token (JSON), EXAT its expiry: a lookup is one GET |
//! | `P token:ID` | hash | `hash`, `user`, `cred` (the minting credential), EXAT its expiry |
//! | `P tokens`, `P tokens:user:U`, `P tokcred:CRED` | set | token ids (stale ids pruned on listing) |
//!
//! Every change is one Lua script (`lua/*_token*.lua`), so it is atomic;
//! revoking a credential ends its tokens in the same script (`end_token` and
//! `end_tokens_in` live in `lua/prelude.lua`).

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;

use super::{RedisStore, lua};
use crate::client_token::ClientToken;
use crate::store::codec::{from_json, to_json};
use crate::store::{StoreError, TokenStore, order};

struct Scripts {
    add: Script,
    list: Script,
    revoke: Script,
    revoke_user: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    add: lua!("add_token.lua"),
    list: lua!("list_tokens.lua"),
    revoke: lua!("revoke_token.lua"),
    revoke_user: lua!("revoke_user_tokens.lua"),
});

pub(super) async fn add(
    s: &RedisStore,
    token_hash: &str,
    t: &ClientToken,
) -> Result<(), StoreError> {
    let data = to_json(t)?;
    let exp = t.expires_at.to_string();
    let added: i64 = s
        .eval(
            &SCRIPTS.add,
            &[
                &t.id,
                token_hash,
                &t.user,
                &t.verification.credential_id,
                &data,
                &exp,
            ],
        )
        .await?;
    if added == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

pub(super) async fn by_hash(
    s: &RedisStore,
    token_hash: &str,
) -> Result<Option<ClientToken>, StoreError> {
    let key = s.key("ttok", token_hash);
    let raw: Option<String> = s
        .with(move |mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
        .await?;
    let Some(raw) = raw else { return Ok(None) };
    let t: ClientToken = from_json(&raw)?;
    // Redis expires it natively; judge by the clock as well, as SQLite does.
    Ok(t.is_live(s.clock.now()).then_some(t))
}

pub(super) async fn list(
    s: &RedisStore,
    user: Option<&str>,
) -> Result<Vec<ClientToken>, StoreError> {
    let set = match user {
        Some(u) => format!("tokens:user:{u}"),
        None => "tokens".to_string(),
    };
    let flat: Vec<String> = s.eval(&SCRIPTS.list, &[&set]).await?;
    let now = s.clock.now();
    let mut out = flat
        .iter()
        .map(|d| from_json::<ClientToken>(d))
        .collect::<Result<Vec<_>, _>>()?;
    out.retain(|t| t.is_live(now));
    order::tokens(&mut out);
    Ok(out)
}

pub(super) async fn revoke(s: &RedisStore, id: &str) -> Result<bool, StoreError> {
    let n: i64 = s.eval(&SCRIPTS.revoke, &[id]).await?;
    Ok(n == 1)
}

pub(super) async fn revoke_user(s: &RedisStore, user: &str) -> Result<u64, StoreError> {
    let n: i64 = s.eval(&SCRIPTS.revoke_user, &[user]).await?;
    Ok(n.max(0) as u64)
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn add_token(&self, token_hash: &str, token: &ClientToken) -> Result<(), StoreError> {
        add(self, token_hash, token).await
    }

    async fn token(&self, token_hash: &str) -> Result<Option<ClientToken>, StoreError> {
        by_hash(self, token_hash).await
    }

    async fn tokens(&self, user: Option<&str>) -> Result<Vec<ClientToken>, StoreError> {
        list(self, user).await
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        revoke(self, id).await
    }

    async fn revoke_user_tokens(&self, user: &str) -> Result<u64, StoreError> {
        revoke_user(self, user).await
    }
}
