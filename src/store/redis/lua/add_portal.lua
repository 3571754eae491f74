-- ARGV: prefix, id, token hash, user, data, seen, uv, exp, credential ids...
local id, tok, user, data, seen, uv, exp = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
if exp <= now() then return 0 end
local k = P .. 'portal:' .. id
redis.call('HSET', k, 'data', data, 'seen', seen, 'uv', uv, 'tok', tok, 'user', user, 'exp', exp)
redis.call('EXPIREAT', k, exp)
redis.call('SET', P .. 'ptok:' .. tok, id, 'EXAT', exp)
redis.call('SADD', P .. 'portals', id)
redis.call('SADD', P .. 'portals:user:' .. user, id)
extend(P .. 'portals:user:' .. user, exp)
for i = 9, #ARGV do index_session(ARGV[i], id, exp) end
return 1
