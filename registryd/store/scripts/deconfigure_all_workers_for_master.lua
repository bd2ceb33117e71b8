-- deconfigureAllWorkersForMaster: removes every pair of the master from every worker,
-- leaving connections alone; one 'configured' change per changed worker, by id.
-- ARGV: 6 masterid.
-- Returns the number of changes logged, or DUPLICATE for an already-seen message_id.
return write(function()
  local mid = A[1]
  local sets = span_keys(P_CFG, mid, 0)
  local ids = redis.call('SUNION', unpack(sets))
  table.sort(ids, num_less)
  local changed = 0
  for _, id in ipairs(ids) do
    local w = load_worker(id)
    if w then
      local kept = without_master(w.cfg, mid)
      if #kept ~= #w.cfg then
        w.cfg = kept
        commit_worker(w, 'configured', mid)
        changed = changed + 1
      end
    end
  end
  redis.call('DEL', unpack(sets))
  return changed
end)
