-- ARGV: prefix, set (after the prefix). The JSON of every live token in it.
local set = P .. ARGV[2]
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', set)) do
  local h = redis.call('HGET', P .. 'token:' .. id, 'hash')
  local data = h and redis.call('GET', P .. 'ttok:' .. h)
  if data then table.insert(out, data) else redis.call('SREM', set, id) end
end
return out
