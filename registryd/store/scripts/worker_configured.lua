-- workerConfigured: replaces this worker's builders on this master only; duplicate
-- builder ids collapse.
-- ARGV: 6 workerid  7 masterid  8 builder ids, comma-separated (may be '').
-- Returns the number of changes logged, or DUPLICATE for an already-seen message_id.
return write(function()
  local w = must_load_worker(A[1])
  local mid = A[2]
  local old = table.concat(w.cfg, ',')
  local cfg = without_master(w.cfg, mid)
  local seen = {}
  for _, b in ipairs(split(A[3])) do
    if not seen[b] then
      seen[b] = true
      cfg[#cfg + 1] = mid .. ':' .. b
    end
  end
  table.sort(cfg, pair_less)
  if table.concat(cfg, ',') == old then return 0 end
  w.cfg = cfg
  redis.call(next(seen) and 'SADD' or 'SREM', span_key(P_CFG, mid, w.id), w.id)
  commit_worker(w, 'configured', mid)
  return 1
end)
