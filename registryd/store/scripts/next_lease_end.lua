-- When the earliest lease ends, by Redis's clock (one script, so it also runs on a
-- Redis Cluster, where TIME cannot be pipelined to the prefix's node).
-- ARGV: none of its own.
-- Returns milliseconds from now (negative when that lease has ended: an expiry pass is
-- due), or nil when no master holds a lease.
local earliest = redis.call('ZRANGE', K_LEASES, 0, 0, 'WITHSCORES')
if #earliest == 0 then return false end
return tonumber(earliest[2]) - now_ms()
