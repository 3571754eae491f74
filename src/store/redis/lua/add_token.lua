-- ARGV: prefix, id, hash, user, minting credential, data, exp.
local id, hash, user, cred, data, exp = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
if exp <= now() then return 1 end
local k = P .. 'token:' .. id
if redis.call('EXISTS', k) == 1 or redis.call('EXISTS', P .. 'ttok:' .. hash) == 1 then return 0 end
redis.call('SET', P .. 'ttok:' .. hash, data, 'EXAT', exp)
redis.call('HSET', k, 'hash', hash, 'user', user, 'cred', cred)
redis.call('EXPIREAT', k, exp)
redis.call('SADD', P .. 'tokens', id)
redis.call('SADD', P .. 'tokens:user:' .. user, id)
extend(P .. 'tokens:user:' .. user, exp)
redis.call('SADD', P .. 'tokcred:' .. cred, id)
extend(P .. 'tokcred:' .. cred, exp)
return 1
