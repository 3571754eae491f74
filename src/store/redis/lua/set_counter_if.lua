-- ARGV: prefix, id, expected counter, new counter, bs, last_used.
-- 'set' when the stored counter was the expected one (now the new one),
-- 'missing' without the credential, else the stored counter (nothing written).
local k = P .. 'cred:' .. ARGV[2]
local stored = redis.call('HGET', k, 'counter')
if not stored then return 'missing' end
if tonumber(stored) ~= tonumber(ARGV[3]) then return stored end
redis.call('HSET', k, 'counter', ARGV[4], 'bs', ARGV[5], 'last_used', ARGV[6])
return 'set'
