-- Records what the relay has published, if it still holds the role in the same epoch.
-- ARGV: 6 token  7 epoch the batch belongs to  8 last revision published ('' = none)
--   9 reset epoch whose notification was published ('' = none).
-- Returns 1 when recorded, 0 when the role or the epoch changed meanwhile.
if redis.call('GET', K_RELAY_LOCK) ~= A[1] or (redis.call('GET', K_EPOCH) or '') ~= A[2] then
  return 0
end
if A[4] ~= '' and redis.call('GET', K_RESET) == A[4] then redis.call('DEL', K_RESET) end
if A[3] ~= '' then redis.call('SET', K_CURSOR, A[3]) end
return 1
