-- lease_refresh: ARGV[8] lease in ms. Compare-and-set: extends the lease only while it still
-- holds this incarnation. {1, epoch, 0} extended; {0, epoch, 0} lost (re-register with a new
-- incarnation). An EPOCH error tells the caller Redis lost its data.
local err = check_epoch()
if err then return err end
local key = lease_key(NODE)
if redis.call('GET', key) == INC then
  redis.call('PEXPIRE', key, ARGV[8])
  return {1, EPOCH, 0}
end
return {0, EPOCH, 0}
