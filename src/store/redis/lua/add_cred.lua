-- ARGV: prefix, id, user, data, counter, bs, last_used, label, flagged, standing.
local k = P .. 'cred:' .. ARGV[2]
if redis.call('EXISTS', k) == 1 then return 0 end
redis.call('HSET', k, 'data', ARGV[4], 'counter', ARGV[5], 'bs', ARGV[6], 'last_used', ARGV[7], 'label', ARGV[8], 'flagged', ARGV[9], 'user', ARGV[3], 'standing', ARGV[10])
redis.call('SADD', P .. 'creds', ARGV[2])
redis.call('SADD', P .. 'creds:user:' .. ARGV[3], ARGV[2])
return 1
