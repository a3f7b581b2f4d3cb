"""The Redis ledger's scripts. Each runs atomically; every time comes from Redis's own clock.

Per counter (one rule, subject and period), in micro-dollars:
  <counter>      hash {spent, reserved}, expiring two days after the period ends
  <counter>:res  sorted set of live reservation ids, scored by expiry (ms, Redis TIME)
  <counter>:amt  hash reservation id -> amount held
Expired reservations (a replica died before settling) are purged, and their amounts released,
by every script that touches the counter. A missing counter hash is never created by a reserve,
extend or settle: it is seeded first (SEED) from the spend recorded in the database.
"""

PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function release(c, a, r, rid)
  local amt = tonumber(redis.call('HGET', a, rid) or '0')
  redis.call('HDEL', a, rid)
  redis.call('ZREM', r, rid)
  if amt > 0 and redis.call('HINCRBY', c, 'reserved', -amt) < 0 then
    redis.call('HSET', c, 'reserved', 0)
  end
end
local function purge(c, r, a)
  for _, rid in ipairs(redis.call('ZRANGEBYSCORE', r, '-inf', now)) do release(c, a, r, rid) end
end
local function level(c)
  return tonumber(redis.call('HGET', c, 'spent') or '0'),
         tonumber(redis.call('HGET', c, 'reserved') or '0')
end
local function missing(n)
  local out = {-1}
  for i = 1, n do
    if redis.call('EXISTS', KEYS[3*i-2]) == 0 then table.insert(out, i) end
  end
  return out
end
"""

# KEYS: (counter, reservations, amounts) per charge. ARGV: n, amount, id, ttl_ms, then per
# charge: limit, hard (1/0), expire_at (unix s). Returns {-1, i...} with the counters that need
# seeding, {0, i, spent, reserved} when hard cap i refuses, else {1, remaining (-1 = no hard
# cap), soft i...}.
RESERVE = (
    PRELUDE
    + """
local n, amount, id, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local need = missing(n)
if #need > 1 then return need end
for i = 1, n do purge(KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]) end
local soft, remaining = {}, -1
for i = 1, n do
  local limit, hard = tonumber(ARGV[3*i+2]), ARGV[3*i+3] == '1'
  local spent, reserved = level(KEYS[3*i-2])
  local after = spent + reserved + amount
  if after > limit then
    if hard then return {0, i, spent, reserved} end
    table.insert(soft, i)
  elseif hard and (remaining < 0 or limit - after < remaining) then
    remaining = limit - after
  end
end
for i = 1, n do
  local c, r, a, at = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i], tonumber(ARGV[3*i+4])
  redis.call('HINCRBY', c, 'reserved', amount)
  redis.call('ZADD', r, now + ttl, id)
  redis.call('HSET', a, id, amount)
  redis.call('EXPIREAT', c, at)
  redis.call('EXPIREAT', r, at)
  redis.call('EXPIREAT', a, at)
end
local out = {1, remaining}
for _, i in ipairs(soft) do table.insert(out, i) end
return out
"""
)

# KEYS as RESERVE. ARGV: n, extra, id, ttl_ms, then per charge: limit, hard. Returns 1 (grown,
# expiry pushed back) or 0 (a hard cap refuses, or the reservation is settled, expired or lost).
EXTEND = (
    PRELUDE
    + """
local n, extra, id, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
for i = 1, n do
  if redis.call('EXISTS', KEYS[3*i-2]) == 0 then return 0 end
  purge(KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i])
  if redis.call('HEXISTS', KEYS[3*i], id) == 0 then return 0 end
  local spent, reserved = level(KEYS[3*i-2])
  if ARGV[2*i+4] == '1' and spent + reserved + extra > tonumber(ARGV[2*i+3]) then return 0 end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[3*i-2], 'reserved', extra)
  redis.call('HINCRBY', KEYS[3*i], id, extra)
  redis.call('ZADD', KEYS[3*i-1], now + ttl, id)
end
return 1
"""
)

# KEYS: (counter, reservations, amounts) per charge, then the settled marker. ARGV: n, id,
# actual. The marker makes a second settle a no-op. An expired reservation's cost still counts;
# a lost counter is left missing (it will be seeded from the database, which records the cost).
SETTLE = (
    PRELUDE
    + """
local n, id, actual = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
if not redis.call('SET', KEYS[3*n+1], '1', 'NX', 'EX', 172800) then return 0 end
for i = 1, n do
  local c, r, a = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  if redis.call('EXISTS', c) == 1 then
    purge(c, r, a)
    release(c, a, r, id)
    redis.call('HINCRBY', c, 'spent', actual)
  else
    redis.call('HDEL', a, id)
    redis.call('ZREM', r, id)
  end
end
return 1
"""
)

# KEYS: (counter, reservations, amounts). Returns {-1, 1} when the counter needs seeding, else
# {1, spent, reserved} after purging expired reservations.
STATUS = (
    PRELUDE
    + """
local need = missing(1)
if #need > 1 then return need end
purge(KEYS[1], KEYS[2], KEYS[3])
local spent, reserved = level(KEYS[1])
return {1, spent, reserved}
"""
)

# KEYS: (counter, reservations, amounts) per counter. ARGV: per counter spent, expire_at (unix s).
# HSETNX: when replicas seed the same counter at once, the first wins and the seed counts once.
# A counter that was lost while reservations were live takes them over (reserved = their sum).
SEED = (
    PRELUDE
    + """
for i = 1, #KEYS / 3 do
  local c, r, a = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  if redis.call('HSETNX', c, 'spent', ARGV[2*i-1]) == 1 then
    for _, rid in ipairs(redis.call('ZRANGEBYSCORE', r, '-inf', now)) do
      redis.call('HDEL', a, rid)
      redis.call('ZREM', r, rid)
    end
    local held = 0
    for _, rid in ipairs(redis.call('ZRANGE', r, 0, -1)) do
      held = held + tonumber(redis.call('HGET', a, rid) or '0')
    end
    redis.call('HSET', c, 'reserved', held)
    redis.call('EXPIREAT', c, tonumber(ARGV[2*i]))
  end
end
return 1
"""
)
