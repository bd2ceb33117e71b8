-- getChanges: the change-log entries after a revision, as one consistent snapshot.
-- ARGV: 6 since (revision, >= 0)  7 limit.
-- Returns {current revision, oldest retained revision or 0, body...}.
local current = tonumber(redis.call('GET', K_REV) or '0')
local out = {current, 0}
local first = redis.call('XRANGE', K_CHANGES, '-', '+', 'COUNT', 1)
if first[1] then out[2] = tonumber(string.match(first[1][1], '^(%d+)-')) end
local since = tonumber(A[1])
if since >= current then return out end
local entries = redis.call('XRANGE', K_CHANGES, string.format('%d', since + 1) .. '-0', '+', 'COUNT', tonumber(A[2]))
for _, e in ipairs(entries) do
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'b' then out[#out + 1] = f[i + 1] end
  end
end
return out
