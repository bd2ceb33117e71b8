-- workerDisconnected: removes the master from connected_to, unless the disconnect is
-- stale (both it and the remembered connect name a connection, and they differ).
-- ARGV: 5 workerid  6 masterid  7 connection or ''.
-- Returns the number of changes logged, or -1 for an already-seen message_id.
require_epoch()
if seen_message() then return -1 end
local w = must_load_worker(A[1])
local mid = A[2]
local remembered = redis.call('HGET', w.key, 'c:' .. mid)
local stale = A[3] ~= '' and remembered and remembered ~= A[3]
local at = index_of(w.conn, mid)
local changed = 0
if at and not stale then
  table.remove(w.conn, at)
  redis.call('HDEL', w.key, 'c:' .. mid)
  redis.call('SREM', P_CONN .. mid, w.id)
  commit_worker(w, 'disconnected', mid)
  changed = 1
end
remember_message()
return changed
