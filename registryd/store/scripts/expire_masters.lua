-- Lease expiry: every active master whose lease ended before now is dropped as by
-- masterStopped, but logs 'expired'. Atomic, so concurrent callers expire each once.
-- ARGV: 6 the most masters to expire in this call.
-- Returns the ids of the expired masters, ascending by lease end.
require_epoch()
local ids = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', '(' .. string.format('%d', now_ms()), 'LIMIT', 0, tonumber(A[1]))
for _, mid in ipairs(ids) do
  drop_master_from_workers(mid)
  deactivate_master(mid)
  commit_master(mid, 'expired')
end
return ids
