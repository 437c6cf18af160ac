#!lua name=sse_bridge_v4
-- sse-bridge's session log (PROTOCOL §4) as Redis functions, loaded by every
-- sse-bridge gateway and worker at connect, so any worker, in any language,
-- appends an event with one call:
--
--   FCALL sse_bridge_v4_append 3 sse_events:<id> sse_session_meta:<id> sse_folded:<id> <event json> <event_type> <attempt> [<key> [again]]
--
-- or several events of one session with one call (SDKs batch the events
-- that queue up while an append is in flight):
--
--   FCALL sse_bridge_v4_append_batch 3 <the same keys> <attempt> <key> <again> <event json> <event_type> [<event json> <event_type> ...]
--
-- (on a Redis Cluster the names carry the id as a hash tag: `sse_events:{<id>}` ...).
--
-- Versions: the library's name carries its version, and so does every
-- function's, so gateways and workers of two versions run side by side
-- during a rolling deploy, each calling its own (`FUNCTION LOAD REPLACE`
-- replaces only the library of the same version). Version 1 (`sse_bridge`,
-- `sse_bridge_append 2 <log> <meta> ...`) capped logs by entries; version 2
-- knew no `interrupt` (PROTOCOL §8) and no thread records; version 3 made
-- ten Redis calls per event (about 20 µs of Redis CPU) and had no batches.
--
-- Per session: the Stream `sse_events:<id>` (field `e` = the event's JSON)
-- holds the events as they were appended; the
-- Stream `sse_folded:<id>` holds the log's folded head (field `e`, and `f` =
-- the first log id an entry covers; its id is the last one); the hash
-- `sse_session_meta:<id>` is written by the gateway at creation (created_at,
-- principal, format, on_disconnect, followers:<gateway>, ttl_ms, tail_max,
-- folded_max, live_ms, and where the session's events go: channel, publish =
-- PUBLISH | SPUBLISH, batches = 1 when its gateways read a JSON array as a
-- batch of events) and updated here (attempt, output, active_ms,
-- refreshed_ms, ended, tail_bytes, folded_bytes, dropped). Appending and
-- publishing happen in one function, so the log and the live channel never
-- disagree, and the attempt rule of sse-bridge-core's `log::attempts` is
-- applied atomically with the append. The folding rule is sse-bridge-core's
-- `log::fold`; the log conformance tests hold this file and those Rust
-- modules to the same outcomes.
--
-- The cost of an append is its Redis calls (1-4 µs each), so the hot path
-- makes as few as it can: one HMGET of the metadata, one TIME, one XADD per
-- event, one HSET of everything that changed, one PUBLISH per call. The
-- bound attempt's activity is recorded once per 1/32 of the liveness window
-- and the TTLs are refreshed once per 1/16 of the TTL (and at the end),
-- rather than on every event.

-- A folded text event's text grows no larger (`fold::FOLDED_TEXT_MAX`).
local FOLDED_TEXT_MAX = 8192
-- Entries folded by one call at most: bounds the work of any one append.
local FOLD_BATCH = 1000
-- A batch is published as one message up to this size (gateways drop
-- messages over 1 MiB before reading them), one message per event past it.
local BATCH_MESSAGE_MAX = 512 * 1024

