-- append: ARGV[8..] field/value pairs of the entry (its kind "k" first).
local r = guard()
if r then return r end
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields == 0 or #fields % 2 ~= 0 then
  return redis.error_reply('BADARG an entry needs field/value pairs')
end
return {'ok', EPOCH, append(fields)}
