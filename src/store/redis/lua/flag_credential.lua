-- ARGV: prefix, id. A possible clone: flag the credential and end every
-- session indexed under it. 0 without the credential.
local k = P .. 'cred:' .. ARGV[2]
if redis.call('EXISTS', k) == 0 then return 0 end
redis.call('HSET', k, 'flagged', '1')
end_indexed_sessions(ARGV[2])
return 1
