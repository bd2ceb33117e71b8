-- Reads worker documents in one round trip, as one consistent snapshot.
-- ARGV: 6 'all' | 'master' <masterid> | 'ids' <workerid>...; for 'all' and 'master' then
--   the id to list after (0 for all) and the most to list ('' for all).
-- Returns the JSON documents by ascending id (workers that do not exist are left out).
local ids
if A[1] == 'all' then
  local after, limit = A[2], A[3]
  if limit == '' then
    ids = redis.call('ZRANGEBYSCORE', K_WORKERS, '(' .. after, '+inf')
  else
    ids = redis.call('ZRANGEBYSCORE', K_WORKERS, '(' .. after, '+inf', 'LIMIT', 0, limit)
  end
elseif A[1] == 'master' then
  local after, limit = tonumber(A[3]), tonumber(A[4])
  ids = {}
  for _, id in ipairs(redis.call('SMEMBERS', P_CFG .. A[2])) do
    if tonumber(id) > after then ids[#ids + 1] = id end
  end
  table.sort(ids, num_less)
  if limit then
    for i = #ids, limit + 1, -1 do ids[i] = nil end
  end
else
  ids = {}
  for i = 2, #A do ids[#ids + 1] = A[i] end
end
local docs = {}
for _, id in ipairs(ids) do
  local doc = redis.call('HGET', P_WORKER .. id, 'doc')
  if doc then docs[#docs + 1] = doc end
end
return docs
