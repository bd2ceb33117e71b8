-- getChanges: the change-log entries after a revision, as one consistent snapshot.
-- ARGV: 6 since (revision, >= 0)  7 limit.
-- Returns {current revision, oldest retained revision or 0, body...}. The history is
-- the last RETAIN changes, though the log keeps more (the holders of the oldest, _lib.lua).
-- An entry whose holder is no longer kept is not retained either: then the oldest
-- retained is reported as the one after the last such entry read, and no body.
local current = tonumber(redis.call('GET', K_REV) or '0')
local out = {current, 0}
local first = redis.call('XRANGE', K_CHANGES, '-', '+', 'COUNT', 1)
if first[1] then
  out[2] = math.max(revision_of(first[1][1]), current - tonumber(RETAIN) + 1)
end
local since = tonumber(A[1])
if since >= current then return out end
local entries = redis.call('XRANGE', K_CHANGES, string.format('%d', since + 1) .. '-0', '+', 'COUNT', tonumber(A[2]))
local holders, lost = {}, nil
for _, e in ipairs(entries) do
  local _, body = read_entry(e[1], e[2], holders)
  if body then out[#out + 1] = body else lost = e[1] end
end
if lost then return {current, revision_of(lost) + 1} end
return out
