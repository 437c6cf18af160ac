#!lua name=sse_ds_v1
-- sse-bridge's Durable Streams (the protocol of the durable-streams
-- repository) as Redis functions: each operation on a stream is one atomic
-- call, so the idempotent-producer rule (sse-bridge-core's
-- `streams::producer`) and closing never race, whichever gateway serves the
-- request. The rules are those of sse-bridge-core's `streams::model`; the
-- conformance suite holds both stores to the same outcomes.
--
-- Versions: the library and its functions carry their version (`_v1`), like
-- `functions.lua`; a new version is a new name, loaded beside this one.
--
-- Per stream, named by its escaped store key K (the hash tag, so a stream's
-- keys and its notice channel share a slot on a cluster):
--   sse_ds_meta:{K}  hash: ct, json, gen, ttl | exp_ms + exp_text, touched,
--                    closed, closer (id \n epoch \n seq), tail, bytes, seq,
--                    src (source meta key), fork_off, fork_sub, forks, soft
--   sse_ds_data:{K}  Stream: one entry per append (per JSON message), id
--                    <start>-1, fields d (data) and b (end of its append)
--   sse_ds_prod:{K}  hash: producer id -> "<epoch>:<last seq>"
-- JSON bodies are validated and split by the gateway (byte-exact messages);
-- here a body is a list of pieces.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function essence(ct)
  local media = string.match(ct, '^([^;]*)') or ''
  return string.lower((string.gsub(media, '^%s*(.-)%s*$', '%1')))
end

local function info(meta)
  local m = redis.call('HMGET', meta, 'ct', 'closed', 'tail', 'gen', 'ttl', 'exp_text')
  return { m[1], m[2], m[3], m[4], m[5] or '', m[6] or '' }
end

-- Whether the stream exists and is alive; drops it when it expired.
local function alive(meta, data, prod, now)
  if redis.call('EXISTS', meta) == 0 then return false end
  local m = redis.call('HMGET', meta, 'ttl', 'exp_ms', 'touched')
  local expired = false
  if m[2] and now >= tonumber(m[2]) then expired = true end
  if m[1] and now >= tonumber(m[3]) + tonumber(m[1]) * 1000 then expired = true end
  if expired then
    redis.call('DEL', meta, data, prod)
    return false
  end
  return true
end

