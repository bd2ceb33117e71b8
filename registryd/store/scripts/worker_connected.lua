-- workerConnected: adds the master to connected_to and replaces workerinfo.
-- ARGV: 5 workerid  6 masterid  7 workerinfo as canonical JSON  8 connection or ''.
-- Returns the number of changes logged, or -1 for an already-seen message_id.
require_epoch()
if seen_message() then return -1 end
local w = must_load_worker(A[1])
local mid = A[2]
if A[4] ~= '' then
  redis.call('HSET', w.key, 'c:' .. mid, A[4])
else
  redis.call('HDEL', w.key, 'c:' .. mid)
end
local changed = 0
if not index_of(w.conn, mid) or w.info ~= A[3] then
  if not index_of(w.conn, mid) then w.conn[#w.conn + 1] = mid end
  w.info = A[3]
  redis.call('SADD', P_CONN .. mid, w.id)
  commit_worker(w, 'connected', mid)
  changed = 1
end
remember_message()
return changed
