-- reap: ARGV[8] dead node id, ARGV[9] its incarnation. Run by any live node once that
-- incarnation's lease is gone: frees the nicks it still owns and appends exactly one
-- node_down entry however many nodes reap it ({'done', epoch, seq of that entry} after the
-- first). ALIVE while the lease is still held.
local r = guard()
if r then return r end
local dn, di = ARGV[8], ARGV[9]
local marker = P .. ':down:' .. dn .. ':' .. di
local done = redis.call('GET', marker)
if done then return {'done', EPOCH, tonumber(done)} end
if redis.call('GET', lease_key(dn)) == di then
  return redis.error_reply('ALIVE ' .. dn .. '/' .. di)
end
local nicks = P .. ':nicks'
local set = nickset_key(dn, di)
local prefix = dn .. '/' .. di .. '/'
for _, folded in ipairs(redis.call('SMEMBERS', set)) do
  local owner = redis.call('HGET', nicks, folded)
  if owner and string.sub(owner, 1, #prefix) == prefix then redis.call('HDEL', nicks, folded) end
end
redis.call('DEL', set)
local seq = append({'k', 'node_down', 'node', dn, 'inc', di})
-- Kept a week: long past any node that could still try to reap this incarnation.
redis.call('SET', marker, seq, 'PX', 604800000)
return {'ok', EPOCH, seq}
