-- nick_release: ARGV[8] casefolded nick, ARGV[9] connection id, ARGV[10] reason.
-- Compare-and-delete: only the owner (this node, incarnation and connection) releases.
local r = guard()
if r then return r end
local folded, conn, reason = ARGV[8], ARGV[9], ARGV[10]
local nicks = P .. ':nicks'
if redis.call('HGET', nicks, folded) ~= NODE .. '/' .. INC .. '/' .. conn then
  return redis.error_reply('NOTOWNER ' .. folded)
end
redis.call('HDEL', nicks, folded)
redis.call('SREM', nickset_key(NODE, INC), folded)
return {'ok', EPOCH, append({'k', 'unnick', 'nick', folded, 'conn', conn, 'reason', reason})}
