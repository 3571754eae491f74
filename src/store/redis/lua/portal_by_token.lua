-- ARGV: prefix, token hash. Returns data, seen, uv or false.
local id = redis.call('GET', P .. 'ptok:' .. ARGV[2])
if not id then return false end
local f = redis.call('HMGET', P .. 'portal:' .. id, 'data', 'seen', 'uv')
if not f[1] then return false end
return {f[1], f[2] or '0', f[3] or ''}
