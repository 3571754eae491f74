-- Shared by every script of the Redis store (the Rust side prepends this
-- file to each script at compile time). ARGV[1] is the key prefix.
local P = ARGV[1]

local function now()
  return tonumber(redis.call('TIME')[1])
end

-- Let an index key live at least until `at`.
local function extend(k, at)
  local ttl = redis.call('TTL', k)
  if ttl == -1 or now() + ttl < at then redis.call('EXPIREAT', k, at) end
end

-- End one portal session and its app sessions; 1 if it existed.
local function end_portal(id)
  local k = P .. 'portal:' .. id
  local f = redis.call('HMGET', k, 'tok', 'user')
  redis.call('SREM', P .. 'portals', id)
  if not f[1] then return 0 end
  redis.call('DEL', P .. 'ptok:' .. f[1], k)
  local apps = P .. 'apps:' .. id
  for _, a in ipairs(redis.call('SMEMBERS', apps)) do
    local ak = P .. 'app:' .. a
    local t = redis.call('HGET', ak, 'tok')
    if t then redis.call('DEL', P .. 'atok:' .. t) end
    redis.call('DEL', ak)
  end
  redis.call('DEL', apps)
  if f[2] then redis.call('SREM', P .. 'portals:user:' .. f[2], id) end
  return 1
end

-- The credential -> session index (`P credsess:CRED`): the portal sessions
-- whose ceremonies used a credential. Only these two functions touch it.

-- Note that portal session `portal` (living until `exp`) rests on credential `cred`.
local function index_session(cred, portal, exp)
  if not cred or cred == '' then return end
  local idx = P .. 'credsess:' .. cred
  redis.call('SADD', idx, portal)
  extend(idx, exp)
end

-- End every portal session indexed under credential `cred`, and the index.
local function end_indexed_sessions(cred)
  local idx = P .. 'credsess:' .. cred
  for _, pid in ipairs(redis.call('SMEMBERS', idx)) do end_portal(pid) end
  redis.call('DEL', idx)
end

-- End one client token by id; 1 if it was live.
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

-- End every token whose id is in `set`, and the set; returns how many were live.
local function end_tokens_in(set)
  local n = 0
  for _, id in ipairs(redis.call('SMEMBERS', set)) do n = n + end_token(id) end
  redis.call('DEL', set)
  return n
end
