#!lua name=sse_bridge
-- sse-bridge's session log (PROTOCOL §4) as Redis functions, loaded by every
-- sse-bridge gateway and worker at connect (FUNCTION LOAD REPLACE), so any
-- worker, in any language, appends an event with one call:
--
--   FCALL sse_bridge_append 2 sse_events:<id> sse_session_meta:<id> <event json> <event_type> <attempt>
--
-- (on a Redis Cluster: `sse_events:{<id>} sse_session_meta:{<id>}`, and the
-- event goes out by SPUBLISH on `sse_session:{<id>}`).
-- Per session: the Stream `sse_events:<id>` (field `e` = the event's JSON)
-- and the hash `sse_session_meta:<id>` written by the gateway at creation
-- (created_at, principal, format, on_disconnect, followers, max_len, ttl_ms,
-- live_ms) and updated here (attempt, output, active_ms, ended). Appending and publishing happen
-- in one function, so the log and the live channel never disagree, and the
-- attempt rule of sse-bridge-core's `log::attempts` is applied atomically
-- with the append (the log conformance tests hold this file and that Rust
-- module to the same outcomes).

local LOG_PREFIX_LEN = 11 -- #'sse_events:' (the string library is not available at load time)

local function channel_of(log_key)
  return 'sse_session:' .. string.sub(log_key, LOG_PREFIX_LEN + 1)
end

-- Cluster mode names carry the session id as a hash tag
-- (`sse_events:{<id>}`, PROTOCOL §6): its channel is then a sharded one,
-- on this very shard.
local function publish(log_key, message)
  local command = 'PUBLISH'
  if string.find(log_key, '{', 1, true) then
    command = 'SPUBLISH'
  end
  return redis.call(command, channel_of(log_key), message)
end

local function is_terminal(event_type)
  return event_type == 'FinalAnswerStreamEnd' or event_type == 'error'
end

local function refresh(keys, ttl_ms)
  redis.call('PEXPIRE', keys[1], ttl_ms)
  redis.call('PEXPIRE', keys[2], ttl_ms)
end

-- Appends `event` (with its idempotency key `key` when given), marks the
-- session ended if it is terminal, refreshes the TTLs and publishes the
-- event with its entry id as `log_id`.
local function push(keys, event, terminal, max_len, ttl_ms, key)
  local id
  if key and key ~= '' then
    id = redis.call('XADD', keys[1], 'MAXLEN', '~', max_len, '*', 'e', event, 'k', key)
  else
    id = redis.call('XADD', keys[1], 'MAXLEN', '~', max_len, '*', 'e', event)
  end
  if terminal then
    redis.call('HSET', keys[2], 'ended', id)
  end
  refresh(keys, ttl_ms)
  local message = string.sub(event, 1, -2) .. ',"log_id":"' .. id .. '"}'
  return id, publish(keys[1], message)
end

-- The entry of the last few with idempotency key `key`, if any.
local function already_logged(log_key, key)
  for _, entry in ipairs(redis.call('XREVRANGE', log_key, '+', '-', 'COUNT', 16)) do
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'k' and fields[i + 1] == key then return entry[1] end
    end
  end
  return nil
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

-- A worker's event. Returns {1, log_id, receivers} when logged,
-- {2, '', receivers} when only published (heartbeats), {0, refusal} when
-- refused: unknown | ended | not_acked | foreign | busy | lost.
-- Optional ARGV[4] is the publish's idempotency key, stored with the entry;
-- with ARGV[5] = 'again' (a retry after an ambiguous failure), an entry
-- already carrying that key is answered instead of appending a duplicate.
local function append(keys, args)
  local event, event_type, attempt = args[1], args[2], args[3] or ''
  local key, again = args[4] or '', args[5] == 'again'
  if string.sub(event, 1, 1) ~= '{' or string.sub(event, -1) ~= '}' then
    return redis.error_reply('the event must be a JSON object without surrounding whitespace')
  end
  local meta = redis.call('HMGET', keys[2], 'created_at', 'ended', 'attempt', 'output', 'max_len', 'ttl_ms', 'live_ms', 'active_ms')
  if not meta[1] then return {0, 'unknown'} end
  if again and key ~= '' then
    local id = already_logged(keys[1], key)
    if id then return {1, id, 0} end
  end
  if meta[2] then return {0, 'ended'} end
  local bound, output, max_len, ttl_ms = meta[3], meta[4], meta[5], meta[6]
  -- The bound attempt's last activity is recorded (active_ms) only for
  -- sessions with a liveness window.
  local now = clock_if_live(meta[7])
  if event_type == 'worker_ack' then
    if bound and bound ~= attempt then
      if now and now - tonumber(meta[8] or 0) < tonumber(meta[7]) then
        -- The bound attempt is live: it serves the session, this one steps aside.
        return {0, 'busy'}
      end
      if output then
        -- The bound attempt was given up mid-answer: end rather than splice.
        local lost = '{"event_type":"error","payload":{"error":"the job was delivered again after its first attempt had started answering","code":"worker_lost"}}'
        push(keys, lost, true, max_len, ttl_ms)
        return {0, 'lost'}
      end
    end
    redis.call('HSET', keys[2], 'attempt', attempt)
    mark_active(keys[2], now)
  elseif not bound then
    return {0, 'not_acked'}
  elseif bound ~= attempt then
    return {0, 'foreign'}
  elseif event_type == 'worker_heartbeat' then
    mark_active(keys[2], now)
    refresh(keys, ttl_ms)
    return {2, '', publish(keys[1], event)}
  else
    if not output then redis.call('HSET', keys[2], 'output', '1') end
    mark_active(keys[2], now)
  end
  local id, receivers = push(keys, event, is_terminal(event_type), max_len, ttl_ms, key)
  return {1, id, receivers}
end

-- The gateway ends the session with `terminal` unless it already ended.
-- Returns {1, log_id} (appended), {2, log_id} (already ended), {0, ''} (unknown).
local function finish(keys, args)
  local meta = redis.call('HMGET', keys[2], 'created_at', 'ended', 'max_len', 'ttl_ms')
  if not meta[1] then return {0, ''} end
  if meta[2] then return {2, meta[2]} end
  local id = push(keys, args[1], true, meta[3], meta[4])
  return {1, id}
end

local function id_before(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  a_ms, b_ms = tonumber(a_ms), tonumber(b_ms)
  return a_ms < b_ms or (a_ms == b_ms and tonumber(a_seq) < tonumber(b_seq))
end

-- Up to `count` entries after `after` ('' = from the start). Returns
-- {history_lost (0/1), {{id, {'e', json}}, ...}, known (0/1)}; history is
-- lost when the capped stream trimmed entries the reader has not seen.
local function read(keys, args)
  local after, count = args[1], args[2]
  local start = '-'
  if after ~= '' then start = '(' .. after end
  local entries = redis.call('XRANGE', keys[1], start, '+', 'COUNT', count)
  local lost = 0
  if redis.call('EXISTS', keys[1]) == 1 then
    local info = redis.call('XINFO', 'STREAM', keys[1])
    local length, added, first
    for i = 1, #info, 2 do
      if info[i] == 'length' then length = info[i + 1]
      elseif info[i] == 'entries-added' then added = info[i + 1]
      elseif info[i] == 'first-entry' and info[i + 1] then first = info[i + 1][1]
      end
    end
    if added > length and first and (after == '' or id_before(after, first)) then
      lost = 1
    end
  end
  return {lost, entries, redis.call('EXISTS', keys[2])}
end

-- Adds ARGV[1] to the follower count; nil when the session is unknown.
local function follow(keys, args)
  if redis.call('EXISTS', keys[1]) == 0 then return false end
  return redis.call('HINCRBY', keys[1], 'followers', args[1])
end

redis.register_function('sse_bridge_append', append)
redis.register_function('sse_bridge_end', finish)
redis.register_function{function_name = 'sse_bridge_read', callback = read, flags = {'no-writes'}}
redis.register_function('sse_bridge_follow', follow)
