#!lua name=sse_bridge_v3
-- sse-bridge's session log (PROTOCOL §4) as Redis functions, loaded by every
-- sse-bridge gateway and worker at connect, so any worker, in any language,
-- appends an event with one call:
--
--   FCALL sse_bridge_v3_append 3 sse_events:<id> sse_session_meta:<id> sse_folded:<id> <event json> <event_type> <attempt> [<key> [again]]
--
-- (on a Redis Cluster the names carry the id as a hash tag: `sse_events:{<id>}` ...).
--
-- Versions: the library's name carries its version, and so does every
-- function's, so gateways and workers of two versions run side by side
-- during a rolling deploy, each calling its own (`FUNCTION LOAD REPLACE`
-- replaces only the library of the same version). Version 1 (`sse_bridge`,
-- `sse_bridge_append 2 <log> <meta> ...`) capped logs by entries; version 2
-- knew no `interrupt` (PROTOCOL §8) and no thread records.
--
-- Per session: the Stream `sse_events:<id>` (field `e` = the event's JSON,
-- `k` = an idempotency key) holds the events as they were appended; the
-- Stream `sse_folded:<id>` holds the log's folded head (field `e`, and `f` =
-- the first log id an entry covers; its id is the last one); the hash
-- `sse_session_meta:<id>` is written by the gateway at creation (created_at,
-- principal, format, on_disconnect, followers:<gateway>, ttl_ms, tail_max,
-- folded_max, live_ms, and where the session's events go: channel, publish =
-- PUBLISH | SPUBLISH) and updated here (attempt, output, active_ms, ended,
-- tail_bytes, folded_bytes, dropped). Appending and publishing happen in one function,
-- so the log and the live channel never disagree, and the attempt rule of
-- sse-bridge-core's `log::attempts` is applied atomically with the append.
-- The folding rule is sse-bridge-core's `log::fold`; the log conformance
-- tests hold this file and those Rust modules to the same outcomes.

-- A folded text event's text grows no larger (`fold::FOLDED_TEXT_MAX`).
local FOLDED_TEXT_MAX = 8192
-- Entries folded by one call at most: bounds the work of any one append.
local FOLD_BATCH = 1000

local function is_terminal(event_type)
  return event_type == 'FinalAnswerStreamEnd' or event_type == 'error' or event_type == 'interrupt'
end

local function refresh(keys, ttl_ms)
  redis.call('PEXPIRE', keys[1], ttl_ms)
  redis.call('PEXPIRE', keys[2], ttl_ms)
  redis.call('PEXPIRE', keys[3], ttl_ms)
end

