"""The Lua scripts of the Redis limiter: each operation is one atomic script on Redis's clock.

Key layout per subject: `<prefix>rl:<scope>:<id>:requests|tokens` are hashes {level, ts} (ts:
when it had that level, in seconds of Redis `TIME`) expiring when the bucket would be full again
(a missing bucket is a full one); `<prefix>rl:<scope>:<id>:concurrency` is a sorted set of lease
ids scored by their expiry; `<prefix>rl:lease:<lease id>` marks a lease not yet settled (it makes
settle idempotent). Numbers come back as strings: Redis would truncate Lua numbers to integers.
"""

from __future__ import annotations

# Shared by both scripts: the clock, and reading / writing one bucket.
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

local function level(key, cap)
  local v = redis.call('HMGET', key, 'level', 'ts')
  if not v[1] then
    return cap
  end
  local elapsed = now - tonumber(v[2])
  if elapsed < 0 then
    elapsed = 0
  end
  local l = tonumber(v[1]) + elapsed * cap / 60
  if l > cap then
    l = cap
  end
  return l
end

local function store(key, cap, l)
  if l >= cap then
    redis.call('DEL', key)
    return
  end
  redis.call('HSET', key, 'level', string.format('%.17g', l), 'ts', string.format('%.6f', now))
  redis.call('PEXPIRE', key, math.ceil((cap - l) * 60000 / cap) + 1)
end
"""

# KEYS: lease marker, then per subject: requests, tokens, concurrency key.
# ARGV: tokens, lease id, lease ttl (ms), "1" if the lease needs settling, then per subject the
# rpm, tpm and concurrency limits ("" = unlimited).
# Returns {allowed, denied subject (1-based, 0 = none), denied dimension (1 requests, 2 tokens,
# 3 concurrency), wait in seconds, never, then per subject the requests and tokens levels after}.
ACQUIRE = (
    _BUCKET
    + """
local tokens = tonumber(ARGV[1])
local ttl_ms = tonumber(ARGV[3])
local n = (#KEYS - 1) / 3
local req, tok = {}, {}
local wait, denied, dim, never = 0, 0, 0, 0

local function deny(i, d, need, impossible)
  if never == 1 then
    return
  end
  if impossible then
    never, wait, denied, dim = 1, 0, i, d
  elseif denied == 0 or need > wait then
    wait, denied, dim = need, i, d
  end
end

for i = 1, n do
  local base = 3 * (i - 1)
  local rcap = tonumber(ARGV[5 + base])
  local tcap = tonumber(ARGV[6 + base])
  local ccap = tonumber(ARGV[7 + base])
  req[i], tok[i] = false, false
  if rcap then
    local l = level(KEYS[2 + base], rcap)
    req[i] = l
    if l < 1 then
      deny(i, 1, rcap >= 1 and (1 - l) * 60 / rcap or 0, rcap < 1)
    end
  end
  if tcap then
    local l = level(KEYS[3 + base], tcap)
    tok[i] = l
    if l < tokens then
      deny(i, 2, tokens <= tcap and (tokens - l) * 60 / tcap or 0, tokens > tcap)
    end
  end
  if ccap then
    local key = KEYS[4 + base]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    if redis.call('ZCARD', key) >= ccap then
      deny(i, 3, 1, ccap < 1)
    end
  end
end

local allowed = 0
if denied == 0 then
  allowed = 1
  for i = 1, n do
    local base = 3 * (i - 1)
    if req[i] then
      req[i] = req[i] - 1
      store(KEYS[2 + base], tonumber(ARGV[5 + base]), req[i])
    end
    if tok[i] then
      tok[i] = tok[i] - tokens
      store(KEYS[3 + base], tonumber(ARGV[6 + base]), tok[i])
    end
    if tonumber(ARGV[7 + base]) then
      redis.call('ZADD', KEYS[4 + base], now + ttl_ms / 1000, ARGV[2])
      redis.call('PEXPIRE', KEYS[4 + base], ttl_ms)
    end
  end
  if ARGV[4] == '1' then
    redis.call('SET', KEYS[1], '1', 'PX', ttl_ms)
  end
end

local out = {allowed, denied, dim, string.format('%.17g', wait), never}
for i = 1, n do
  out[#out + 1] = req[i] and string.format('%.17g', req[i]) or ''
  out[#out + 1] = tok[i] and string.format('%.17g', tok[i]) or ''
end
return out
"""
)

# KEYS: lease marker, then per subject: tokens, concurrency key.
# ARGV: actual minus estimated tokens, lease id, then per subject the tpm limit ("" = none).
# Returns 1 if settled now, 0 if it was settled (or expired) before.
SETTLE = (
    _BUCKET
    + """
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
local delta = tonumber(ARGV[1])
local n = (#KEYS - 1) / 2
for i = 1, n do
  local cap = tonumber(ARGV[2 + i])
  if cap and delta ~= 0 then
    local l = level(KEYS[2 * i], cap) - delta
    if l > cap then
      l = cap
    end
    store(KEYS[2 * i], cap, l)
  end
  redis.call('ZREM', KEYS[2 * i + 1], ARGV[2])
end
return 1
"""
)
