-- workerConnected: adds the master to connected_to and replaces workerinfo; remembers
-- the connection the connect names (per worker and master) for later disconnects.
-- ARGV: 6 workerid  7 masterid  8 workerinfo as canonical JSON
--   9 connection as a JSON string, or 'null'.
-- Returns the number of changes logged, or DUPLICATE for an already-seen message_id.
return write(function()
  local w = must_load_worker(A[1])
  local mid, info, connection = A[2], A[3], A[4]
  if connection ~= 'null' then
    redis.call('HSET', P_SESSION .. w.id, mid, connection)
  else
    redis.call('HDEL', P_SESSION .. w.id, mid)
  end
  local connected = index_of(w.conn, mid)
  if connected and w.info == info then return 0 end
  if not connected then w.conn[#w.conn + 1] = mid end
  w.info = info
  redis.call('SADD', span_key(P_CONN, mid, w.id), w.id)
  commit_worker(w, 'connected', mid)
  return 1
end)
