-- ARGV: prefix, key (after the prefix), time. Moves `seen` forward only.
local k, t = P .. ARGV[2], tonumber(ARGV[3])
local s = redis.call('HGET', k, 'seen')
if s and tonumber(s) < t then redis.call('HSET', k, 'seen', t) end
return 1