-- Restarts a TTL (and the keys' own expiry, which cleans up idle streams).
local function touch(meta, data, prod, now)
  redis.call('HSET', meta, 'touched', now)
  local m = redis.call('HMGET', meta, 'ttl', 'exp_ms')
  if m[1] then
    local ms = tonumber(m[1]) * 1000 + 1000
    for _, k in ipairs({ meta, data, prod }) do redis.call('PEXPIRE', k, ms) end
  elseif m[2] then
    for _, k in ipairs({ meta, data, prod }) do redis.call('PEXPIREAT', k, tonumber(m[2]) + 1000) end
  end
end

local function entry_len(json, d)
  if json == '1' then return 1 end
  return #d
end

local function head_of(meta, data)
  local first = redis.call('XRANGE', data, '-', '+', 'COUNT', 1)
  if #first == 0 then return tonumber(redis.call('HGET', meta, 'tail')) end
  return tonumber((string.match(first[1][1], '^(%d+)-')))
end

local function push(meta, data, start, d, batch_end)
  redis.call('XADD', data, string.format('%d-1', start), 'd', d, 'b', batch_end)
  redis.call('HINCRBY', meta, 'bytes', #d)
end

-- Appends pieces at the tail, dropping the oldest entries past max_bytes.
local function add(meta, data, json, pieces, max_bytes)
  local tail = tonumber(redis.call('HGET', meta, 'tail'))
  local n = #pieces
  if n == 0 then return end
  local batch_end = tail
  for _, d in ipairs(pieces) do batch_end = batch_end + entry_len(json, d) end
  local at = tail
  for _, d in ipairs(pieces) do
    push(meta, data, at, d, batch_end)
    at = at + entry_len(json, d)
  end
  redis.call('HSET', meta, 'tail', batch_end)
  while tonumber(redis.call('HGET', meta, 'bytes')) > max_bytes and redis.call('XLEN', data) > 1 do
    local old = redis.call('XRANGE', data, '-', '+', 'COUNT', 1)[1]
    redis.call('XDEL', data, old[1])
    redis.call('HINCRBY', meta, 'bytes', -#old[2][2])
  end
end

local function announce(channel, publish)
  redis.call(publish, channel, '1')
end

-- Pieces from ARGV[i+1 .. i+n] where ARGV[i] = n.
local function pieces_at(args, i)
  local n = tonumber(args[i])
  local out = {}
  for j = 1, n do out[j] = args[i + j] end
  return out
end

-- KEYS: meta data prod [src_meta src_data]
-- ARGV: gen ct exp_kind exp_value exp_text closed src_key fork_off fork_sub
--       max_bytes channel publish n pieces...
local function create(keys, args)
  local meta, data, prod = keys[1], keys[2], keys[3]
  local now = now_ms()
  local ct, kind, closed = args[2], args[3], args[6]
  local forking = keys[4] ~= nil
  if alive(meta, data, prod, now) then
    local m = redis.call('HMGET', meta, 'ct', 'ttl', 'exp_text', 'closed', 'src', 'fork_off', 'fork_sub', 'soft')
    local asked = ct
    if asked == '' then asked = forking and m[1] or 'application/octet-stream' end
    local same = m[8] ~= '1' and essence(asked) == essence(m[1]) and m[4] == closed
    if not (forking and kind == '') then
      same = same and (m[2] or '') == (kind == 'ttl' and args[4] or '')
        and (m[3] or '') == (kind == 'at' and args[5] or '')
    end
    if forking then
      same = same and m[5] == keys[4] and (args[8] == '' or m[6] == args[8]) and m[7] == args[9]
    else
      same = same and not m[5]
    end
    if same then return { 'existed', unpack(info(meta)) } end
    return { 'conflict' }
  end
  redis.call('DEL', data, prod)
  local fields = { 'gen', args[1], 'closed', '0', 'tail', 0, 'bytes', 0, 'touched', now, 'forks', 0 }
  local json
  if forking then
    local src_meta, src_data = keys[4], keys[5]
    if redis.call('EXISTS', src_meta) == 0 then return { 'source_missing' } end
    local s = redis.call('HMGET', src_meta, 'ct', 'json', 'tail', 'soft', 'ttl', 'exp_ms', 'exp_text')
    if s[4] == '1' then return { 'conflict' } end
    if ct ~= '' and essence(ct) ~= essence(s[1]) then return { 'source_type' } end
    json = s[2]
    local at = tonumber(s[3])
    if args[8] ~= '' then at = tonumber(args[8]) end
    if at > tonumber(s[3]) or at < head_of(src_meta, src_data) then return { 'bad_fork_offset' } end
    local sub = tonumber(args[9])
    -- Check the sub-offset before writing anything.
    local first = nil
    if sub > 0 then
      first = redis.call('XRANGE', src_data, string.format('%d-1', at), string.format('%d-1', at))[1]
      if not first then return { 'bad_fork_offset' } end
      local room = (json == '1') and (tonumber(first[2][4]) - at) or #first[2][2]
      if sub > room then return { 'bad_fork_offset' } end
    end
    redis.call('HSET', meta, 'ct', s[1], 'json', json, unpack(fields))
    if kind == '' then
      if s[5] then redis.call('HSET', meta, 'ttl', s[5]) end
      if s[6] then redis.call('HSET', meta, 'exp_ms', s[6], 'exp_text', s[7]) end
    end
    local cursor = '-'
    while true do
      local batch = redis.call('XRANGE', src_data, cursor, '+', 'COUNT', 256)
      if #batch == 0 then break end
      local stop = false
      for _, e in ipairs(batch) do
        local start = tonumber((string.match(e[1], '^(%d+)-')))
        if start >= at then stop = true break end
        local d, b = e[2][2], tonumber(e[2][4])
        if json ~= '1' and start + #d > at then d = string.sub(d, 1, at - start) end
        push(meta, data, start, d, math.min(b, at))
        cursor = '(' .. e[1]
      end
      if stop then break end
    end
    local tail = at
    if sub > 0 then
      if json == '1' then
        local entries = redis.call('XRANGE', src_data, string.format('%d-1', at), string.format('%d-1', at + sub - 1))
        for _, e in ipairs(entries) do
          push(meta, data, tonumber((string.match(e[1], '^(%d+)-'))), e[2][2], at + sub)
        end
      else
        push(meta, data, at, string.sub(first[2][2], 1, sub), at + sub)
      end
      tail = at + sub
    end
    redis.call('HSET', meta, 'tail', tail, 'src', src_meta, 'fork_off', at, 'fork_sub', sub)
    redis.call('HINCRBY', src_meta, 'forks', 1)
  else
    if ct == '' then ct = 'application/octet-stream' end
    json = (essence(ct) == 'application/json') and '1' or '0'
    redis.call('HSET', meta, 'ct', ct, 'json', json, unpack(fields))
  end
  if kind == 'ttl' then redis.call('HSET', meta, 'ttl', args[4]) end
  if kind == 'at' then redis.call('HSET', meta, 'exp_ms', args[4], 'exp_text', args[5]) end
  add(meta, data, json, pieces_at(args, 13), tonumber(args[10]))
  redis.call('HSET', meta, 'closed', closed)
  touch(meta, data, prod, now)
  announce(args[11], args[12])
  return { 'created', unpack(info(meta)) }
end

-- KEYS: meta data prod
-- ARGV: ct close stream_seq(or '') has_seq producer_id(or '') epoch seq
--       max_bytes max_producers channel publish n pieces...
local function append(keys, args)
  local meta, data, prod = keys[1], keys[2], keys[3]
  local now = now_ms()
  if not alive(meta, data, prod, now) then return { 'missing' } end
  local m = redis.call('HMGET', meta, 'ct', 'json', 'closed', 'closer', 'tail', 'seq', 'soft')
  if m[7] == '1' then return { 'gone' } end
  local pieces = pieces_at(args, 12)
  local pid, epoch, seq = args[5], tonumber(args[6]), tonumber(args[7])
  local tail = m[5]
  if m[3] == '1' then
    if pid ~= '' and m[4] == (pid .. '\n' .. args[6] .. '\n' .. args[7]) then
      return { 'duplicate', tail, '1', seq }
    end
    if pid == '' and #pieces == 0 and args[2] == '1' then return { 'duplicate', tail, '1', 0 } end
    return { 'closed', tail }
  end
  if #pieces > 0 and args[1] ~= '' and essence(args[1]) ~= essence(m[1]) then return { 'ct_mismatch' } end
  if pid ~= '' then
    local known = redis.call('HGET', prod, pid)
    if not known then
      if seq ~= 0 then return { 'gap', 0, seq } end
    else
      local e, last = string.match(known, '^(%d+):(%d+)$')
      e, last = tonumber(e), tonumber(last)
      if epoch < e then return { 'stale_epoch', e } end
      if epoch > e then
        if seq ~= 0 then return { 'epoch_not_zero' } end
      elseif seq <= last then return { 'duplicate', tail, '0', last }
      elseif seq > last + 1 then return { 'gap', last + 1, seq } end
    end
  end
  if args[4] == '1' and m[6] and args[3] <= m[6] then return { 'seq_conflict' } end
  add(meta, data, m[2], pieces, tonumber(args[8]))
  if pid ~= '' then
    if redis.call('HEXISTS', prod, pid) == 0 and redis.call('HLEN', prod) >= tonumber(args[9]) then
      redis.call('HDEL', prod, redis.call('HRANDFIELD', prod))
    end
    redis.call('HSET', prod, pid, args[6] .. ':' .. args[7])
  end
  if args[4] == '1' then redis.call('HSET', meta, 'seq', args[3]) end
  if args[2] == '1' then
    redis.call('HSET', meta, 'closed', '1')
    if pid ~= '' then redis.call('HSET', meta, 'closer', pid .. '\n' .. args[6] .. '\n' .. args[7]) end
  end
  touch(meta, data, prod, now)
  announce(args[10], args[11])
  local after = redis.call('HMGET', meta, 'tail', 'closed')
  return { 'appended', after[1], after[2] }
end

-- KEYS: meta data prod;  ARGV: from ('start' | 'tail' | position) max_bytes
-- Returns status, info (6), start, next, pieces...
local function read(keys, args)
  local meta, data, prod = keys[1], keys[2], keys[3]
  local now = now_ms()
  if not alive(meta, data, prod, now) then return { 'missing' } end
  local m = redis.call('HMGET', meta, 'json', 'tail', 'soft')
  if m[3] == '1' then return { 'gone' } end
  touch(meta, data, prod, now)
  local json, tail = m[1], tonumber(m[2])
  local head = head_of(meta, data)
  local start
  if args[1] == 'start' then start = head
  elseif args[1] == 'tail' then start = tail
  else start = math.min(tonumber(args[1]), tail) end
  if start < head then return { 'gone' } end
  local out = { 'page', unpack(info(meta)) }
  out[8] = start
  out[9] = start
  local max, taken, next = tonumber(args[2]), 0, start
  local covering = redis.call('XREVRANGE', data, string.format('%d-1', start), '-', 'COUNT', 1)[1]
  local cursor = '(' .. string.format('%d-1', start)
  if covering then
    local s = tonumber((string.match(covering[1], '^(%d+)-')))
    if s + entry_len(json, covering[2][2]) > start then cursor = covering[1] end
  end
  local full = false
  while not full do
    local batch = redis.call('XRANGE', data, cursor, '+', 'COUNT', 64)
    if #batch == 0 then break end
    for _, e in ipairs(batch) do
      local s = tonumber((string.match(e[1], '^(%d+)-')))
      local d = e[2][2]
      if taken > 0 and taken + #d > max then full = true break end
      if json ~= '1' and start > s then d = string.sub(d, start - s + 1) end
      taken = taken + #d
      next = s + entry_len(json, e[2][2])
      out[#out + 1] = d
      cursor = '(' .. e[1]
    end
  end
  out[9] = next
  return out
end

-- KEYS: meta data prod
local function head(keys, args)
  if not alive(keys[1], keys[2], keys[3], now_ms()) then return { 'missing' } end
  if redis.call('HGET', keys[1], 'soft') == '1' then return { 'gone' } end
  return { 'found', unpack(info(keys[1])) }
end

-- KEYS: meta data prod;  ARGV: channel publish
-- A stream with forks is soft-deleted (410); deleting the last fork of a
-- soft-deleted source removes the source too, up the chain.
local function delete(keys, args)
  local meta, data, prod = keys[1], keys[2], keys[3]
  if not alive(meta, data, prod, now_ms()) then return { 'missing' } end
  if redis.call('HGET', meta, 'soft') == '1' then return { 'gone' } end
  local result = { 'found', unpack(info(meta)) }
  if tonumber(redis.call('HGET', meta, 'forks') or '0') > 0 then
    redis.call('HSET', meta, 'soft', '1')
  else
    local current = meta
    while current do
      local src = redis.call('HGET', current, 'src')
      local tag = string.match(current, '^sse_ds_meta:(.*)$')
      redis.call('DEL', current, 'sse_ds_data:' .. tag, 'sse_ds_prod:' .. tag)
      current = nil
      if src and redis.call('HINCRBY', src, 'forks', -1) <= 0 and redis.call('HGET', src, 'soft') == '1' then
        current = src
      end
    end
  end
  announce(args[1], args[2])
  return result
end

redis.register_function('sse_ds_v1_create', create)
redis.register_function('sse_ds_v1_append', append)
redis.register_function('sse_ds_v1_read', read)
redis.register_function('sse_ds_v1_head', head)
redis.register_function('sse_ds_v1_delete', delete)
