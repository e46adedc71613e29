-- Tiny tar and zip writers for tests that need archives whose entries are
-- exactly what the test says (hostile names, links, devices), with no tool
-- that might clean them up on the way.
--
--   local W = dofile(dir .. "archive_writer.lua")
--   W.tar{{name = "a/b", data = "x"}, {name = "l", type = "2", link = "/etc"}}
--   W.zip{{name = "../x", data = "y"}}
local W = {}

-- tar (ustar) --------------------------------------------------------------

local function octal(n, width)
  return ("%0" .. (width - 1) .. "o"):format(n) .. "\0"
end

-- One entry: {name, data = "", type = "0" (file) | "5" (dir) | "2" (symlink)
-- | "1" (hard link) | "3" (char device) | "6" (fifo), link = "", size = #data}.
local function tar_entry(e)
  local data = e.data or ""
  local name, prefix = e.name, ""
  if #name > 100 then prefix, name = name:match("^(.*)/([^/]*)$") end
  local function field(s, n) return s .. ("\0"):rep(n - #s) end
  local h = field(name, 100) .. octal(e.mode or 420, 8) .. octal(0, 8) .. octal(0, 8)
      .. octal(e.size or #data, 12) .. octal(0, 12) .. "        " .. (e.type or "0")
      .. field(e.link or "", 100) .. "ustar\0" .. "00" .. field("", 32) .. field("", 32)
      .. octal(0, 8) .. octal(0, 8) .. field(prefix, 155) .. field("", 12)
  assert(#h == 512)
  local sum = 0
  for i = 1, 512 do sum = sum + h:byte(i) end
  h = h:sub(1, 148) .. ("%06o\0 "):format(sum) .. h:sub(157)
  return h .. data .. ("\0"):rep((512 - #data % 512) % 512)
end

function W.tar(entries)
  local parts = {}
  for i, e in ipairs(entries) do parts[i] = tar_entry(e) end
  return table.concat(parts) .. ("\0"):rep(1024)
end

-- zip (stored entries) -------------------------------------------------------

local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = (c & 1) ~= 0 and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
  crc_table[i] = c
end
local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = crc_table[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
  return c ~ 0xFFFFFFFF
end

-- Entries {name, data, mode = Unix mode (0xA1FF for a symlink)}.
function W.zip(entries)
  local out, central, offset = {}, {}, 0
  for _, e in ipairs(entries) do
    local data = e.data or ""
    local crc = crc32(data)
    local lh = string.pack("<I4I2I2I2I2I2I4I4I4I2I2", 0x04034b50, 20, 0, 0, 0, 0x21, crc,
                           #data, #data, #e.name, 0) .. e.name
    out[#out + 1] = lh .. data
    -- Made by Unix (3), so the high half of the external attributes is the mode.
    central[#central + 1] = string.pack("<I4I2I2I2I2I2I2I4I4I4I2I2I2I2I2I4I4", 0x02014b50,
        (3 << 8) | 20, 20, 0, 0, 0, 0x21, crc, #data, #data, #e.name, 0, 0, 0, 0,
        (e.mode or 0x81A4) << 16, offset) .. e.name
    offset = offset + #lh + #data
  end
  local cd = table.concat(central)
  return table.concat(out) .. cd .. string.pack("<I4I2I2I2I2I4I4I2", 0x06054b50, 0, 0,
                                                #entries, #entries, #cd, offset, 0)
end

return W
