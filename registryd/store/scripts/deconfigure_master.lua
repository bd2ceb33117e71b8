-- deconfigureAllWorkersForMaster: removes every pair of the master from every worker,
-- leaving connections alone; one 'configured' change per changed worker, by id.
-- ARGV: 5 masterid.
-- Returns the number of changes logged, or -1 for an already-seen message_id.
require_epoch()
if seen_message() then return -1 end
local mid = A[1]
local ids = redis.call('SMEMBERS', P_CFG .. mid)
table.sort(ids, num_less)
local changed = 0
for _, id in ipairs(ids) do
  local w = load_worker(id)
  if w then
    local kept = {}
    for _, p in ipairs(w.cfg) do
      if pair_master(p) ~= mid then kept[#kept + 1] = p end
    end
    if #kept ~= #w.cfg then
      w.cfg = kept
      commit_worker(w, 'configured', mid)
      changed = changed + 1
    end
  end
end
redis.call('DEL', P_CFG .. mid)
remember_message()
return changed
