-- KEYS[1]: the counter. ARGV: amount, window in ms. Adds to a fixed-window
-- counter that expires a window after its first hit; returns the count and
-- the ms left in the window.
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {n, ttl}
