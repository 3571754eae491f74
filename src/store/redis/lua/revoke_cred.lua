-- ARGV: prefix, id. Removes the credential, ends every session indexed under
-- it and every token minted with it.
local id = ARGV[2]
local k = P .. 'cred:' .. id
local user = redis.call('HGET', k, 'user')
local existed = redis.call('DEL', k)
redis.call('SREM', P .. 'creds', id)
if user then redis.call('SREM', P .. 'creds:user:' .. user, id) end
end_indexed_sessions(id)
end_tokens_in(P .. 'tokcred:' .. id)
return existed
