-- Shared helpers of every registryd script; registryd/store/lua.py puts a generated
-- prelude before them (K_*/P_* key names from the base, worker_key/master_key for routing keys)
-- and the script's own body after them.
--
-- ARGV (common header, set by registryd/store/redis.py):
--   1 change-log retention (entries kept at least)  2 message_id or ''
--   3 message_id memory in ms  4 now in ms or '' (then Redis TIME is used)
--   5 master lease in ms
--   6.. the operation's own arguments (A[1], A[2], ...), documented in each script. A
--   write gets its model's fields in order: ids as decimal strings, flags '1'/'0', text
--   as a JSON string or 'null', objects as canonical JSON, id lists comma-separated.
-- Ids travel as canonical decimal strings and stay strings here, so that large ids
-- never pass through Lua's number formatting.
local RETAIN, MSGID, MSG_TTL, NOW_ARG, LEASE_MS = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local A = {}
for i = 6, #ARGV do A[#A + 1] = ARGV[i] end
-- What a write returns for an already-seen message_id (registryd.ports.DUPLICATE).
local DUPLICATE = -1

local function num_less(a, b) return tonumber(a) < tonumber(b) end

local function require_epoch()
  if redis.call('EXISTS', K_EPOCH) == 0 then
    error({err = 'NOEPOCH the registry has no epoch; it was reset'})
  end
end

local function not_found(workerid)
  return error({err = 'NOT_FOUND no worker with id ' .. workerid})
end

local function redis_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function now_ms()
  if NOW_ARG ~= '' then return tonumber(NOW_ARG) end
  return redis_ms()
end

-- message_ids are remembered in generations of MSG_TTL by Redis's clock (never the
-- clock a test passes): an id seen at t goes into generation floor(t / MSG_TTL), whose
-- hashes expire at the end of the next one, and a lookup reads this generation and the
-- last, so an id is remembered between MSG_TTL and twice that. A generation spreads its
-- ids over 256 hashes by their SHA-1, so that each stays a small listpack: a field costs
-- a third of what a key of its own did.
-- The generation and the time it was read at, read once per script run: a write looks
-- its id up and remembers it in the same generation.
local message_clock = nil
local function message_generation()
  if not message_clock then
    local now = redis_ms()
    message_clock = {math.floor(now / tonumber(MSG_TTL)), now}
  end
  return message_clock[1], message_clock[2]
end

local function message_hash(generation, id)
  return P_MSG .. string.format('%d', generation) .. ':' .. string.sub(redis.sha1hex(id), 1, 2)
end

local function message_seen(id)
  local generation = message_generation()
  return redis.call('HEXISTS', message_hash(generation, id), id) == 1
    or redis.call('HEXISTS', message_hash(generation - 1, id), id) == 1
end

-- An event whose message_id was applied recently is acknowledged and ignored.
local function seen_message()
  return MSGID ~= '' and message_seen(MSGID)
end

local function remember_message()
  if MSGID == '' then return end
  local generation, now = message_generation()
  local key = message_hash(generation, MSGID)
  redis.call('HSET', key, MSGID, '1')
  redis.call('PEXPIRE', key, string.format('%d', (generation + 2) * tonumber(MSG_TTL) - now))
end

-- Runs a write's body once: needs the epoch, skips a seen message_id, remembers it after.
-- body returns the number of changes it logged; so does write, or DUPLICATE.
local function write(body)
  require_epoch()
  if seen_message() then return DUPLICATE end
  local changed = body()
  remember_message()
  return changed
end