local function is_terminal(event_type)
  return event_type == 'FinalAnswerStreamEnd' or event_type == 'error' or event_type == 'interrupt'
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
-- encoded once, when the run closes (`fold::Folder`). Reads and updates
-- `state.tail_bytes` and `state.folded_bytes`; records `dropped` in `changes`.
local function bound(keys, meta, state, changes)
  local tail_max, folded_max = tonumber(meta.tail_max), tonumber(meta.folded_max)
  if state.tail_bytes <= tail_max then return end
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
    if state.tail_bytes - freed <= target then break end
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
  if not upto then return end
  for _, entry in ipairs(closed) do
    if entry.id then
      growth = growth - entry.replaced
      redis.call('XDEL', keys[3], entry.id)
    end
    redis.call('XADD', keys[3], entry.last, 'e', entry.json, 'f', entry.first)
    growth = growth + #entry.json
  end
  redis.call('XTRIM', keys[1], 'MINID', successor(upto))
  -- The folded head may have just been created: it expires with the rest.
  redis.call('PEXPIRE', keys[3], meta.ttl_ms)
  state.tail_bytes = state.tail_bytes - freed
  state.folded_bytes = state.folded_bytes + growth
  if state.folded_bytes > folded_max then
    local dropped, dropped_bytes = nil, 0
    for _, entry in ipairs(redis.call('XRANGE', keys[3], '-', '+', 'COUNT', FOLD_BATCH)) do
      if state.folded_bytes - dropped_bytes <= folded_max then break end
      dropped_bytes, dropped = dropped_bytes + #field(entry[2], 'e'), entry[1]
    end
    if dropped then
      redis.call('XTRIM', keys[3], 'MINID', successor(dropped))
      state.folded_bytes = state.folded_bytes - dropped_bytes
      changes.dropped = dropped
    end
  end
end

-- The first entry the session's last keyed call logged, if that call's
-- idempotency key is `key` (metadata field `last_key` = `<key>\n<id>`). A
-- retry comes right after the call it repeats (an SDK sends a session's
-- calls one after the other), so the last call is the only one to check:
-- one field read, paid only by calls that ask.
local function already_logged(meta_key, key)
  local last = redis.call('HGET', meta_key, 'last_key')
  if not last then return nil end
  local logged_key, id = string.match(last, '^(.*)\n([^\n]*)$')
  if logged_key == key then return id end
  return nil
end

-- The metadata fields an append reads when the session has no hot record.
local META_FIELDS = {'created_at', 'ended', 'attempt', 'output', 'ttl_ms', 'tail_max', 'folded_max',
  'channel', 'publish', 'max_len', 'live_ms', 'active_ms', 'refreshed_ms', 'tail_bytes',
  'folded_bytes', 'batches'}

-- The hot record (metadata field `hot`): what every append reads and
-- writes, as one string, because one field costs Redis a fraction of
-- sixteen: tail_bytes|folded_bytes|active_ms|refreshed_ms|ttl_ms|tail_max|
-- folded_max|live_ms|batches|publish|channel (the channel last: it may hold
-- any character). The first append of a session builds it from the
-- gateway's fields. What decides the attempt rule (ended, attempt, output)
-- stays in fields of its own, read on every call, written when it changes:
-- a gateway reads them, and so does a function of an older version
-- appending to the same session during a rolling deploy.
local HOT_RECORD = '^(%d+)|(%d+)|(%d*)|(%d*)|(%d+)|(%d+)|(%d+)|(%d+)|([01])|(%u+)|(.*)$'

local function hot_record(meta, state)
  return state.tail_bytes .. '|' .. state.folded_bytes .. '|' .. (meta.active_ms or '') .. '|'
    .. (meta.refreshed_ms or '') .. '|' .. meta.ttl_ms .. '|' .. meta.tail_max .. '|'
    .. meta.folded_max .. '|' .. (meta.live_ms or '0') .. '|' .. (meta.batches or '0') .. '|'
    .. meta.publish .. '|' .. meta.channel
end

local function read_meta(meta_key)
  local values = redis.call('HMGET', meta_key, 'hot', 'ended', 'attempt', 'output')
  local meta
  if values[1] then
    local tail, folded, active, refreshed, ttl, tail_max, folded_max, live, batches, command, channel =
      string.match(values[1], HOT_RECORD)
    if tail then
      meta = {created_at = true, tail_bytes = tail, folded_bytes = folded, ttl_ms = ttl,
        tail_max = tail_max, folded_max = folded_max, live_ms = live, batches = batches,
        publish = command, channel = channel}
      if active ~= '' then meta.active_ms = active end
      if refreshed ~= '' then meta.refreshed_ms = refreshed end
      if values[2] then meta.ended = values[2] end
      if values[3] then meta.attempt = values[3] end
      if values[4] then meta.output = values[4] end
      return meta
    end
  end
  values = redis.call('HMGET', meta_key, unpack(META_FIELDS))
  meta = {}
  for i, name in ipairs(META_FIELDS) do
    if values[i] then meta[name] = values[i] end
  end
  return meta