-- Where the session's events go, as its gateway recorded it. Sessions
-- created by a version 1 gateway do not say: their channel is the log's
-- name with the other prefix, sharded when the name carries a hash tag.
local function route(log_key, meta)
  if meta.channel then return meta.publish, meta.channel end
  local channel = 'sse_session:' .. string.sub(log_key, #'sse_events:' + 1)
  if string.find(log_key, '{', 1, true) then return 'SPUBLISH', channel end
  return 'PUBLISH', channel
end

local function publish(keys, meta, message)
  local command, channel = route(keys[1], meta)
  return redis.call(command, channel, message)
end

local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

local function id_before(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  a_ms, b_ms = tonumber(a_ms), tonumber(b_ms)
  return a_ms < b_ms or (a_ms == b_ms and tonumber(a_seq) < tonumber(b_seq))
end

local function successor(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end

-- The kind and text of a plain text piece (`fold::plain_piece`), or nil.
local function plain_piece(json)
  local ok, event = pcall(cjson.decode, json)
  if not ok or type(event) ~= 'table' then return nil end
  local kind = event.event_type
  if kind ~= 'AgentThoughtStream' and kind ~= 'FinalAnswerStream' then return nil end
  for name in pairs(event) do
    if name ~= 'event_type' and name ~= 'payload' and name ~= 'attempt' then return nil end
  end
  local payload = event.payload
  if type(payload) ~= 'table' or type(payload.char) ~= 'string' then return nil end
  for name in pairs(payload) do
    if name ~= 'char' then return nil end
  end
  return kind, payload.char
end

local function text_event(kind, text)
  return '{"event_type":"' .. kind .. '","payload":{"char":' .. cjson.encode(text) .. '}}'
end

-- Folds the oldest appended entries into the folded head until the
-- appended ones are down to three quarters of their share (at most
-- FOLD_BATCH at a time), then drops the folded head's oldest entries while
-- it is over its own share. A text run's pieces are gathered in a table and
-- encoded once, when the run closes (`fold::Folder`).
local function bound(keys, meta, tail_bytes)
  local tail_max, folded_max = tonumber(meta.tail_max), tonumber(meta.folded_max)
  if tail_bytes > tail_max then
    local target = tail_max - math.floor(tail_max / 4)
    local closed, open, growth = {}, nil, 0
    local function close()
      if not open then return end
      if open.kind then
        open.json = text_event(open.kind, table.concat(open.parts))
      end
      -- The head's last entry, reopened and grown, replaces itself.
      if not (open.id and open.id == open.last) then table.insert(closed, open) end
      open = nil
    end
    -- The head's last entry may grow if it is a text run.
    local last = redis.call('XREVRANGE', keys[3], '+', '-', 'COUNT', 1)[1]
    if last then
      local json = field(last[2], 'e')
      local kind, text = plain_piece(json)
      if kind then
        open = {id = last[1], first = field(last[2], 'f'), last = last[1], kind = kind,
          parts = {text}, length = #text, replaced = #json}
      end
    end
    local freed, upto = 0, nil
    for _, entry in ipairs(redis.call('XRANGE', keys[1], '-', '+', 'COUNT', FOLD_BATCH)) do
      if tail_bytes - freed <= target then break end
      local json = field(entry[2], 'e')
      freed, upto = freed + #json, entry[1]
      local kind, text = plain_piece(json)
      if kind and open and open.kind == kind and open.length + #text <= FOLDED_TEXT_MAX then
        table.insert(open.parts, text)
        open.length = open.length + #text
        open.last = entry[1]
      else
        close()
        open = {first = entry[1], last = entry[1], kind = kind, json = json}
        if kind then open.parts, open.length = {text}, #text end
      end
    end
    close()
    if upto then
      for _, entry in ipairs(closed) do
        if entry.id then
          growth = growth - entry.replaced
          redis.call('XDEL', keys[3], entry.id)
        end
        redis.call('XADD', keys[3], entry.last, 'e', entry.json, 'f', entry.first)
        growth = growth + #entry.json
      end
      redis.call('XTRIM', keys[1], 'MINID', successor(upto))
      redis.call('HINCRBY', keys[2], 'tail_bytes', -freed)
      redis.call('HINCRBY', keys[2], 'folded_bytes', growth)
    end
  end
  local folded_bytes = tonumber(redis.call('HGET', keys[2], 'folded_bytes') or '0')
  if folded_bytes > folded_max then
    local dropped, freed = nil, 0
    for _, entry in ipairs(redis.call('XRANGE', keys[3], '-', '+', 'COUNT', FOLD_BATCH)) do
      if folded_bytes - freed <= folded_max then break end
      freed, dropped = freed + #field(entry[2], 'e'), entry[1]
    end
    if dropped then
      redis.call('XTRIM', keys[3], 'MINID', successor(dropped))
      redis.call('HINCRBY', keys[2], 'folded_bytes', -freed)
      redis.call('HSET', keys[2], 'dropped', dropped)
    end
  end
end

-- Appends `event` (with its idempotency key `key` when given), marks the
-- session ended if it is terminal, keeps the log within its bound,
-- refreshes the TTLs and publishes the event with its entry id as `log_id`.
local function push(keys, meta, event, terminal, key)
  local id
  if meta.tail_max then
    if key and key ~= '' then
      id = redis.call('XADD', keys[1], '*', 'e', event, 'k', key)
    else
      id = redis.call('XADD', keys[1], '*', 'e', event)
    end
    bound(keys, meta, redis.call('HINCRBY', keys[2], 'tail_bytes', #event))
  else
    -- A version 1 session: capped by entries.
    id = redis.call('XADD', keys[1], 'MAXLEN', '~', meta.max_len, '*', 'e', event)
  end
  if terminal then
    redis.call('HSET', keys[2], 'ended', id)
  end
  refresh(keys, meta.ttl_ms)
  local message = string.sub(event, 1, -2) .. ',"log_id":"' .. id .. '"}'
  return id, publish(keys, meta, message)
end

-- The entry of the last few with idempotency key `key`, if any.
local function already_logged(log_key, key)
  for _, entry in ipairs(redis.call('XREVRANGE', log_key, '+', '-', 'COUNT', 16)) do
    if field(entry[2], 'k') == key then return entry[1] end
  end
  return nil
end

local META_FIELDS = {'created_at', 'ended', 'attempt', 'output', 'ttl_ms', 'tail_max', 'folded_max',
  'channel', 'publish', 'max_len', 'live_ms', 'active_ms'}

local function read_meta(meta_key)
  local values = redis.call('HMGET', meta_key, unpack(META_FIELDS))
  local meta = {}
  for i, name in ipairs(META_FIELDS) do
    if values[i] then meta[name] = values[i] end
  end
  return meta
end

-- Milliseconds on Redis's clock, or nil when the session has no liveness
-- window (live_ms absent or 0: created by a gateway that predates it).
-- TIME is allowed here: functions replicate their effects, not the call.
local function clock_if_live(live_ms)
  if not live_ms or tonumber(live_ms) <= 0 then return nil end
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- The bound attempt was active at `now` (nil: not recorded).
local function mark_active(meta_key, now)
  if now then redis.call('HSET', meta_key, 'active_ms', now) end
end

-- Refuses an event whose JSON disagrees with the call: the log and every
-- reader rely on what it says.
local function invalid(event, event_type, attempt)
  local ok, decoded = pcall(cjson.decode, event)
  if not ok or type(decoded) ~= 'table' or string.sub(event, 1, 1) ~= '{' or string.sub(event, -1) ~= '}' then
    return 'the event must be a JSON object without surrounding whitespace'
  end
  if decoded.event_type ~= event_type then
    return 'the event_type argument (' .. event_type .. ') is not the event\'s own event_type'
  end
  if decoded.log_id ~= nil then
    return 'the event carries a log_id: that field is reserved for the log, which assigns it'
  end
  if decoded.attempt ~= nil and decoded.attempt ~= attempt then
    return 'the attempt argument is not the event\'s own attempt'
  end
  return nil
end

-- A worker's event. Returns {1, log_id, receivers} when logged,
-- {2, '', receivers} when only published (heartbeats), {0, refusal} when
-- refused: unknown | ended | not_acked | foreign | busy | lost; an error reply for
-- an event that is not what the call says.
-- Optional ARGV[4] is the publish's idempotency key, stored with the entry;
-- with ARGV[5] = 'again' (a retry after an ambiguous failure), an entry
-- already carrying that key is answered instead of appending a duplicate.
local function append(keys, args)
  local event, event_type, attempt = args[1], args[2], args[3] or ''
  local key, again = args[4] or '', args[5] == 'again'
  local problem = invalid(event, event_type, attempt)
  if problem then return redis.error_reply(problem) end
  local meta = read_meta(keys[2])
  if not meta.created_at then return {0, 'unknown'} end
  if again and key ~= '' then
    local id = already_logged(keys[1], key)
    if id then return {1, id, 0} end
  end
  if meta.ended then return {0, 'ended'} end
  local bound_attempt, output = meta.attempt, meta.output
  -- The bound attempt's last activity is recorded (active_ms) only for
  -- sessions with a liveness window.
  local now = clock_if_live(meta.live_ms)
  if event_type == 'worker_ack' then
    if bound_attempt and bound_attempt ~= attempt then
      if now and now - tonumber(meta.active_ms or 0) < tonumber(meta.live_ms) then
        -- The bound attempt is live: it serves the session, this one steps aside.
        return {0, 'busy'}
      end
      if output then
        -- The bound attempt was given up mid-answer: end rather than splice.
        local lost = '{"event_type":"error","payload":{"error":"the job was delivered again after its first attempt had started answering","code":"worker_lost"}}'
        push(keys, meta, lost, true)
        return {0, 'lost'}
      end
    end
    redis.call('HSET', keys[2], 'attempt', attempt)
    mark_active(keys[2], now)
  elseif not bound_attempt then
    return {0, 'not_acked'}
  elseif bound_attempt ~= attempt then
    return {0, 'foreign'}
  elseif event_type == 'worker_heartbeat' then
    mark_active(keys[2], now)
    refresh(keys, meta.ttl_ms)
    return {2, '', publish(keys, meta, event)}
  else
    if not output then redis.call('HSET', keys[2], 'output', '1') end
    mark_active(keys[2], now)
  end
  local id, receivers = push(keys, meta, event, is_terminal(event_type), key)
  return {1, id, receivers}
end

-- The gateway ends the session with `terminal` unless it already ended.
-- Returns {1, log_id} (appended), {2, log_id} (already ended), {0, ''} (unknown).
local function finish(keys, args)
  local meta = read_meta(keys[2])
  if not meta.created_at then return {0, ''} end
  if meta.ended then return {2, meta.ended} end
  local id = push(keys, meta, args[1], true)
  return {1, id}
end

-- The entries after `after` ('' = from the start): the folded head's, then
-- the appended ones', up to `count` entries and (past the first) `max_bytes`
-- bytes of JSON. Returns {lost, {{id, {'e', json, ...}}, ...}, known (0/1),
-- more (0/1)}: `lost` is '' or why the replay cannot be served without a
-- gap (`fold::HistoryLost`): 'dropped' (entries after `after` are gone) or
-- 'merged' (`after` lies inside a folded text event).
local function read(keys, args)
  local after, count, max_bytes = args[1], tonumber(args[2]), tonumber(args[3])
  local known = redis.call('EXISTS', keys[2])
  local dropped = redis.call('HGET', keys[2], 'dropped')
  if dropped and (after == '' or id_before(after, dropped)) then
    return {'dropped', {}, known, 0}
  end
  local start = '-'
  if after ~= '' then start = '(' .. after end
  local entries, bytes = {}, 0
  local function take(page)
    for _, entry in ipairs(page) do
      if #entries >= count or (#entries > 0 and bytes >= max_bytes) then return true end
      bytes = bytes + #field(entry[2], 'e')
      table.insert(entries, entry)
    end
    return false
  end
  local folded = redis.call('XRANGE', keys[3], start, '+', 'COUNT', count)
  if after ~= '' and folded[1] and not id_before(after, field(folded[1][2], 'f')) then
    return {'merged', {}, known, 0}
  end
  local full = take(folded) or (#folded == count)
  if not full then
    full = take(redis.call('XRANGE', keys[1], start, '+', 'COUNT', count - #entries))
  end
  local more = 0
  if full or #entries >= count or (#entries > 0 and bytes >= max_bytes) then more = 1 end
  return {'', entries, known, more}
end

-- Adds ARGV[1] to the count of streams gateway ARGV[2] serves of the
-- session (field `followers:<gateway>`: a crashed gateway's count lapses
-- with its presence); the new count, nil when the session is unknown.
local function follow(keys, args)
  if redis.call('EXISTS', keys[1]) == 0 then return false end
  return redis.call('HINCRBY', keys[1], 'followers:' .. args[2], args[1])
end

redis.register_function('sse_bridge_v3_append', append)
redis.register_function('sse_bridge_v3_end', finish)
redis.register_function{function_name = 'sse_bridge_v3_read', callback = read, flags = {'no-writes'}}
redis.register_function('sse_bridge_v3_follow', follow)

-- Aliases: the client-chosen names of sessions (`sse_alias:chat:<chat id>`,
-- `sse_alias:ag-ui-run:<run id>`), each held by the principal that first
-- used it. The value is `<owner>\n<session id>` (a value without a newline,
-- from a gateway before owners, counts as unowned).
--
--   FCALL sse_bridge_v3_claim 1 sse_alias:<alias> <owner> <session id> <ttl ms>
--
-- Binds the alias to the session for ttl ms unless another principal holds
-- it (one key: Cluster-safe). Returns 1 (bound) or 0 (taken, unchanged).
local function claim(keys, args)
  local owner, session, ttl_ms = args[1], args[2], args[3]
  local held = redis.call('GET', keys[1])
  if held then
    -- The owner is everything before the last newline (a session id has none).
    local holder = string.match(held, '^(.*)\n[^\n]*$')
    if holder and holder ~= owner then return 0 end
  end
  redis.call('SET', keys[1], owner .. '\n' .. session, 'PX', ttl_ms)
  return 1
end

redis.register_function('sse_bridge_v3_claim', claim)

-- Threads (PROTOCOL §8): a conversation's record, `sse_thread:<thread id>`,
-- a hash of `rev` (its revision) and `record` (JSON written by the gateway).
-- The gateway decides every change with one pure rule (sse-bridge-core's
-- `thread::rule`) and writes it here only if nobody wrote in between:
--
--   FCALL sse_bridge_v3_thread_put 1 sse_thread:<id> <expected rev> <record json> <ttl ms>
--
-- <expected rev> is the revision the rule read ('' for a thread that did
-- not exist). Returns the new revision, or 0 (another write came first: the
-- caller reads again and re-applies its rule). One key: Cluster-safe.
local function thread_put(keys, args)
  local expected, record, ttl_ms = args[1], args[2], args[3]
  local rev = redis.call('HGET', keys[1], 'rev')
  if (rev or '') ~= expected then return 0 end
  local next_rev = (tonumber(rev) or 0) + 1
  redis.call('HSET', keys[1], 'rev', next_rev, 'record', record)
  redis.call('PEXPIRE', keys[1], ttl_ms)
  return next_rev
end

redis.register_function('sse_bridge_v3_thread_put', thread_put)
