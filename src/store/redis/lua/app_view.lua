-- ARGV: prefix, app token hash. The app session, its portal session and
-- grants, then `id, flagged, standing` for each credential the grants, the
-- last assertion and the sign-in name that still exists (a credential stored
-- before `standing` existed answers with its `data`, which has the same fields).
local id = redis.call('GET', P .. 'atok:' .. ARGV[2])
if not id then return false end
local a = redis.call('HMGET', P .. 'app:' .. id, 'data', 'seen', 'grants', 'portal')
if not a[1] or not a[4] then return false end
local p = redis.call('HMGET', P .. 'portal:' .. a[4], 'data', 'seen', 'uv')
if not p[1] then return false end
local out = {a[1], a[2] or '0', a[3] or '[]', p[1], p[2] or '0', p[3] or ''}
local seen = {}
local function standing(c)
  if type(c) ~= 'string' or seen[c] then return end
  seen[c] = true
  local k = P .. 'cred:' .. c
  local f = redis.call('HMGET', k, 'flagged', 'standing')
  if not f[1] then return end
  table.insert(out, c); table.insert(out, f[1])
  table.insert(out, f[2] or redis.call('HGET', k, 'data'))
end
for _, g in ipairs(cjson.decode(a[3] or '[]')) do standing(g.verification.credential_id) end
if p[3] and p[3] ~= '' then standing(cjson.decode(p[3]).credential_id) end
standing(cjson.decode(p[1]).signed_in_with)
return out
