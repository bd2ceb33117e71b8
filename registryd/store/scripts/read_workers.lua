-- Reads worker documents in one round trip, as one consistent snapshot.
-- ARGV: 5 'all' | 'master' <masterid> | 'ids' <workerid>...
-- Returns the JSON documents by ascending id (workers that do not exist are left out).
local ids
if A[1] == 'all' then
  ids = redis.call('ZRANGE', K_WORKERS, 0, -1)
elseif A[1] == 'master' then
  ids = redis.call('SMEMBERS', P_CFG .. A[2])
  table.sort(ids, num_less)
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
