-- Claims or keeps the relay role (one process publishes notifications at a time) and,
-- in the same atomic step, records what this process published since its last claim
-- (as relay_advance does: only if it still held the role in the same epoch) and reads
-- what there is to publish, so that the entries read always belong to the epoch
-- returned, and a pending reset is seen before them.
-- ARGV: 6 this process's token  7 lock time in ms  8 the most entries to read
--   9 epoch of what was published ('' = nothing to record)  10 last revision published
--   ('' = none)  11 reset epoch whose notification was published ('' = none)
--   12 epoch of a batch still awaiting its confirms ('' = none)  13 its last revision:
--   entries are read after it rather than after the cursor, if that epoch is current.
-- Returns {1 if this process holds the role, the epoch or '', the relay cursor, the
-- pending reset epoch or '', then per entry after the cursor: revision, routing key, body}.
local holder = redis.call('GET', K_RELAY_LOCK)
if holder and holder ~= A[1] then return {0, '', 0, ''} end
if holder and A[4] ~= '' and (redis.call('GET', K_EPOCH) or '') == A[4] then
  if A[6] ~= '' and redis.call('GET', K_RESET) == A[6] then redis.call('DEL', K_RESET) end
  if A[5] ~= '' then redis.call('SET', K_CURSOR, A[5]) end
end
redis.call('SET', K_RELAY_LOCK, A[1], 'PX', A[2])
local cursor = tonumber(redis.call('GET', K_CURSOR) or '0')
local epoch = redis.call('GET', K_EPOCH) or ''
local out = {1, epoch, cursor, redis.call('GET', K_RESET) or ''}
local after = cursor
if A[7] ~= '' and A[8] ~= '' and A[7] == epoch and tonumber(A[8]) > cursor then after = tonumber(A[8]) end
local entries = redis.call('XRANGE', K_CHANGES, '(' .. string.format('%d', after) .. '-1', '+', 'COUNT', tonumber(A[3]))
-- An entry whose holder is no longer kept is lost, with every entry before it: the relay
-- sees the gap before the first it is given.
local holders, first = {}, #out + 1
for _, e in ipairs(entries) do
  local key, body = read_entry(e[1], e[2], holders)
  if body then
    out[#out + 1] = revision_of(e[1])
    out[#out + 1] = key
    out[#out + 1] = body
  else
    for i = #out, first, -1 do out[i] = nil end
  end
end
return out
