-- ARGV: prefix, old token hash, new token hash, uv (JSON or ''), its credential id.
local old, new, uv, cred = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local id = redis.call('GET', P .. 'ptok:' .. old)
if not id then return false end
local k = P .. 'portal:' .. id
local f = redis.call('HMGET', k, 'data', 'seen', 'uv', 'exp')
if not f[1] then return false end
local exp = tonumber(f[4])
if exp <= now() then return false end
redis.call('DEL', P .. 'ptok:' .. old)
redis.call('SET', P .. 'ptok:' .. new, id, 'EXAT', exp)
redis.call('HSET', k, 'tok', new)
local cur = f[3] or ''
if uv ~= '' then
  redis.call('HSET', k, 'uv', uv)
  cur = uv
  index_session(cred, id, exp)
end
return {f[1], f[2] or '0', cur}
