//! Client tokens in Redis: keys, Lua scripts and the calls the
//! [`super::RedisStore`]'s `Store` methods make for them.
//!
//! | key | type | what |
//! |---|---|---|
//! | `P ttok:HASH` | string | the token (JSON), EXAT its expiry: a lookup is one GET |
//! | `P token:ID` | hash | `hash`, `user`, `cred` (the minting credential), EXAT its expiry |
//! | `P tokens`, `P tokens:user:U`, `P tokcred:CRED` | set | token ids (stale ids pruned on listing) |
//!
//! Every change is one Lua script, so it is atomic; revoking a credential ends
//! its tokens in the same script ([`LUA_END_TOKEN`] is part of every script's prelude).

use std::sync::LazyLock;

use redis::Script;

use super::{RedisStore, script};
use crate::client_token::ClientToken;
use crate::store::StoreError;
use crate::store::codec::{from_json, to_json};

/// Shared Lua: end one token by id; returns 1 if it was live. Needs `P`.
pub(super) const LUA_END_TOKEN: &str = r#"
local function end_token(id)
  local k = P .. 'token:' .. id
  local f = redis.call('HMGET', k, 'hash', 'user', 'cred')
  redis.call('SREM', P .. 'tokens', id)
  if not f[1] then return 0 end
  local live = redis.call('DEL', P .. 'ttok:' .. f[1])
  redis.call('DEL', k)
  if f[2] then redis.call('SREM', P .. 'tokens:user:' .. f[2], id) end
  if f[3] then redis.call('SREM', P .. 'tokcred:' .. f[3], id) end
  return live
end
local function end_tokens_in(set)
  local n = 0
  for _, id in ipairs(redis.call('SMEMBERS', set)) do n = n + end_token(id) end
  redis.call('DEL', set)
  return n
end
"#;

const LUA_ADD: &str = r#"
local id, hash, user, cred, data, exp = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
if exp <= now() then return 1 end
local k = P .. 'token:' .. id
if redis.call('EXISTS', k) == 1 or redis.call('EXISTS', P .. 'ttok:' .. hash) == 1 then return 0 end
redis.call('SET', P .. 'ttok:' .. hash, data, 'EXAT', exp)
redis.call('HSET', k, 'hash', hash, 'user', user, 'cred', cred)
redis.call('EXPIREAT', k, exp)
redis.call('SADD', P .. 'tokens', id)
redis.call('SADD', P .. 'tokens:user:' .. user, id)
extend(P .. 'tokens:user:' .. user, exp)
redis.call('SADD', P .. 'tokcred:' .. cred, id)
extend(P .. 'tokcred:' .. cred, exp)
return 1
"#;

const LUA_LIST: &str = r#"
local set = P .. ARGV[2]
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', set)) do
  local h = redis.call('HGET', P .. 'token:' .. id, 'hash')
  local data = h and redis.call('GET', P .. 'ttok:' .. h)
  if data then table.insert(out, data) else redis.call('SREM', set, id) end
end
return out
"#;

const LUA_REVOKE: &str = r#"
return end_token(ARGV[2])
"#;

const LUA_REVOKE_USER: &str = r#"
return end_tokens_in(P .. 'tokens:user:' .. ARGV[2])
"#;

/// Lua: end every token minted with credential `id` (part of revoking it). Needs `id`.
pub(super) const LUA_END_CREDENTIAL_TOKENS: &str = r#"
end_tokens_in(P .. 'tokcred:' .. id)
"#;

struct Scripts {
    add: Script,
    list: Script,
    revoke: Script,
    revoke_user: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    add: script(LUA_ADD),
    list: script(LUA_LIST),
    revoke: script(LUA_REVOKE),
    revoke_user: script(LUA_REVOKE_USER),
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
    out.sort_by(|a, b| (&a.user, a.created_at, &a.id).cmp(&(&b.user, b.created_at, &b.id)));
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
