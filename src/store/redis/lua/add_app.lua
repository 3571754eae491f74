-- ARGV: prefix, id, token hash, portal id, data, seen, grants (JSON), exp, credential ids...
local id, tok, portal, data, seen, grants, exp = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
if exp <= now() then return 0 end
if redis.call('EXISTS', P .. 'portal:' .. portal) == 0 then return 0 end
local k = P .. 'app:' .. id
redis.call('HSET', k, 'data', data, 'seen', seen, 'grants', grants, 'tok', tok, 'portal', portal)
redis.call('EXPIREAT', k, exp)
redis.call('SET', P .. 'atok:' .. tok, id, 'EXAT', exp)
redis.call('SADD', P .. 'apps:' .. portal, id)
extend(P .. 'apps:' .. portal, exp)
for i = 9, #ARGV do index_session(ARGV[i], portal, exp) end
return 1
