-- masterHeartbeat: the master is active until now + lease. A first heartbeat, one after
-- the master was inactive, or one that renames it logs 'active'; one that only extends
-- the lease logs nothing and takes no revision.
-- ARGV: 5 masterid  6 name as a JSON string, or '' to keep the name  7 lease in ms.
-- Returns the number of changes logged, or -1 for an already-seen message_id.
require_epoch()
if seen_message() then return -1 end
local mid = A[1]
local key = P_MASTER .. mid
local old = redis.call('HMGET', key, 'name', 'active')
local name = old[1] or 'null'
if A[2] ~= '' then name = A[2] end
local now = now_ms()
redis.call('HSET', key, 'name', name, 'active', '1', 'last_seen', string.format('%d', now))
redis.call('ZADD', K_MASTERS, mid, mid)
redis.call('ZADD', K_LEASES, now + tonumber(A[3]), mid)
local changed = 0
if old[2] ~= '1' or name ~= (old[1] or 'null') then
  commit_master(mid, 'active')
  changed = 1
end
remember_message()
return changed
