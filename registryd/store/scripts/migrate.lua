-- Brings the keys of a registry written by an older registryd to this version's layout
-- (registryd/store/keys.py, LAYOUT_VERSION), atomically; run at every start.
-- Layout 1 (no K_LAYOUT): each worker a hash of its fields, its rendered document ('doc')
-- and its remembered connections ('c:<masterid>'); no flag or builder index sets.
-- ARGV: 6 the layout version this script makes.
-- Returns the number of workers it converted (0 when the layout was current).
if redis.call('GET', K_LAYOUT) == A[1] then return 0 end
local converted = 0
for _, id in ipairs(redis.call('ZRANGE', K_WORKERS, 0, -1)) do
  local key = P_WORKER .. id
  if redis.call('TYPE', key).ok == 'hash' then
    local fields = redis.call('HGETALL', key)
    local doc
    redis.call('DEL', key)
    for i = 1, #fields, 2 do
      local field, value = fields[i], fields[i + 1]
      local mid = string.match(field, '^c:(%d+)$')
      if mid then redis.call('HSET', P_SESSION .. id, mid, value) end
      if field == 'doc' then doc = value end
    end
    redis.call('SET', key, doc)
    local w = parse_worker(id, key, doc)
    w.was = {paused = '0', graceful = '0', builders = {}}
    index_worker(w)
    converted = converted + 1
  end
end
redis.call('SET', K_LAYOUT, A[1])
return converted
