-- register: ARGV[8] lease in ms, ARGV[9] "1" to renew (this incarnation registered before,
-- e.g. after a reconnect) or "" for a first registration. Takes the node's lease for this
-- incarnation; a first registration appends one node_up entry. NODEBUSY while another
-- incarnation of the same node id holds the lease (a second process with this id, or the
-- previous one's lease not yet expired); REAPED for an incarnation declared dead; FENCED when
-- renewing a lease that expired meanwhile (others may have taken its nicks or reaped it: the
-- node must draw a new incarnation).
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
if ARGV[9] == '1' and cur ~= INC then
  return redis.error_reply('FENCED lease of ' .. NODE .. '/' .. INC .. ' expired')
end
redis.call('SET', key, INC, 'PX', ARGV[8])
if cur == INC then return {'own', EPOCH, 0} end
return {'ok', EPOCH, append({'k', 'node_up'})}
