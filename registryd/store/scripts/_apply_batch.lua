-- apply_batch: the writes of a batch in queue order, in one script run. registryd/store/lua.py
-- puts every write's body before this as WRITES[<script name>], a function.
-- ARGV: 1-5 the common header (2 unused: each write names its own message_id), then per
--   write: its script's name, its message_id or '', the number of its arguments, and its
--   arguments (as its own script takes them).
-- Returns one reply per write, in order: what its own script would return, or its error.
-- A write that fails does not stop the rest; like a script of its own, it keeps what it
-- wrote before failing (every write checks what it needs before it writes).
local results, n, i = {}, 0, 6
while i <= #ARGV do
  local name, count = ARGV[i], tonumber(ARGV[i + 2])
  MSGID = ARGV[i + 1]
  A = {unpack(ARGV, i + 3, i + 2 + count)}
  i = i + 3 + count
  local ok, result = pcall(WRITES[name])
  if not ok then
    -- Redis 7 hands pcall an error's text; Redis 6.2 the table error() was given.
    result = {err = type(result) == 'table' and result.err or tostring(result)}
  end
  n = n + 1
  results[n] = result
end
return results
