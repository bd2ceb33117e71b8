-- Reads worker documents in one round trip, as one consistent snapshot.
-- ARGV: 6 'ids' <workerid>...: returns the documents of those that exist, in that order.
--   6 'list' 7 after (a worker id, 0 for all) 8 limit ('' for all) 9 budget in bytes
--   ('' for none) 10 masterid 11 builderid ('' when not given) 12 paused 13 graceful
--   ('1', '0' or '' when not given): getWorkers (PROTOCOL.md section 2). Returns {0, the
--   listed documents...}, by ascending id, cut down by the filters; or {-1, bytes so far}
--   as soon as the documents joined by ',' would pass the budget.
--   6 'docs' then as 'list': the same workers' whole documents, not cut down.
-- A filter reads only what it may list: the index sets of its master, builder or flag.
-- The documents go back as one bulk reply each: a Lua table.concat of them costs more
-- (Lua 5.1 interns every intermediate string) than the client's join.
if A[1] == 'ids' then
  local docs = {}
  for i = 2, #A do
    local doc = redis.call('GET', P_WORKER .. A[i])
    if doc then docs[#docs + 1] = doc end
  end
  return docs
end

local function given(arg) return arg ~= '' and arg or nil end
local after, limit, budget = tonumber(A[2]), tonumber(A[3]), tonumber(A[4])
local mid, bid, paused, graceful = given(A[5]), given(A[6]), given(A[7]), given(A[8])

-- The ids of found above after, ascending.
local function ascending_after(found)
  local ids, text = {}, {}
  for _, id in ipairs(found) do
    local n = tonumber(id)
    if n > after then
      ids[#ids + 1] = n
      text[n] = id
    end
  end
  table.sort(ids) -- as numbers: a plain sort, no comparison function to call
  for i, n in ipairs(ids) do ids[i] = text[n] end
  return ids
end

-- The ids of the sets prefix .. id (one per ID_SPAN worker ids) from after's on.
local function span_members(prefix, id)
  local found = {}
  for _, key in ipairs(span_keys(prefix, id, after)) do
    for _, member in ipairs(redis.call('SMEMBERS', key)) do found[#found + 1] = member end
  end
  return found
end

-- The ids of found that are members of the set set_of(id) names, in no particular
-- order: each set asked once, a thousand ids at a time.
local function only_in(found, set_of)
  local by_set, kept = {}, {}
  for _, id in ipairs(found) do
    local set = set_of(id)
    by_set[set] = by_set[set] or {}
    table.insert(by_set[set], id)
  end
  for set, ids in pairs(by_set) do
    for first = 1, #ids, 1000 do
      local chunk = {unpack(ids, first, math.min(first + 999, #ids))}
      local is = redis.call('SMISMEMBER', set, unpack(chunk))
      for i, id in ipairs(chunk) do
        if is[i] == 1 then kept[#kept + 1] = id end
      end
    end
  end
  return kept
end

local function master_set(id) return span_key(P_CFG, mid, id) end

-- The ids a listing looks at, ascending: those of the index sets of every given id
-- filter and true flag; with none, every worker. A false flag is checked per worker.
local function candidates()
  local flags = {}
  if paused == '1' then flags[#flags + 1] = K_PAUSED end
  if graceful == '1' then flags[#flags + 1] = K_GRACEFUL end
  if bid or mid then
    local found = bid and span_members(P_BUILDER, bid) or span_members(P_CFG, mid)
    if bid and mid then found = only_in(found, master_set) end
    for _, set in ipairs(flags) do
      found = only_in(found, function() return set end)
    end
    return ascending_after(found)
  end
  if #flags > 0 then
    return ascending_after(#flags == 1 and redis.call('SMEMBERS', flags[1]) or redis.call('SINTER', unpack(flags)))
  end
  local from = '(' .. A[2]
  if limit and paused ~= '0' and graceful ~= '0' then
    return redis.call('ZRANGEBYSCORE', K_WORKERS, from, '+inf', 'LIMIT', 0, limit)
  end
  return redis.call('ZRANGEBYSCORE', K_WORKERS, from, '+inf')
end

-- The ids a false flag leaves out (those in its set), as a lookup table.
local function excluded()
  local out = {}
  for set, flag in pairs({[K_PAUSED] = paused, [K_GRACEFUL] = graceful}) do
    if flag == '0' then
      for _, id in ipairs(redis.call('SMEMBERS', set)) do out[id] = true end
    end
  end
  return out
end

-- The document as listed under the masterid/builderid filters, or nil when no pair
-- matches: configured_on cut to the matching pairs, connected_to to masterid. The
-- document's own ',"connected_to":[' is its last (nothing after it can hold one); the
-- greedy '.*' finds it backwards from the end. A worker that loses nothing is listed as
-- stored, without building a string.
local function cut(doc)
  local _, open = string.find(doc, '.*,"connected_to":%[')
  local conn, pairs_json = string.match(doc, '^([%d,]*)%],"configured_on":%[(.*)%]}$', open + 1)
  local kept, all = {}, 0
  for pair, b, m in string.gmatch(pairs_json, '({"builderid":(%d+),"masterid":(%d+)})') do
    all = all + 1
    if (not mid or m == mid) and (not bid or b == bid) then kept[#kept + 1] = pair end
  end
  if #kept == 0 then return nil end
  if mid and conn ~= '' and conn ~= mid then
    conn = string.find(',' .. conn .. ',', ',' .. mid .. ',', 1, true) and mid or ''
  elseif #kept == all then
    return doc
  end
  return string.sub(doc, 1, open) .. conn .. '],"configured_on":[' .. table.concat(kept, ',') .. ']}'
end

local skip = excluded()
local by_pair = (mid or bid) and A[1] ~= 'docs'
local out, count, size = {0}, 0, -1
for _, id in ipairs(candidates()) do
  if limit and count >= limit then break end
  if not skip[id] then
    local doc = redis.call('GET', P_WORKER .. id)
    if doc and by_pair then doc = cut(doc) end
    if doc then
      count = count + 1
      out[count + 1] = doc
      size = size + #doc + 1
      if budget and size > budget then return {-1, size} end
    end
  end
end
return out
