-- set_worker_paused / set_worker_graceful: stores the given state fields as given.
-- ARGV: 5 workerid  then field/value pairs among
--   'paused' '0'|'1', 'reason' <JSON string or null>, 'graceful' '0'|'1'.
-- Returns the number of changes logged, or -1 for an already-seen message_id.
require_epoch()
if seen_message() then return -1 end
local w = must_load_worker(A[1])
local changed = 0
for i = 2, #A, 2 do
  if w[A[i]] ~= A[i + 1] then
    w[A[i]] = A[i + 1]
    changed = 1
  end
end
if changed == 1 then commit_worker(w, 'state_updated', nil) end
remember_message()
return changed
