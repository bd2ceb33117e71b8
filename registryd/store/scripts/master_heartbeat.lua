-- masterHeartbeat: the master is active until now + lease. A first heartbeat, one after
-- the master was inactive, or one that renames it logs 'active'; one that only extends
-- the lease logs nothing and takes no revision.
-- ARGV: 6 masterid  7 name as a JSON string, or 'null' to keep the name.
-- Returns the number of changes logged, or DUPLICATE for an already-seen message_id.
return write(function()
  local mid = A[1]
  local key = P_MASTER .. mid
  local old = redis.call('HMGET', key, 'name', 'active')
  local old_name = old[1] or 'null'
  local name = A[2] ~= 'null' and A[2] or old_name
  local now = now_ms()
  redis.call('HSET', key, 'name', name, 'active', '1', 'last_seen', string.format('%d', now))
  redis.call('ZADD', K_MASTERS, mid, mid)
  redis.call('ZADD', K_LEASES, now + tonumber(LEASE_MS), mid)
  if old[2] == '1' and name == old_name then return 0 end
  commit_master(mid, 'active')
  return 1
end)
