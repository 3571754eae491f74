-- ARGV: prefix, id, counter, bs, last_used.
local k = P .. 'cred:' .. ARGV[2]
local stored = redis.call('HGET', k, 'counter')
if not stored then return 'missing' end
stored = tonumber(stored)
local new = tonumber(ARGV[3])
if new > stored or (new == 0 and stored == 0) then
  redis.call('HSET', k, 'counter', ARGV[3], 'bs', ARGV[4], 'last_used', ARGV[5])
  return 'accepted'
end
-- A possible clone: flag it and end every session it touched.
redis.call('HSET', k, 'flagged', '1')
end_indexed_sessions(ARGV[2])
return 'regressed'
