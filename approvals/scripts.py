"""The Lua scripts that change a request's state. Each runs atomically inside Redis.

Both receive every key through KEYS (Redis Cluster needs that) and append to the audit stream in the
same step as the change, so the log can never disagree with the data.
"""

from __future__ import annotations

# KEYS: request, pending (all), pending (queue), expiry, events, queues, counts, [idempotency], [run's requests]
# ARGV: id, created_at, expires_at, events maxlen, queue, action, actor, args JSON,
#       idempotency: '' (no key), '+' (a request the key already names wins) or the id of a request the
#       key may be moved away from (one that was withdrawn or superseded),
#       run id (or ''), runs channel, seconds to keep the run's index (request lifetime plus retention),
#       then hash field/value pairs
# Replies {'created', id} or {'existing', id of the request the key names}.
CREATE = """
local next_key = 8
if ARGV[9] ~= '' then
  local existing = redis.call('GET', KEYS[8])
  if existing and existing ~= ARGV[9] then return {'existing', existing} end
  redis.call('SET', KEYS[8], ARGV[1])
  next_key = 9
end
if ARGV[10] ~= '' then
  redis.call('ZADD', KEYS[next_key], ARGV[2], ARGV[1])
  if redis.call('TTL', KEYS[next_key]) < tonumber(ARGV[12]) then redis.call('EXPIRE', KEYS[next_key], ARGV[12]) end
  redis.call('PUBLISH', ARGV[11], ARGV[10] .. '\\napproval')
end
redis.call('HINCRBY', KEYS[7], ARGV[5] .. ':created', 1)
redis.call('HSET', KEYS[1], unpack(ARGV, 13))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[6], ARGV[5])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', 'type', 'created', 'id', ARGV[1], 'queue', ARGV[5],
  'action', ARGV[6], 'actor', ARGV[7], 'at', ARGV[2], 'args', ARGV[8])
return {'created', ARGV[1]}
"""

# KEYS: request, pending (all), pending (queue), expiry, history (all), history (queue), events, counts,
#       reviewer counts, [idempotency]
# ARGV: id, status, now, actor, reason, edited args JSON, check self ('1'/'0'), channel, events maxlen,
#       retention seconds, expiry actor, expiry reason, runs channel (told when a run's request is decided)
#
# Replies {'ok', payload}; {'decided', payload} when someone was first; {'late', payload} when the
# request was overdue and so was decided 'expired' instead; {'self'}; {'missing'}; {'not_due'}.
# payload is "<id>\n<JSON of the decision fields>", exactly what is published for waiters.
DECIDE = """
local req = KEYS[1]
local id = ARGV[1]
local current = redis.call('HMGET', req, 'status', 'requested_by', 'expires_at', 'queue', 'action', 'args', 'run_id')

local function decision(kind)
  local names = {'id', 'status', 'decided_at', 'decided_by', 'reason', 'args', 'edited_args'}
  local values = redis.call('HMGET', req, unpack(names))
  local fields = {}
  for i, name in ipairs(names) do
    if values[i] then fields[name] = values[i] end
  end
  return {kind, id .. '\\n' .. cjson.encode(fields)}
end

if not current[1] then return {'missing'} end
if current[1] ~= 'pending' then return decision('decided') end

local status, actor, reason, edited, kind = ARGV[2], ARGV[4], ARGV[5], ARGV[6], 'ok'
local overdue = tonumber(current[3]) <= tonumber(ARGV[3])
if status == 'expired' then
  if not overdue then return {'not_due'} end
elseif overdue then
  status, actor, reason, edited, kind = 'expired', ARGV[11], ARGV[12], '', 'late'
elseif ARGV[7] == '1' and current[2] == actor then
  return {'self'}
end

redis.call('HSET', req, 'status', status, 'decided_at', ARGV[3], 'decided_by', actor)
local event = {'type', status, 'id', id, 'queue', current[4], 'action', current[5], 'actor', actor,
  'at', ARGV[3], 'args', current[6]}
if reason ~= '' then
  redis.call('HSET', req, 'reason', reason)
  table.insert(event, 'reason'); table.insert(event, reason)
end
if edited ~= '' then
  redis.call('HSET', req, 'edited_args', edited)
  table.insert(event, 'edited_args'); table.insert(event, edited)
end
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
redis.call('ZADD', KEYS[5], ARGV[3], id)
redis.call('ZADD', KEYS[6], ARGV[3], id)
redis.call('EXPIRE', req, ARGV[10])
if KEYS[10] then redis.call('EXPIRE', KEYS[10], ARGV[10]) end
redis.call('HINCRBY', KEYS[8], current[4] .. ':' .. status, 1)
if status == 'approved' or status == 'rejected' then
  redis.call('HINCRBY', KEYS[9], actor .. '\\n' .. status, 1)
end
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[9], '*', unpack(event))

local reply = decision(kind)
redis.call('PUBLISH', ARGV[8], reply[2])
if current[7] then redis.call('PUBLISH', ARGV[13], current[7] .. '\\napproval') end
return reply
"""