end

-- Milliseconds on Redis's clock: the time part of the call's first entry
-- id (XADD reads the clock anyway), or TIME when nothing was logged yet.
-- TIME is allowed here: functions replicate their effects, not the call.
local function now(call)
  if not call.now then
    local time = redis.call('TIME')
    call.now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  end
  return call.now
end

-- One call's work on a session: the metadata read once, the events logged
-- one by one, and what changed written back (one HSET), the TTLs refreshed
-- when due and the messages published (one PUBLISH) by `commit`.
local function open_call(keys)
  local meta = read_meta(keys[2])
  if not meta.created_at then return nil end
  return {
    keys = keys,
    meta = meta,
    state = {tail_bytes = tonumber(meta.tail_bytes or '0'), folded_bytes = tonumber(meta.folded_bytes or '0')},
    changes = {},
    messages = {},
    ids = {},
    logged = false,
    terminal = false,
  }
end

-- The liveness window's resolution: activity is recorded at most this often.
local function granule(live_ms)
  return math.floor(live_ms / 32)
end

-- Sessions without a liveness window (live_ms absent or 0: created by a
-- gateway that predates it) record no activity.
local function live_ms(meta)
  local live = tonumber(meta.live_ms or '0')
  if live <= 0 then return nil end
  return live
end

-- The bound attempt was active now.
local function mark_active(call)
  local live = live_ms(call.meta)
  if not live then return end
  local active = tonumber(call.meta.active_ms or '')
  local at = now(call)
  if not active or at - active >= granule(live) then
    call.meta.active_ms = tostring(at)
  end
end

-- The bound attempt counts as live: active within the window, which a
-- recorded activity extends by its resolution (never stale too early).
local function bound_is_live(call)
  local live = live_ms(call.meta)
  if not live then return false end
  return now(call) - tonumber(call.meta.active_ms or 0) < live + granule(live)
end

-- Appends `event` (with its idempotency key `key` when given) and queues
-- its publication with its entry id as `log_id`; a terminal event marks
-- the session ended.
local function log_event(call, event, terminal, key)
  local keys, meta = call.keys, call.meta
  local id
  if meta.tail_max then
    id = redis.call('XADD', keys[1], '*', 'e', event)
    if key and key ~= '' then call.changes.last_key = key .. '\n' .. id end
    call.state.tail_bytes = call.state.tail_bytes + #event
    call.logged = true
  else
    -- A version 1 session: capped by entries.
    id = redis.call('XADD', keys[1], 'MAXLEN', '~', meta.max_len, '*', 'e', event)
  end
  if not call.now then call.now = tonumber(string.match(id, '^(%d+)')) end
  if terminal then
    meta.ended = id
    call.changes.ended = id
    call.terminal = true
  end
  table.insert(call.messages, string.sub(event, 1, -2) .. ',"log_id":"' .. id .. '"}')
  return id
end

