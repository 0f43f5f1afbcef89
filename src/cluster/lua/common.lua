-- Prepended to every cluster script. One calling convention for all of them:
--   ARGV[1] key prefix (a hash tag, "{chat}", so every key lives in one slot)
--   ARGV[2] the epoch the caller believes in      ARGV[3] the caller's node id
--   ARGV[4] the caller's incarnation              ARGV[5] msg_id ("" for none)
--   ARGV[6] stream MAXLEN (approximate trim)      ARGV[7] de-dup window in ms
--   ARGV[8..] the script's own arguments
-- Keys are derived from the prefix here rather than passed in KEYS: some (a nick owner's
-- lease, a dead node's nick set) are only known inside the script, and all share one slot.
-- Errors are error replies whose first word is a code: EPOCH, FENCED, TAKEN, NOTOWNER,
-- ALIVE, NODEBUSY, REAPED, BADARG. Success is {status, epoch, seq}.
local P, EPOCH, NODE, INC, MSG, MAXLEN, DEDUPE_MS =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]

local function lease_key(node) return P .. ':node:' .. node end
local function nickset_key(node, inc) return P .. ':node:' .. node .. ':' .. inc .. ':nicks' end

-- The epoch must be the caller's: a different one means Redis lost (or was given) data.
local function check_epoch()
  local e = redis.call('GET', P .. ':epoch')
  if e ~= EPOCH then return redis.error_reply('EPOCH ' .. (e or 'none')) end
  return nil
end

-- Epoch, then de-dup (an entry already appended is acknowledged again even if the lease was
-- lost since), then the caller's lease (fencing at the resource).
local function guard()
  local err = check_epoch()
  if err then return err end
  if MSG ~= '' then
    local seq = redis.call('GET', P .. ':dedupe:' .. MSG)
    if seq then return {'dup', EPOCH, tonumber(seq)} end
  end
  if redis.call('GET', lease_key(NODE)) ~= INC then
    return redis.error_reply('FENCED lease of ' .. NODE .. '/' .. INC .. ' is not held')
  end
  return nil
end

-- Appends one entry: the next dense seq, stream id 0-<seq>, origin and Redis's time added.
local function append(fields)
  local seq = redis.call('INCR', P .. ':seq')
  local t = redis.call('TIME')
  local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local args = {'XADD', P .. ':log', 'MAXLEN', '~', MAXLEN, '0-' .. seq,
                'n', NODE, 'i', INC, 'm', MSG, 'ts', string.format('%d', ts)}
  for _, v in ipairs(fields) do args[#args + 1] = v end
  redis.call(unpack(args))
  if MSG ~= '' then redis.call('SET', P .. ':dedupe:' .. MSG, seq, 'PX', DEDUPE_MS) end
  return seq
end

