-- ARGV: prefix, portal session id. Flat data, seen per live app session.
local set = P .. 'apps:' .. ARGV[2]
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', set)) do
  local f = redis.call('HMGET', P .. 'app:' .. id, 'data', 'seen')
  if f[1] then
    table.insert(out, f[1]); table.insert(out, f[2] or '0')
  else
    redis.call('SREM', set, id)
  end
end
return out
