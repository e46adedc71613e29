-- help(op), `lumen ops` and `lumen ops NAME`: all read the op registry
-- through lumen.op_info, so the text cannot drift from the descriptors.
local lumen = ...

-- Wrap text to width columns after indent.
local function wrap(text, indent, width)
  local out, line = {}, indent
  for para in (text .. "\n"):gmatch("(.-)\n") do
    if para:match("^%s*$") then
      if line ~= indent then out[#out + 1] = line end
      out[#out + 1] = ""
      line = indent
    else
      for word in para:gmatch("%S+") do
        if #line + #word + 1 > width and line ~= indent then
          out[#out + 1] = line
          line = indent
        end
        line = line == indent and line .. word or line .. " " .. word
      end
    end
  end
  if line ~= indent then out[#out + 1] = line end
  while out[#out] == "" do out[#out] = nil end
  return table.concat(out, "\n")
end

-- lumen.describe(op_or_name) -> the op's full description as text, or nil
-- and a message.
function lumen.describe(op)
  local info = lumen.op_info(op)
  if not info then return nil, ("no op named %s"):format(tostring(op)) end
  local lines = {}
  local function add(s) lines[#lines + 1] = s end
  add(("%s: %s"):format(info.name, info.summary or ""))
  if info.alias then add("  alias: " .. info.alias) end
  local call = info.name .. "("
  -- A MODEL option may be given positionally, before the tensors.
  for _, a in ipairs(info.args) do
    if a.type == "model" then call = call .. a.name .. ", " end
  end
  if info.inputs and info.inputs ~= "" then call = call .. info.inputs .. ", " end
  -- Ops that return a value instead of tensors take their path first (ops.c).
  local returns_value = info.source and (info.outputs or "") == ""
  if returns_value then
    for _, a in ipairs(info.args) do
      if a.name == "path" and a.type == "string" then call = call .. "path, " end
    end
  end
  add("  call:    " .. call .. "{options})")
  add("  inputs:  " .. ((info.inputs and info.inputs ~= "") and info.inputs or "none (source op)"))
  add("  outputs: " .. (returns_value and "none (returns its result)"
                                        or (info.outputs or "")))
  if info.cuda then add("  devices: cpu, cuda") else add("  devices: cpu") end
  if #info.args > 0 then
    add("  options:")
    local w = 0
    for _, a in ipairs(info.args) do w = math.max(w, #a.name) end
    for _, a in ipairs(info.args) do
      local def = a.required and "required" or ("default " .. a.default)
      add(("    %-" .. w .. "s  %s, %s"):format(a.name, a.type, def))
      if a.doc and a.doc ~= "" then add(wrap(a.doc, "      " .. (" "):rep(w), 78)) end
    end
  else
    add("  options: none")
  end
  if info.doc and info.doc ~= "" then
    -- The doc keeps its own line breaks (tables, numbered steps).
    add("")
    for line in (info.doc .. "\n"):gmatch("(.-)\n") do add("  " .. line) end
  end
  return table.concat(lines, "\n")
end

-- lumen.op_list() -> text: one line per op, name and summary.
function lumen.op_list()
  local names = lumen.ops()
  local w = 0
  for _, n in ipairs(names) do w = math.max(w, #n) end
  local lines = {}
  for _, n in ipairs(names) do
    local info = lumen.op_info(n)
    lines[#lines + 1] = ("%-" .. w .. "s  %s"):format(n, info.summary or "")
  end
  return table.concat(lines, "\n")
end

-- help(x): an op (function or name), a tensor, a task, or nothing.
function lumen.help(x)
  if x == nil then
    print("lumen " .. lumen.version .. ": ops are functions, e.g.\n" ..
          "  img = LoadNifti{path = 'ct.nii.gz'}\n" ..
          "  img = ScaleIntensityRange(img, {a_min = -1000, a_max = 1000, clip = true})\n" ..
          "help(Op) describes one op; spawn/all/await run work concurrently.\n\nops:")
    print(lumen.op_list())
    return
  end
  if lumen.istensor(x) then
    print(tostring(x))
    print("methods: shape dtype spacing affine orientation layout device numel ndim\n" ..
          "  to clone contiguous stats get set values trace share free (indices 0-based)")
    return
  end
  if lumen.ismodel(x) then
    print(tostring(x))
    print("fields: name axes inputs outputs labels metadata\n" ..
          "methods: infer(x, opts) free (Infer(model, x) is the same as model:infer(x))")
    return
  end
  local text, err = lumen.describe(x)
  print(text or err)
end
