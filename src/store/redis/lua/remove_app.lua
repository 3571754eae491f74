-- ARGV: prefix, app session id.
local k = P .. 'app:' .. ARGV[2]
local f = redis.call('HMGET', k, 'tok', 'portal')
if f[1] then redis.call('DEL', P .. 'atok:' .. f[1]) end
if f[2] then redis.call('SREM', P .. 'apps:' .. f[2], ARGV[2]) end
return redis.call('DEL', k)
