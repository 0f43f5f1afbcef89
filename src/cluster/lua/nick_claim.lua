-- nick_claim: ARGV[8] casefolded nick, ARGV[9] nick as typed, ARGV[10] connection id,
-- ARGV[11] the connection's current casefolded nick to release ("" for none).
-- TAKEN while another owner's lease is alive; a dead owner's claim is taken over.
local r = guard()
if r then return r end
local folded, nick, conn, old = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local nicks = P .. ':nicks'
local me = NODE .. '/' .. INC .. '/' .. conn
local owner = redis.call('HGET', nicks, folded)
if owner == me then return {'own', EPOCH, 0} end
if owner then
  local n, i = string.match(owner, '^([^/]*)/([^/]*)/')
  if n and redis.call('GET', lease_key(n)) == i then
    return redis.error_reply('TAKEN ' .. folded)
  end
  if n then redis.call('SREM', nickset_key(n, i), folded) end
end
local mine = nickset_key(NODE, INC)
if old ~= '' and old ~= folded and redis.call('HGET', nicks, old) == me then
  redis.call('HDEL', nicks, old)
  redis.call('SREM', mine, old)
end
redis.call('HSET', nicks, folded, me)
redis.call('SADD', mine, folded)
return {'ok', EPOCH, append({'k', 'nick', 'nick', nick, 'conn', conn, 'old', old})}
