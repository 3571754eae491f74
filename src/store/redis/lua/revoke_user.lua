-- ARGV: prefix, user. Returns how many portal sessions ended.
local set = P .. 'portals:user:' .. ARGV[2]
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', set)) do n = n + end_portal(id) end
redis.call('DEL', set)
return n
