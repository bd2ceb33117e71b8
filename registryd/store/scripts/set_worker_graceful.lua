-- set_worker_graceful: stores the graceful flag.
-- ARGV: 6 workerid  7 graceful '1'|'0'.
-- Returns the number of changes logged, or DUPLICATE for an already-seen message_id.
return write(function()
  return set_worker_state(A[1], {graceful = A[2]})
end)
