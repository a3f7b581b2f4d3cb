"""The Redis ledger's scripts. Each runs atomically; all times come from Redis's own clock.

Per counter (one rule, subject and period): a hash {spent, reserved} in micro-dollars, a sorted
set of live reservation ids scored by expiry (ms), and a hash of their amounts. Expired
reservations (a replica died before settling) are purged, and their amounts released, by every
script that touches the counter.
"""

PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function purge(c, r, a)
  local expired = redis.call('ZRANGEBYSCORE', r, '-inf', now)
  for _, rid in ipairs(expired) do
    local amt = tonumber(redis.call('HGET', a, rid) or '0')
    redis.call('HINCRBY', c, 'reserved', -amt)
    redis.call('HDEL', a, rid)
    redis.call('ZREM', r, rid)
  end
end
local function level(c)
  return tonumber(redis.call('HGET', c, 'spent') or '0'),
         tonumber(redis.call('HGET', c, 'reserved') or '0')
end
"""

# KEYS: (counter, reservations, amounts) per charge. ARGV: n, amount, id, ttl_ms, then per
# charge: limit, hard (1/0), expire_at (unix s). Returns {-1, i} when counter i needs seeding,
# {0, i} when hard cap i refuses, else {1, remaining (-1 = none), soft indexes...}.
RESERVE = (
    PRELUDE
    + """
local n, amount, id, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
for i = 1, n do
  if redis.call('EXISTS', KEYS[3*i-2]) == 0 then return {-1, i} end
  purge(KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i])
end
local soft, remaining = {}, -1
for i = 1, n do
  local limit, hard = tonumber(ARGV[3*i+2]), ARGV[3*i+3] == '1'
  local spent, reserved = level(KEYS[3*i-2])
  local after = spent + reserved + amount
  if after > limit then
    if hard then return {0, i} end
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

# KEYS as RESERVE. ARGV: n, extra, id, ttl_ms, then per charge: limit, hard. Returns 1 or 0.
EXTEND = (
    PRELUDE
    + """
local n, extra, id, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
for i = 1, n do
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
# actual. The marker makes a second settle a no-op; an expired reservation's spend still counts.
SETTLE = (
    PRELUDE
    + """
local n, id, actual = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
if not redis.call('SET', KEYS[3*n+1], '1', 'NX', 'EX', 172800) then return 0 end
for i = 1, n do
  local c, r, a = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local amt = redis.call('HGET', a, id)
  if amt then
    redis.call('HINCRBY', c, 'reserved', -tonumber(amt))
    redis.call('HDEL', a, id)
    redis.call('ZREM', r, id)
  end
  redis.call('HINCRBY', c, 'spent', actual)
end
return 1
"""
)

# KEYS: counter. ARGV: spent, expire_at. Seeds once: concurrent replicas do not double count.
SEED = """
if redis.call('HSETNX', KEYS[1], 'spent', ARGV[1]) == 1 then
  redis.call('HSETNX', KEYS[1], 'reserved', 0)
  redis.call('EXPIREAT', KEYS[1], tonumber(ARGV[2]))
end
return 1
"""