-- "a,b,c" <-> {"a","b","c"}
local function split(s)
  local out = {}
  if s and s ~= '' then
    for part in string.gmatch(s, '[^,]+') do out[#out + 1] = part end
  end
  return out
end

-- configured_on pairs are "masterid:builderid" strings, sorted by master then builder.
local function pair_less(a, b)
  local am, ab = string.match(a, '^(%d+):(%d+)$')
  local bm, bb = string.match(b, '^(%d+):(%d+)$')
  if am ~= bm then return tonumber(am) < tonumber(bm) end
  return tonumber(ab) < tonumber(bb)
end

local function pair_master(p) return string.match(p, '^(%d+):') end

-- The pairs of cfg that are not on master mid.
local function without_master(cfg, mid)
  local kept = {}
  for _, p in ipairs(cfg) do
    if pair_master(p) ~= mid then kept[#kept + 1] = p end
  end
  return kept
end

local function iso_utc(ms)
  -- Howard Hinnant's civil_from_days: Redis Lua has no os.date.
  local secs = math.floor(ms / 1000)
  local millis = ms - secs * 1000
  local days = math.floor(secs / 86400)
  local rem = secs - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d,
    math.floor(rem / 3600), math.floor((rem % 3600) / 60), rem % 60, millis)
end

-- Workers ------------------------------------------------------------------------------
-- A worker is its JSON document (PROTOCOL.md section 1) alone, a string at P_WORKER .. id;
-- a write reads the fields back from it. Index sets follow the document: K_PAUSED,
-- K_GRACEFUL and the P_BUILDER sets here, the P_CFG and P_CONN sets in the scripts that
-- change pairs and connections. P_SESSION .. id holds the remembered connections.

-- Where the document's own ',"paused":' starts: the last one, as workerinfo (before it)
-- may have such a key and nothing after it can (JSON strings escape their quotes). The
-- greedy '.*' finds the last one backwards from the end, over the short tail only.
local function flags_at(doc)
  local _, colon = string.find(doc, '.*,"paused":')
  return colon - #',"paused":' + 1
end

local FLAGS_PATTERN = '^,"paused":(%a+),"pause_reason":(.*),"graceful":(%a+),'
  .. '"connected_to":%[([%d,]*)%],"configured_on":%[(.*)%]}$'

-- The builder ids of "masterid:builderid" pairs, as a set.
local function builders_of(cfg)
  local set = {}
  for _, p in ipairs(cfg) do set[string.match(p, ':(%d+)$')] = true end
  return set
end

-- A worker table from its document; was holds what the index sets say of it now.
local function parse_worker(id, key, doc)
  local head = '{"id":' .. id .. ',"name":"'
  local name_end = string.find(doc, '"', #head + 1, true) -- a name has no quote to escape
  local at = flags_at(doc)
  local paused, reason, graceful, conn, pairs_json = string.match(doc, FLAGS_PATTERN, at)
  local cfg = {}
  for b, m in string.gmatch(pairs_json, '"builderid":(%d+),"masterid":(%d+)') do
    cfg[#cfg + 1] = m .. ':' .. b
  end
  local w = {id = id, key = key, name = string.sub(doc, #head, name_end),
             info = string.sub(doc, name_end + #',"workerinfo":' + 1, at - 1),
             paused = paused == 'true' and '1' or '0', reason = reason,
             graceful = graceful == 'true' and '1' or '0', conn = split(conn), cfg = cfg}
  w.was = {paused = w.paused, graceful = w.graceful, builders = builders_of(cfg), info = w.info}
  return w
end

-- A worker that does not exist yet (findWorkerId), name as a JSON string.
local function new_worker(id, name)
  return {id = id, key = P_WORKER .. id, name = name, info = '{}', paused = '0',
          reason = 'null', graceful = '0', conn = {}, cfg = {},
          was = {paused = '0', graceful = '0', builders = {}}}
end

local function load_worker(id)
  local key = P_WORKER .. id
  local doc = redis.call('GET', key)
  if not doc then return nil end
  return parse_worker(id, key, doc)
end

local function must_load_worker(id)
  return load_worker(id) or not_found(id)
end

local function render_worker(w)
  local pairs_json = {}
  for i, p in ipairs(w.cfg) do
    local m, b = string.match(p, '^(%d+):(%d+)$')
    pairs_json[i] = '{"builderid":' .. b .. ',"masterid":' .. m .. '}'
  end
  return '{"id":' .. w.id .. ',"name":' .. w.name .. ',"workerinfo":' .. w.info
    .. ',"paused":' .. (w.paused == '1' and 'true' or 'false')
    .. ',"pause_reason":' .. w.reason
    .. ',"graceful":' .. (w.graceful == '1' and 'true' or 'false')
    .. ',"connected_to":[' .. table.concat(w.conn, ',') .. ']'
    .. ',"configured_on":[' .. table.concat(pairs_json, ',') .. ']}'
end

-- The sets of a builder's workers (P_BUILDER .. builderid) and of a master's configured
-- and connected workers (P_CFG, P_CONN .. masterid) are split by worker id, ID_SPAN ids
-- a set, named "<prefix><id>:<worker id // ID_SPAN>", so that each stays an intset (Redis's
-- set-max-intset-entries, 512 by default): a member costs 2 to 4 bytes instead of about
-- 45 in a hashtable set. ID_SPAN comes in the prelude, from registryd/store/keys.py.

local function span_key(prefix, id, member)
  return prefix .. id .. ':' .. string.format('%d', math.floor(tonumber(member) / ID_SPAN))
end

-- Every set of prefix .. id that may hold a worker id above after, in id order.
local function span_keys(prefix, id, after)
  local last = math.floor(tonumber(redis.call('GET', K_NEXTID) or '0') / ID_SPAN)
  local out = {}
  for span = math.floor(tonumber(after) / ID_SPAN), last do
    out[#out + 1] = span_key(prefix, id, span * ID_SPAN)
  end
  return out
end

-- Adds id to set when flag is '1', removes it when '0'; only when it changed.
local function index_flag(set, id, old, new)
  if old == new then return end
  redis.call(new == '1' and 'SADD' or 'SREM', set, id)
end

-- Brings the index sets of the worker from what w.was says to what w says.
local function index_worker(w)
  index_flag(K_PAUSED, w.id, w.was.paused, w.paused)
  index_flag(K_GRACEFUL, w.id, w.was.graceful, w.graceful)
  local now = builders_of(w.cfg)
  for b in pairs(w.was.builders) do
    if not now[b] then redis.call('SREM', span_key(P_BUILDER, b, w.id), w.id) end
  end
  for b in pairs(now) do
    if not w.was.builders[b] then redis.call('SADD', span_key(P_BUILDER, b, w.id), w.id) end
  end
  w.was = {paused = w.paused, graceful = w.graceful, builders = now, info = w.info}
end

local function save_worker(w)
  table.sort(w.conn, num_less)
  table.sort(w.cfg, pair_less)
  local doc = render_worker(w)
  redis.call('SET', w.key, doc)
  index_worker(w)
  return doc
end

local function index_of(list, value)
  for i, v in ipairs(list) do if v == value then return i end end
  return nil
end

-- Change log ---------------------------------------------------------------------------
-- An entry is either a full one, 'k' its routing key and 'b' its body (a master's change,
-- and every entry written before the compact form), or a worker's compact one, 'w':
-- "event code|masterid|workerid|paused graceful|connected_to|configured_on|holder|reason",
-- configured_on as packed_pairs writes it.
-- A holder entry (holder empty) goes on with a newline, the worker's name, a newline and
-- its workerinfo (JSON text never holds a raw newline); any other names the revision of
-- the worker's holder, whose name and workerinfo are its own. So the bulk of a record is
-- written once, not with every change: a worker's holder is written again when its
-- workerinfo changes and when the holder is REBASE revisions old, and the log keeps
-- RETAIN + REBASE entries, so every entry of the last RETAIN has its holder.
-- holders_of(id) field id names the worker's holder and the epoch it was written in
-- ("revision:" and the epoch's first 8 characters), so that a holder of a log deleted
-- with its epoch is never named.

local REBASE = math.floor(tonumber(RETAIN) / 4)
local KEEP = string.format('%d', tonumber(RETAIN) + REBASE)
local EVENT_CODE = {new = 'n', configured = 'c', connected = 'o', disconnected = 'd',
                    state_updated = 's'}
local CODE_EVENT = {}
for event, code in pairs(EVENT_CODE) do CODE_EVENT[code] = event end

local function next_revision()
  return string.format('%d', redis.call('INCR', K_REV))
end

local function add_entry(rev_s, ...)
  redis.call('XADD', K_CHANGES, 'MAXLEN', '~', KEEP, rev_s .. '-1', ...)
end

local function append_change(routing_key, body_after_revision)
  local rev_s = next_revision()
  add_entry(rev_s, 'k', routing_key, 'b', '{"revision":' .. rev_s .. ',' .. body_after_revision)
end

-- The hash of holder_prefix .. id // 100 (ids stay decimal strings, never numbers).
local function holders_of(id)
  return P_HOLDER .. (#id > 2 and string.sub(id, 1, -3) or '0')
end

local cached_tag = nil
local function epoch_tag()
  cached_tag = cached_tag or string.sub(redis.call('GET', K_EPOCH) or '', 1, 8)
  return cached_tag
end

-- The revision of w's holder when the next entry (rev) may name it, or nil.
local function usable_holder(w, rev)
  if w.info ~= w.was.info then return nil end
  local ref = redis.call('HGET', holders_of(w.id), w.id)
  if not ref then return nil end
  local holder, epoch = string.match(ref, '^(%d+):(.*)$')
  holder = tonumber(holder)
  if epoch ~= epoch_tag() or holder >= rev or rev - holder >= REBASE then
    return nil
  end
  return holder
end

-- Sorted "masterid:builderid" pairs as an entry holds them: the master only where it
-- changes ("10:2,10:6,11:3" is "10:2,6,11:3").
local function packed_pairs(cfg)
  local out, last = {}, nil
  for i, p in ipairs(cfg) do
    local m, b = string.match(p, '^(%d+):(%d+)$')
    out[i] = m == last and b or p
    last = m
  end
  return table.concat(out, ',')
end

local function unpacked_pairs(packed)
  local cfg, m = {}, nil
  for item in string.gmatch(packed, '[^,]+') do
    local master, b = string.match(item, '^(%d+):(%d+)$')
    if master then m = master else b = item end
    cfg[#cfg + 1] = m .. ':' .. b
  end
  return cfg
end

-- Saves the worker and logs one change for it; masterid is a decimal string or nil.
local function commit_worker(w, event, masterid)
  local rev_s = next_revision()
  local holder = usable_holder(w, tonumber(rev_s))
  save_worker(w)
  local head = EVENT_CODE[event] .. '|' .. (masterid or '') .. '|' .. w.id .. '|' .. w.paused
    .. w.graceful .. '|' .. table.concat(w.conn, ',') .. '|' .. packed_pairs(w.cfg) .. '|'
  if holder then
    add_entry(rev_s, 'w', head .. string.format('%d', holder) .. '|' .. w.reason)
  else
    add_entry(rev_s, 'w', head .. '|' .. w.reason .. '\n' .. w.name .. '\n' .. w.info)
    redis.call('HSET', holders_of(w.id), w.id, rev_s .. ':' .. epoch_tag())
  end
end

local ENTRY_PATTERN = '^(%a)|(%d*)|(%d+)|([01])([01])|([%d,]*)|([%d:,]*)|(%d*)|(.*)$'
local HELD_PATTERN = '^([^\n]*)\n([^\n]*)\n(.*)$'

-- The revision of a log entry id ("<revision>-1"), as a number.
local function revision_of(entry_id)
  return tonumber(string.match(entry_id, '^(%d+)-'))
end

-- A compact entry's parts; name and info only for a holder (holder '').
local function parse_entry(text)
  local e = {}
  e.code, e.mid, e.wid, e.paused, e.graceful, e.conn, e.cfg, e.holder, e.reason =
    string.match(text, ENTRY_PATTERN)
  if e.holder == '' then e.reason, e.name, e.info = string.match(e.reason, HELD_PATTERN) end
  return e
end

-- The name and workerinfo of workerid's holder entry at revision holder (a string), or
-- nil when it is no longer kept; holders caches what was read.
local function holder_of(holder, workerid, holders)
  local found = holders[holder]
  if found == nil then
    found = false
    local got = redis.call('XRANGE', K_CHANGES, holder .. '-1', holder .. '-1')
    if got[1] and got[1][2][1] == 'w' then
      local e = parse_entry(got[1][2][2])
      if e.wid == workerid and e.holder == '' then found = {e.name, e.info} end
    end
    holders[holder] = found
  end
  return found or nil
end

-- The routing key and body of a log entry (its id and fields as XRANGE gives them), or
-- nil when its holder is no longer kept; holders caches the holders read.
local function read_entry(id, fields, holders)
  if fields[1] ~= 'w' then
    local v = {}
    for i = 1, #fields, 2 do v[fields[i]] = fields[i + 1] end
    return v.k, v.b
  end
  local e = parse_entry(fields[2])
  if e.holder ~= '' then
    local found = holder_of(e.holder, e.wid, holders)
    if not found then return nil end
    e.name, e.info = found[1], found[2]
  end
  local event = CODE_EVENT[e.code]
  local w = {id = e.wid, name = e.name, info = e.info, paused = e.paused, reason = e.reason,
             graceful = e.graceful, conn = split(e.conn), cfg = unpacked_pairs(e.cfg)}
  return worker_key(e.wid, event), '{"revision":' .. string.format('%d', revision_of(id))
    .. ',"event":"' .. event .. '","workerid":' .. e.wid .. ',"masterid":'
    .. (e.mid ~= '' and e.mid or 'null') .. ',"worker":' .. render_worker(w) .. '}'
end

-- Masters ------------------------------------------------------------------------------

local function render_master(id)
  local v = redis.call('HMGET', P_MASTER .. id, 'name', 'active', 'last_seen')
  return '{"id":' .. id .. ',"name":' .. (v[1] or 'null') .. ',"active":'
    .. (v[2] == '1' and 'true' or 'false') .. ',"last_seen":'
    .. (v[3] and ('"' .. iso_utc(tonumber(v[3])) .. '"') or 'null') .. '}'
end

local function commit_master(id, event)
  append_change(master_key(id, event),
    '"event":"' .. event .. '","masterid":' .. id .. ',"master":' .. render_master(id) .. '}')
end

-- Removes master mid from every worker (connections and pairs), in ascending worker id,
-- logging 'disconnected' for the connected ones and 'configured' for the others.
-- Returns how many workers changed.
local function drop_master_from_workers(mid)
  local sets = span_keys(P_CONN, mid, 0)
  for _, key in ipairs(span_keys(P_CFG, mid, 0)) do sets[#sets + 1] = key end
  local ids = redis.call('SUNION', unpack(sets))
  table.sort(ids, num_less)
  local changed = 0
  for _, id in ipairs(ids) do
    local w = load_worker(id)
    if w then
      local was_connected = false
      local at = index_of(w.conn, mid)
      if at then table.remove(w.conn, at); was_connected = true end
      local kept = without_master(w.cfg, mid)
      redis.call('HDEL', P_SESSION .. id, mid)
      if was_connected or #kept ~= #w.cfg then
        w.cfg = kept
        commit_worker(w, was_connected and 'disconnected' or 'configured', mid)
        changed = changed + 1
      end
    end
  end
  redis.call('DEL', unpack(sets))
  return changed
end

-- Stores the given state fields (paused, reason, graceful) of worker id as given and
-- logs 'state_updated' when one of them changed; returns the number of changes.
local function set_worker_state(id, fields)
  local w = must_load_worker(id)
  local changed = 0
  for field, value in pairs(fields) do
    if w[field] ~= value then
      w[field] = value
      changed = 1
    end
  end
  if changed == 1 then commit_worker(w, 'state_updated', nil) end
  return changed
end

-- Makes master mid inactive after a stop or an expiry; returns whether it was active.
local function deactivate_master(mid)
  local key = P_MASTER .. mid
  local was_active = redis.call('HGET', key, 'active') == '1'
  redis.call('HSET', key, 'active', '0')
  redis.call('ZREM', K_LEASES, mid)
  redis.call('ZADD', K_MASTERS, mid, mid)
  return was_active
end

