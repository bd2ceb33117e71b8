-- set_worker_paused: stores paused and pause_reason exactly as given.
-- ARGV: 6 workerid  7 paused '1'|'0'  8 pause_reason as a JSON string or 'null'.
-- Returns the number of changes logged, or DUPLICATE for an already-seen message_id.
return write(function()
  return set_worker_state(A[1], {paused = A[2], reason = A[3]})
end)
