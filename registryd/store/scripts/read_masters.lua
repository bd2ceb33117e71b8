-- getMasters: every master that sent a heartbeat or was stopped, ascending by id.
-- ARGV: none of its own.
-- Returns the JSON documents.
local docs = {}
for _, id in ipairs(redis.call('ZRANGE', K_MASTERS, 0, -1)) do
  docs[#docs + 1] = render_master(id)
end
return docs
