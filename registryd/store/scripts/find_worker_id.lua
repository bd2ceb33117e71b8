-- findWorkerId: the id of a name, creating the worker when the name is new.
-- ARGV: 6 name as a JSON string (the key of the names hash, and the record's name).
-- Returns the id.
require_epoch()
local id = redis.call('HGET', K_NAMES, A[1])
if id then return id end
id = string.format('%d', redis.call('INCR', K_NEXTID))
local w = {id = id, key = P_WORKER .. id, name = A[1], info = '{}', paused = '0',
           reason = 'null', graceful = '0', conn = {}, cfg = {}}
redis.call('HSET', K_NAMES, A[1], id)
redis.call('ZADD', K_WORKERS, id, id)
commit_worker(w, 'new', nil)
return id
