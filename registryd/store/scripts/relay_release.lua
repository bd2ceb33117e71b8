-- Gives up the relay role, if this process holds it.
-- ARGV: 6 token.
-- Returns 1 when released.
if redis.call('GET', K_RELAY_LOCK) == A[1] then
  redis.call('DEL', K_RELAY_LOCK)
  return 1
end
return 0