-- Writes back what the call changed, refreshes the TTLs when due and
-- publishes its messages: one JSON array when the session's gateways read
-- batches, one message each otherwise. Returns the receivers.
local function commit(call)
  local keys, meta, changes = call.keys, call.meta, call.changes
  if call.active then mark_active(call) end
  if call.logged then bound(keys, meta, call.state, changes) end
  local ttl = tonumber(meta.ttl_ms)
  local refreshed = tonumber(meta.refreshed_ms or '')
  if call.terminal or not refreshed or now(call) - refreshed >= math.floor(ttl / 16) then
    redis.call('PEXPIRE', keys[1], ttl)
    redis.call('PEXPIRE', keys[2], ttl)
    redis.call('PEXPIRE', keys[3], ttl)
    meta.refreshed_ms = now(call)
  end
  local fields = {}
  for name, value in pairs(changes) do
    table.insert(fields, name)
    table.insert(fields, value)
  end
  -- Sessions of a version 1 gateway (capped by entries) keep no record.
  if meta.tail_max and meta.channel then
    table.insert(fields, 'hot')
    table.insert(fields, hot_record(meta, call.state))
  end
  if #fields > 0 then redis.call('HSET', keys[2], unpack(fields)) end
  local messages, receivers = call.messages, 0
  if #messages == 0 then return 0 end
  local command, channel = route(keys[1], meta)
  if #messages > 1 and meta.batches == '1' then
    local batch = '[' .. table.concat(messages, ',') .. ']'
    if #batch <= BATCH_MESSAGE_MAX then return redis.call(command, channel, batch) end
  end
  for _, message in ipairs(messages) do
    receivers = redis.call(command, channel, message)
  end
  return receivers
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

-- One event of a worker's call, under the attempt rule. Returns the entry
-- id when logged, '' when only published (heartbeats), or nil and the
-- refusal: ended | not_acked | foreign | busy | lost.
local function admit(call, event, event_type, attempt, key)
  local meta = call.meta
  if meta.ended then return nil, 'ended' end
  local bound_attempt = meta.attempt
  if event_type == 'worker_ack' then
    if bound_attempt and bound_attempt ~= attempt then
      -- The bound attempt is live: it serves the session, this one steps aside.
      if bound_is_live(call) then return nil, 'busy' end
      if meta.output then
        -- The bound attempt was given up mid-answer: end rather than splice.
        local lost = '{"event_type":"error","payload":{"error":"the job was delivered again after its first attempt had started answering","code":"worker_lost"}}'
        log_event(call, lost, true)
        return nil, 'lost'
      end
    end
    if bound_attempt ~= attempt then
      meta.attempt = attempt
      call.changes.attempt = attempt
      -- A new binding is active from now, whatever the last one recorded.
      meta.active_ms = nil
    end
  elseif not bound_attempt then
    return nil, 'not_acked'
  elseif bound_attempt ~= attempt then
    return nil, 'foreign'
  elseif event_type == 'worker_heartbeat' then
    call.active = true
    table.insert(call.messages, event)
    return ''
  elseif not meta.output then
    meta.output = '1'
    call.changes.output = '1'
  end
  -- The activity is marked once per call, by `commit` (the entry id of the
  -- call's first event gives the clock).
  call.active = true
  return log_event(call, event, is_terminal(event_type), key)
end

-- A worker's event. Returns {1, log_id, receivers} when logged,
-- {2, '', receivers} when only published (heartbeats), {0, refusal} when
-- refused: unknown | ended | not_acked | foreign | busy | lost; an error reply for
-- an event that is not what the call says.
-- Optional ARGV[4] is the publish's idempotency key, remembered as the
-- session's last (`last_key`); with ARGV[5] = 'again' (a retry after an
-- ambiguous failure), a call whose key is the last logged one is answered
-- with its entry instead of appending a duplicate.
local function append(keys, args)
  local event, event_type, attempt = args[1], args[2], args[3] or ''
  local key, again = args[4] or '', args[5] == 'again'
  local problem = invalid(event, event_type, attempt)
  if problem then return redis.error_reply(problem) end
  local call = open_call(keys)
  if not call then return {0, 'unknown'} end
  if again and key ~= '' then
    local id = already_logged(keys[2], key)
    if id then return {1, id, 0} end
  end
  local id, refusal = admit(call, event, event_type, attempt, key)
  local receivers = commit(call)
  if not id then return {0, refusal} end
  if id == '' then return {2, '', receivers} end
  return {1, id, receivers}
