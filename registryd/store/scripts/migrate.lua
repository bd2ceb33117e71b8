-- Brings the keys of a registry written by an older registryd to this version's layout
-- (registryd/store/keys.py, LAYOUT_VERSION), atomically; run at every start.
-- Layout 1 (no K_LAYOUT): each worker a hash of its fields, its rendered document ('doc')
-- and its remembered connections ('c:<masterid>'); no flag or builder index sets.
-- Layouts 1 and 2: one set per builder (P_BUILDER .. builderid, from layout 2) and per
-- master's connected workers (P_CONN .. masterid), not split by worker id.
-- Layouts 1 to 3: one set per master's configured workers (P_CFG .. masterid), not split.
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

-- The builder, configured and connected sets, split by worker id (_lib.lua, ID_SPAN).
-- Every worker is read once: its builders and masters are kept for the second pass,
-- which can only start once every whole set is gone.
local workers = redis.call('ZRANGE', K_WORKERS, 0, -1)
local members, whole = {}, {}
for i, id in ipairs(workers) do
  local w = load_worker(id)
  local of = {}
  for b in pairs(builders_of(w.cfg)) do
    of[#of + 1] = span_key(P_BUILDER, b, id)
    whole[P_BUILDER .. b] = true
  end
  for _, m in ipairs(w.conn) do
    of[#of + 1] = span_key(P_CONN, m, id)
    whole[P_CONN .. m] = true
  end
  for _, p in ipairs(w.cfg) do
    local m = pair_master(p)
    of[#of + 1] = span_key(P_CFG, m, id)
    whole[P_CFG .. m] = true
  end
  members[i] = of
end
for key in pairs(whole) do redis.call('DEL', key) end
for i, id in ipairs(workers) do
  for _, key in ipairs(members[i]) do redis.call('SADD', key, id) end
end
redis.call('SET', K_LAYOUT, A[1])
return math.max(converted, #workers)
