-- Claims or keeps the relay role: one process publishes notifications at a time.
-- ARGV: 5 this process's token  6 lock time in ms.
-- Returns {1 if this process holds the role, the epoch, the relay cursor, the pending
-- reset epoch or ''}.
local holder = redis.call('GET', K_RELAY_LOCK)
if holder and holder ~= A[1] then return {0, '', 0, ''} end
redis.call('SET', K_RELAY_LOCK, A[1], 'PX', A[2])
return {1, redis.call('GET', K_EPOCH) or '', tonumber(redis.call('GET', K_CURSOR) or '0'),
        redis.call('GET', K_RESET) or ''}
