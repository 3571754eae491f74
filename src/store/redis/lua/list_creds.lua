-- ARGV: prefix, set (after the prefix). Six fields per credential:
-- data, counter, bs, last_used, label, flagged.
local set = P .. ARGV[2]
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', set)) do
  local f = redis.call('HMGET', P .. 'cred:' .. id, 'data', 'counter', 'bs', 'last_used', 'label', 'flagged')
  if f[1] then
    for i = 1, 6 do table.insert(out, f[i] or '') end
  else
    redis.call('SREM', set, id)
  end
end
return out
