-- A pretty printer (used by the REPL) and the dictionary-style helpers.
local lumen = ...

local function key_repr(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k end
  if type(k) == "string" then return ("[%q]"):format(k) end
  return "[" .. tostring(k) .. "]"
end

local function pretty(v, indent, depth, seen)
  local t = type(v)
  if t == "string" then return ("%q"):format(v) end
  if t ~= "table" then return tostring(v) end
  local mt = getmetatable(v)
  if mt and mt.__tostring then return tostring(v) end
  if seen[v] then return "<cycle>" end
  if depth <= 0 then return "{...}" end
  seen[v] = true
  local n = #v
  local parts, keys = {}, {}
  for i = 1, n do parts[#parts + 1] = pretty(v[i], indent .. "  ", depth - 1, seen) end
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "string" or type(a) == "number") then return a < b end
    return type(a) < type(b)
  end)
  for _, k in ipairs(keys) do
    parts[#parts + 1] = key_repr(k) .. " = " .. pretty(v[k], indent .. "  ", depth - 1, seen)
  end
  seen[v] = nil
  local flat = "{" .. table.concat(parts, ", ") .. "}"
  if #flat + #indent <= 78 and not flat:find("\n") then return flat end
  return "{\n" .. indent .. "  " .. table.concat(parts, ",\n" .. indent .. "  ") ..
         "\n" .. indent .. "}"
end

-- lumen.pretty(v [, depth = 4]) -> text: tables expanded, tensors as their
-- one-line summary, strings quoted.
function lumen.pretty(v, depth)
  return pretty(v, "", depth or 4, {})
end

-- lumen.map(keys, op, opts) -> function(d): the dictionary style of MONAI
-- as one helper.  The function returns a copy of the table d in which
-- d[k] is replaced by op(d[k], opts) for every k in keys (the first output
-- of the op).  A missing key is an error.
function lumen.map(keys, op, opts)
  if type(keys) == "string" then keys = {keys} end
  if type(keys) ~= "table" then error("bad argument #1 to 'map' (list of keys expected)", 2) end
  if type(op) == "string" then op = lumen.op(op) or error("map: no op named " .. tostring(op), 2) end
  if type(op) ~= "function" then error("bad argument #2 to 'map' (op expected)", 2) end
  return function(d)
    local out = {}
    for k, v in pairs(d) do out[k] = v end
    for _, k in ipairs(keys) do
      if d[k] == nil then error(("map: key '%s' missing"):format(tostring(k)), 2) end
      if opts then out[k] = (op(d[k], opts)) else out[k] = (op(d[k])) end
    end
    return out
  end
end

-- lumen.compose{f1, f2, ...} -> function(x): f2(f1(x)), ... in order.
function lumen.compose(list)
  return function(x)
    for i = 1, #list do x = list[i](x) end
    return x
  end
end

-- lumen.install_globals(env): the op functions and the helpers as globals
-- (what the lumen command does for scripts and the REPL).
function lumen.install_globals(env)
  env = env or _G
  for _, name in ipairs(lumen.ops()) do
    local fn = lumen.op(name)
    env[name] = fn
    local info = lumen.op_info(name)
    if info.alias then env[info.alias] = fn end
  end
  for _, k in ipairs{"spawn", "all", "await", "sleep", "help", "map", "compose"} do
    env[k] = lumen[k]
  end
end
