-- ARGV: prefix, id, label.
local k = P .. 'cred:' .. ARGV[2]
if redis.call('EXISTS', k) == 0 then return 0 end
redis.call('HSET', k, 'label', ARGV[3])
return 1