end

-- Several events of one attempt, in order, as one call: ARGV = attempt,
-- key, again, then (event json, event_type) pairs. Each event is admitted
-- as `append` would; the first refusal stops the batch (the events before
-- it stand). Returns {ids, refusal, receivers}: `ids` has one entry per
-- admitted event (its log id, '' for a heartbeat), `refusal` is '' or why
-- the next event was refused (unknown | ended | not_acked | foreign | busy
-- | lost); an error reply, before anything is appended, when an event is
-- not what the call says.
-- `key` (optional) is the batch's idempotency key, remembered with its
-- first logged entry; with again = 'again', a batch that was the last one
-- logged under that key is answered with its entries' ids instead of being
-- appended twice.
local function append_batch(keys, args)
  local attempt, key, again = args[1] or '', args[2] or '', args[3] == 'again'
  local count = math.floor((#args - 3) / 2)
  if count < 1 or #args % 2 == 0 then
    return redis.error_reply('append_batch takes attempt, key, again, then event and event_type pairs')
  end
  for i = 1, count do
    local problem = invalid(args[2 + 2 * i], args[3 + 2 * i], attempt)
    if problem then return redis.error_reply('event ' .. i .. ': ' .. problem) end
  end
  local call = open_call(keys)
  if not call then return {{}, 'unknown', 0} end
  if again and key ~= '' then
    local first = already_logged(keys[2], key)
    if first then
      local entries = redis.call('XRANGE', keys[1], first, '+', 'COUNT', count)
      local ids, next_entry = {}, 1
      for i = 1, count do
        if args[3 + 2 * i] == 'worker_heartbeat' then
          table.insert(ids, '')
        elseif entries[next_entry] then
          table.insert(ids, entries[next_entry][1])
          next_entry = next_entry + 1
        end
      end
      return {ids, '', 0}
    end
  end
  local refusal = ''
  for i = 1, count do
    local id, refused = admit(call, args[2 + 2 * i], args[3 + 2 * i], attempt, (not call.logged) and key or nil)
    if not id then
      refusal = refused
      break
    end
    table.insert(call.ids, id)
  end
  return {call.ids, refusal, commit(call)}
end

-- The gateway ends the session with `terminal` unless it already ended.
-- Returns {1, log_id} (appended), {2, log_id} (already ended), {0, ''} (unknown).
local function finish(keys, args)
  local call = open_call(keys)
  if not call then return {0, ''} end
  if call.meta.ended then return {2, call.meta.ended} end
  local id = log_event(call, args[1], true)
  commit(call)
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

redis.register_function('sse_bridge_v4_append', append)
redis.register_function('sse_bridge_v4_append_batch', append_batch)
redis.register_function('sse_bridge_v4_end', finish)
redis.register_function{function_name = 'sse_bridge_v4_read', callback = read, flags = {'no-writes'}}
redis.register_function('sse_bridge_v4_follow', follow)

-- Aliases: the client-chosen names of sessions (`sse_alias:chat:<chat id>`,
-- `sse_alias:ag-ui-run:<run id>`), each held by the principal that first
-- used it. The value is `<owner>\n<session id>` (a value without a newline,
-- from a gateway before owners, counts as unowned).
--
--   FCALL sse_bridge_v4_claim 1 sse_alias:<alias> <owner> <session id> <ttl ms>
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

redis.register_function('sse_bridge_v4_claim', claim)

-- Threads (PROTOCOL §8): a conversation's record, `sse_thread:<thread id>`,
-- a hash of `rev` (its revision) and `record` (JSON written by the gateway).
-- The gateway decides every change with one pure rule (sse-bridge-core's
-- `thread::rule`) and writes it here only if nobody wrote in between:
--
--   FCALL sse_bridge_v4_thread_put 1 sse_thread:<id> <expected rev> <record json> <ttl ms>
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

redis.register_function('sse_bridge_v4_thread_put', thread_put)
