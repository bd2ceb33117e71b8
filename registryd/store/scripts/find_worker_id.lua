-- findWorkerId: the id of a name, creating the worker when the name is new.
-- ARGV: 6 name as a JSON string (the record's name; the names hash is keyed by the
--   decoded name, which has no control characters to escape).
-- Returns the id.
require_epoch()
local name = cjson.decode(A[1])
local id = redis.call('HGET', K_NAMES, name)
if id then return id end
id = string.format('%d', redis.call('INCR', K_NEXTID))
local w = new_worker(id, A[1])
redis.call('HSET', K_NAMES, name, id)
redis.call('ZADD', K_WORKERS, id, id)
commit_worker(w, 'new', nil)
return id
