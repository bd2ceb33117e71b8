-- workerConfigured: replaces this worker's builders on this master only.
-- ARGV: 5 workerid  6 masterid  7 builder ids, comma-separated, unique (may be '').
-- Returns the number of changes logged, or -1 for an already-seen message_id.
require_epoch()
if seen_message() then return -1 end
local w = must_load_worker(A[1])
local mid = A[2]
local old = table.concat(w.cfg, ',')
local cfg = {}
for _, p in ipairs(w.cfg) do
  if pair_master(p) ~= mid then cfg[#cfg + 1] = p end
end
local builders = split(A[3])
for _, b in ipairs(builders) do cfg[#cfg + 1] = mid .. ':' .. b end
table.sort(cfg, pair_less)
local changed = 0
if table.concat(cfg, ',') ~= old then
  w.cfg = cfg
  if #builders > 0 then
    redis.call('SADD', P_CFG .. mid, w.id)
  else
    redis.call('SREM', P_CFG .. mid, w.id)
  end
  commit_worker(w, 'configured', mid)
  changed = 1
end
remember_message()
return changed
