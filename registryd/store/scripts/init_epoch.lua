-- Makes a new epoch when the registry has none (first start, or Redis came back empty).
-- ARGV: 6 the new epoch id to use.
-- Returns {epoch, 1} when it made A[1] the epoch, {epoch, 0} when one existed.
local current = redis.call('GET', K_EPOCH)
if current then return {current, 0} end
redis.call('SET', K_EPOCH, A[1])
redis.call('SET', K_REV, '0')
redis.call('SET', K_CURSOR, '0')
redis.call('DEL', K_CHANGES)
redis.call('SET', K_RESET, A[1])
return {A[1], 1}
