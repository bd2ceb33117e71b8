-- workerDisconnected: removes the master from connected_to, unless the disconnect is
-- stale (both it and the remembered connect name a connection, and they differ).
-- ARGV: 6 workerid  7 masterid  8 connection as a JSON string, or 'null'.
-- Returns the number of changes logged, or DUPLICATE for an already-seen message_id.
return write(function()
  local w = must_load_worker(A[1])
  local mid, connection = A[2], A[3]
  local remembered = redis.call('HGET', P_SESSION .. w.id, mid)
  local stale = connection ~= 'null' and remembered and remembered ~= connection
  local at = index_of(w.conn, mid)
  if not at or stale then return 0 end
  table.remove(w.conn, at)
  redis.call('HDEL', P_SESSION .. w.id, mid)
  redis.call('SREM', span_key(P_CONN, mid, w.id), w.id)
  commit_worker(w, 'disconnected', mid)
  return 1
end)
