-- ARGV: prefix, set (after the prefix). Flat data, seen, uv per live session;
-- ids of sessions gone are pruned from the set.
local set = P .. ARGV[2]
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', set)) do
  local f = redis.call('HMGET', P .. 'portal:' .. id, 'data', 'seen', 'uv')
  if f[1] then
    table.insert(out, f[1]); table.insert(out, f[2] or '0'); table.insert(out, f[3] or '')
  else
    redis.call('SREM', set, id)
  end
end
return out
