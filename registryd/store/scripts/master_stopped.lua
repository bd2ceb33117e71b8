-- masterStopped: a clean shutdown. Removes the master from every worker's connected_to
-- and configured_on, marks it inactive and logs the workers' changes, then 'stopped'.
-- A stop of an already inactive master that changes no worker logs nothing.
-- ARGV: 6 masterid.
-- Returns the number of changes logged, or DUPLICATE for an already-seen message_id.
return write(function()
  local mid = A[1]
  local known = redis.call('ZSCORE', K_MASTERS, mid)
  local changed = drop_master_from_workers(mid)
  local was_active = deactivate_master(mid)
  if was_active or not known or changed > 0 then
    redis.call('HSET', P_MASTER .. mid, 'last_seen', string.format('%d', now_ms()))
    commit_master(mid, 'stopped')
    changed = changed + 1
  end
  return changed
end)
