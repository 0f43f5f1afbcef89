-- register: ARGV[8] lease in ms. Takes the node's lease for this incarnation and appends one
-- node_up entry. NODEBUSY while another incarnation of the same node id holds the lease (a
-- second process with this id, or the previous one's lease not yet expired); REAPED for an
-- incarnation declared dead (a node must draw a new one after losing its lease).
local r = check_epoch()
if r then return r end
if MSG ~= '' then
  local seq = redis.call('GET', P .. ':dedupe:' .. MSG)
  if seq then return {'dup', EPOCH, tonumber(seq)} end
end
if redis.call('EXISTS', P .. ':down:' .. NODE .. ':' .. INC) == 1 then
  return redis.error_reply('REAPED ' .. NODE .. '/' .. INC)
end
local key = lease_key(NODE)
local cur = redis.call('GET', key)
if cur and cur ~= INC then return redis.error_reply('NODEBUSY ' .. NODE .. '/' .. cur) end
redis.call('SET', key, INC, 'PX', ARGV[8])
if cur == INC then return {'own', EPOCH, 0} end
return {'ok', EPOCH, append({'k', 'node_up'})}
