-- How many of the given message_ids are remembered (applied, or acknowledged as no-ops,
-- within the message memory).
-- ARGV: 6.. the message_ids.
-- Returns the count.
local count = 0
for _, id in ipairs(A) do
  if message_seen(id) then count = count + 1 end
end
return count
