-- findWorkerId: the id of a name, creating the worker when the name is new.
-- ARGV: 5 name (raw)  6 name as a JSON string.
-- Returns the id.
require_epoch()
local id = redis.call('HGET', K_NAMES, A[1])
if id then return id end
id = string.format('%d', redis.call('INCR', K_NEXTID))
local w = {id = id, key = P_WORKER .. id, name = A[2], info = '{}', paused = '0',
           reason = 'null', graceful = '0', conn = {}, cfg = {}}
redis.call('HSET', K_NAMES, A[1], id)
redis.call('ZADD', K_WORKERS, id, id)
commit_worker(w, 'new', nil)
return id
