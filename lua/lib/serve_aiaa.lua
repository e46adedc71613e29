-- lumen serve: the AIAA endpoints (/v1/*, /session/, /logs, /healthz,
-- /metrics) and the MONAI Label subset (/auth/, /info/, /datastore/,
-- /infer/{model}), as NVIDIA's clients and the 3D Slicer plugins speak them
-- (../shared/docs/aiaa-api.md; docs/serve.md).
local lumen = ...
local S = lumen._serve

local fail, json, object = S.fail, S.json, S.object

---------------------------------------------------------------------------
-- The /v1/models model object (aiaa-api.md 1.4).

-- Label names in label-value order without the background (value 0):
-- metadata labels are {"0": "background", "1": "liver"} or a list whose
-- entry i is label i-1 (lumen packages), or already the AIAA list whose
-- entry i is label i (config_aiaa.json).  -> names, {name = value}.
local function label_list(entry)
  local labels = entry.metadata.labels
  local names, values = {}, {}
  if type(labels) ~= "table" then return names, values end
  if entry.kind == "aiaa" then
    for i, name in ipairs(labels) do
      names[#names + 1] = tostring(name)
      values[tostring(name)] = i
    end
    return names, values
  end
  local pairs_list = {}
  if #labels > 0 then
    for i, name in ipairs(labels) do pairs_list[#pairs_list + 1] = {i - 1, name} end
  else
    for k, name in pairs(labels) do
      local v = math.tointeger(tonumber(k))
      if v then pairs_list[#pairs_list + 1] = {v, name} end
    end
  end
  table.sort(pairs_list, function(a, b) return a[1] < b[1] end)
  for _, p in ipairs(pairs_list) do
    if p[1] ~= 0 then
      names[#names + 1] = tostring(p[2])
      values[tostring(p[2])] = p[1]
    end
  end
  return names, values
end
S.label_list = label_list

local function model_type(entry)
  local t = entry.metadata.type
  return type(t) == "string" and t or "segmentation"
end

local function model_object(entry)
  local meta = entry.metadata
  local names = label_list(entry)
  local m = object{}
  -- additional_info (v2/v3) or meta_data (4.x) goes to the client first,
  -- so the fixed fields below win over a clash.
  local inference = type(meta.inference) == "table" and meta.inference or {}
  for _, extra in ipairs{meta.additional_info, inference.additional_info, inference.meta_data} do
    if type(extra) == "table" then
      for k, v in pairs(extra) do if type(k) == "string" then m[k] = v end end
    end
  end
  m.name = entry.name
  m.type = model_type(entry)
  m.labels = names
  m.description = type(meta.description) == "string" and meta.description or ""
  m.version = meta.version ~= nil and tostring(meta.version) or "1"
  if m.type == "annotation" then
    m.padding = tonumber(meta.padding) or 20
    m.roi = type(meta.roi) == "table" and meta.roi or {128, 128, 128}
    m.sigma = tonumber(meta.sigma) or 3.0
  end
  return m
end
S.model_object = model_object

local function get_models(req, app)
  local q = req.query or {}
  if q.model and q.model ~= "" then
    local entry = app:entry(q.model)
    if not entry then return fail(404, ("no model named '%s'"):format(q.model)) end
    return json(200, model_object(entry))
  end
  local want_label = q.label and q.label ~= "" and q.label:lower() or nil
  local want_type = q.type and q.type ~= "" and q.type:lower() or nil
  local list = {}
  for _, name in ipairs(app:model_names()) do
    local m = model_object(app:entry(name))
    local keep = not want_type or m.type:lower() == want_type
    if keep and want_label then
      keep = false
      for _, l in ipairs(m.labels) do
        if l:lower() == want_label then keep = true break end
      end
    end
    if keep then list[#list + 1] = m end
  end
  return json(200, list)
end

---------------------------------------------------------------------------
-- Images in.  The transport streams file parts to temporary files whose
-- names carry no extension, so the format comes from the first bytes.

local IMAGE_PARTS = {"datapoint", "image", "image0", "file", "files"}

-- The uploaded image part of req, or nil.
local function image_part(req)
  local files = req.files or {}
  for _, name in ipairs(IMAGE_PARTS) do
    if files[name] then return files[name], name end
  end
  for name, f in pairs(files) do
    if name:find("^image%d+$") then return f, name end
  end
  return nil
end
S.image_part = image_part

local function sniff(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local head = f:read(352) or ""
  f:close()
  if head:sub(1, 2) == "\31\139" then return "gzip" end
  if head:sub(1, 4) == "NRRD" then return "nrrd" end
  if head:sub(1, 6) == "\147NUMPY" then return "npy" end
  if head:sub(1, 8) == "\137PNG\r\n\26\n" then return "png" end
  if #head >= 348 then
    local le, be = string.unpack("<i4", head), string.unpack(">i4", head)
    if (le == 348 or be == 348) and head:sub(345, 347):find("^n[+i]1$") then return "nifti" end
    if (le == 540 or be == 540) and head:sub(5, 7):find("^n[+i]2$") then return "nifti" end
  end
  return nil
end

local LOADERS = {gzip = "LoadNifti", nifti = "LoadNifti", nrrd = "LoadNrrd", npy = "LoadNpy",
                 png = "LoadPng"}

-- Load an uploaded file part.  -> tensor, nil, the format ("png", ...); or
-- nil, 4xx reply.  A 3-D image (X, Y, Z) is what every endpoint takes
-- (allow_2d: or a 2-D one, which may also be a grayscale PNG).
local function load_upload(part, allow_2d)
  local kind = sniff(part.path)
  if not kind or (kind == "png" and not allow_2d) or not lumen[LOADERS[kind]] then
    return nil, fail(400, ("upload '%s' is not a NIfTI, NRRD or NumPy image%s")
                          :format(part.filename or "?", allow_2d and " (or a 2-D PNG)" or ""))
  end
  local ok, img = pcall(lumen[LOADERS[kind]], {path = part.path})
  if not ok then
    S.rethrow_cancel(img)
    -- the message names the temporary file: name the client's file instead
    local escaped = part.path:gsub("%p", "%%%0")
    local msg = tostring(img):gsub(escaped, ((part.filename or "upload"):gsub("%%", "%%%%")))
    return nil, fail(400, ("cannot read the uploaded image: %s"):format(msg))
  end
  if img:ndim() ~= 3 and not (allow_2d and img:ndim() == 2) then
    local shape = table.concat(img:shape(), "x")
    img:free()
    return nil, fail(400, ("the image must be %s; got shape %s")
                          :format(allow_2d and "2-D or 3-D" or "3-D (X, Y, Z)", shape))
  end
  return img, nil, kind
end
S.load_upload = load_upload

---------------------------------------------------------------------------
-- Params.

-- Old clients (before 2021-03) sent point lists as JSON strings inside
-- the params: {"points": "[[1,2,3],...]"}.
local POINT_KEYS = {"points", "foreground", "background", "current_point"}

-- -> params table, or nil, 400 reply.
local function read_params(req)
  local text = req.form and req.form.params
  if text == nil or text == "" then return object{} end
  local ok, params = pcall(lumen.json_decode, text)
  if not ok then return nil, fail(400, "params is not valid JSON: " .. tostring(params)) end
  if type(params) ~= "table" or (#params > 0) then
    return nil, fail(400, "params must be a JSON object")
  end
  for _, k in ipairs(POINT_KEYS) do
    if type(params[k]) == "string" then
      local pok, v = pcall(lumen.json_decode, params[k])
      if not pok or type(v) ~= "table" then
        return nil, fail(400, ("params.%s is a string that is not a JSON list"):format(k))
      end
      params[k] = v
    end
  end
  return setmetatable(params, getmetatable(object{}))
end
S.read_params = read_params

-- A list of integer points [x, y, z] inside shape.  -> nil or a message
-- (entries numbered from 0, as JSON readers count).  A coordinate equal to
-- the extent is moved onto the last voxel: the AIAA clients' client-side
-- crop (dextr3d pre_process) clips its box to size - 1 but scales the
-- points by size, so an extreme point on the last slice arrives one past it.
local function check_points(list, key, shape, min_count)
  if type(list) ~= "table" then return ("params.%s must be a list of [x, y, z] points"):format(key) end
  if #list < min_count then
    return ("params.%s needs at least %d point%s, got %d"):format(key, min_count,
                                                                   min_count == 1 and "" or "s", #list)
  end
  for i, p in ipairs(list) do
    if type(p) ~= "table" or #p ~= 3 then
      return ("params.%s[%d] must be [x, y, z]"):format(key, i - 1)
    end
    for a = 1, 3 do
      local v = p[a]
      if type(v) ~= "number" or v ~= math.floor(v) then
        return ("params.%s[%d] must hold integer voxel indices"):format(key, i - 1)
      end
      if v == shape[a] then
        p[a] = shape[a] - 1
      elseif v < 0 or v > shape[a] then
        return ("params.%s[%d] = [%s] lies outside the image (%s)")
               :format(key, i - 1, table.concat(p, ", "), table.concat(shape, "x"))
      end
    end
  end
  return nil
end

-- Endpoint-specific checks of the params against the image.
local function check_endpoint_params(endpoint, params, shape)
  if endpoint == "dextr3d" then
    return check_points(params.points, "points", shape, 1)
  elseif endpoint == "deepgrow" then
    local err = check_points(params.foreground or {}, "foreground", shape, 0)
             or check_points(params.background or {}, "background", shape, 0)
    if err then return err end
    if #(params.foreground or {}) + #(params.background or {}) == 0 then
      return "deepgrow needs params.foreground or params.background points"
    end
    local cp = params.current_point
    if cp ~= nil then
      if type(cp) == "table" and type(cp[1]) == "table" then
        return check_points(cp, "current_point", shape, 1)
      end
      return check_points({cp}, "current_point", shape, 1)
    end
  end
  return nil
end

---------------------------------------------------------------------------
-- Results out.

local EXTENSIONS = {[".nii.gz"] = true, [".nii"] = true, [".nrrd"] = true}
local DTYPES = {uint8 = true, int8 = true, uint16 = true, int16 = true, uint32 = true, int32 = true,
                int64 = true, float32 = true, float64 = true}

-- The result file: written by SaveImage (the format follows the extension;
-- ".png", fixpolygon's 2-D reply, by SavePng) into a temporary file that the
-- reply streams from disk and then removes (remove = true).  -> its path,
-- the file name for the client.
local function result_file(app, labels, params)
  local ext = params.result_extension or ".nii.gz"
  local save = {}
  if params.result_dtype ~= nil then save.dtype = params.result_dtype end
  local tmp = ("%s/lumen-result-%s%s"):format(app.upload_dir, S.random_id(), ext)
  save.path = tmp
  local ok, err = pcall(ext == ".png" and lumen.SavePng or lumen.SaveImage, labels, save)
  if not ok then
    os.remove(tmp)
    error(err, 0)
  end
  return tmp, "result" .. ext
end

-- Checks of the output options before any work is done.  -> nil or 400.
local function check_output_params(params)
  local ext = params.result_extension
  if ext ~= nil and not EXTENSIONS[ext] then
    return fail(400, "params.result_extension must be one of .nii.gz, .nii, .nrrd")
  end
  local dt = params.result_dtype
  if dt ~= nil and not DTYPES[dt] then
    return fail(400, "params.result_dtype must be one of uint8, int8, uint16, int16, uint32, "
                     .. "int32, int64, float32, float64")
  end
  return nil
end

-- The multipart reply of aiaa-api.md 1.3: params JSON, then the image.
-- output "image": just the file; "json": just the params.
-- path: the result file (result_file), or nil when there is no image.
local function reply(params_out, path, filename, output)
  if output == "image" then
    if not path then return fail(500, "the model returned no image") end
    return {status = 200, file = {path = path, content_type = "application/octet-stream",
                                  filename = filename, remove = true}}
  end
  if output == "json" then return json(200, params_out) end
  local parts = {{name = "params", content_type = "application/json", body = S.encode(params_out)}}
  if path then
    parts[2] = {name = "image", filename = filename, content_type = "application/octet-stream",
                path = path, remove = true}
  end
  return {status = 200, parts = parts}
end

local function busy(app)
  return fail(503, ("server busy: %d inferences running (--queue %d); retry")
                   :format(app.active, app.queue), {["Retry-After"] = "1"})
end

-- The image of a request: from a session, a datastore id (MONAI Label)
-- or the upload.  -> tensor (the caller's to free), or nil, reply.
local function request_image(req, app, opts)
  local q = req.query or {}
  if q.session_id and q.session_id ~= "" then
    local s = app:session_get(app.sessions, q.session_id)
    if not s then
      return nil, fail(440, ("session '%s' is unknown or has expired"):format(q.session_id))
    end
    return s.image:share()
  end
  if opts.datastore and q.image and q.image ~= "" and not image_part(req) then
    local d = app:session_get(app.datastore, q.image)
    if not d then return nil, fail(404, ("no image '%s' in the datastore"):format(q.image)) end
    return d.image:share()
  end
  local part = image_part(req)
  if not part then
    return nil, fail(400, "no image: send a file part (datapoint, image or file) or a session_id")
  end
  return load_upload(part)
end

-- The extreme points of a label map (what Clara's FetchExtremePoints put
-- in the segmentation params) when the ExtremePoints op is there.
local function extreme_points(labels)
  if type(lumen.ExtremePoints) ~= "function" then return nil end
  local ok, pts = pcall(lumen.ExtremePoints, labels)
  if not ok then S.rethrow_cancel(pts) end
  if not ok or not lumen.istensor(pts) then return nil end
  local shape, values = pts:shape(), pts:values()
  pts:free()
  local n, d = shape[1], shape[2]
  local out = {}
  for i = 0, n - 1 do
    local p = {}
    -- the last three coordinates are (x, y, z); a leading channel is not
    for j = math.max(1, d - 2), d do p[#p + 1] = math.tointeger(values[i * d + j]) end
    out[#out + 1] = p
  end
  return out
end

-- One inference request.  endpoint: "segmentation", "inference",
-- "dextr3d", "deepgrow", or "infer" (MONAI Label).
local function run_inference(req, app, endpoint, model_name, opts)
  opts = opts or {}
  local q = req.query or {}
  model_name = model_name or q.model
  if not model_name or model_name == "" then return fail(400, "query parameter 'model' is missing") end
  if not S.valid_name(model_name) then return fail(400, ("bad model name '%s'"):format(model_name)) end
  local entry = app:entry(model_name)
  if not entry then return fail(404, ("no model named '%s'"):format(model_name)) end
  if q.session_id and q.session_id ~= "" and not app:session_get(app.sessions, q.session_id) then
    return fail(440, ("session '%s' is unknown or has expired"):format(q.session_id))
  end
  local params, perr = read_params(req)
  if not params then return perr end
  local oerr = check_output_params(params)
  if oerr then return oerr end
  local output = q.output
  if output ~= nil and output ~= "image" and output ~= "json" and output ~= "all" then
    return fail(400, "output must be image, json or all")
  end

  local slot <close> = app:admit()
  if not slot then return busy(app) end
  local use <close> = app:use(entry)

  local img <close>, ierr = request_image(req, app, opts)
  if not img then return ierr end
  local perr2 = check_endpoint_params(endpoint, params, img:shape())
  if perr2 then return fail(400, perr2) end

  local ok, labels, result = pcall(entry.pkg.infer, img, {params = params})
  if not ok and S.cancelled(req, labels) then
    return fail(S.cancelled(req, labels), tostring(labels))
  elseif not ok then
    app:log{level = "error", msg = "inference failed", model = model_name, error = tostring(labels)}
    return fail(500, ("model '%s' failed: %s"):format(model_name, tostring(labels)))
  end
  local out = object{}
  if type(result) == "table" then
    for k, v in pairs(result) do out[k] = v end
  end
  if endpoint == "infer" then
    local _, values = label_list(entry)
    out.label_names = object(values)
  end
  local path, filename
  if lumen.istensor(labels) then
    local owned <close> = labels
    if endpoint == "segmentation" and out.points == nil then out.points = extreme_points(labels) end
    if output ~= "json" then path, filename = result_file(app, labels, params) end
  elseif labels ~= nil then
    return fail(500, ("model '%s': infer returned a %s, not a label image"):format(model_name, type(labels)))
  elseif endpoint ~= "inference" and endpoint ~= "infer" then
    return fail(500, ("model '%s' returned no label image"):format(model_name))
  end
  return reply(out, path, filename, output)
end
S.run_inference = run_inference

---------------------------------------------------------------------------
-- Polygons (aiaa-api.md 1.5): the MaskToPolygon and FixPolygon ops.

-- The results table of an op with no tensor output (or after them).
local function op_results(...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) == "table" and not lumen.istensor(v) then return v end
  end
  return {}
end

local function int_param(params, key, default)
  local v = params[key]
  if v == nil then return default end
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) then
    return nil, ("params.%s must be an integer"):format(key)
  end
  return math.tointeger(v)
end

-- POST /v1/mask2polygon: params {"more_points": N} + a mask; a plain JSON
-- reply, one list of polygons per slice.
local function mask2polygon(req, app)
  if type(lumen.MaskToPolygon) ~= "function" then
    return fail(501, "this build has no MaskToPolygon op")
  end
  local params, perr = read_params(req)
  if not params then return perr end
  local more, merr = int_param(params, "more_points", 0)
  if not more or more < 0 then return fail(400, merr or "params.more_points must be >= 0") end
  local part = image_part(req)
  if not part then return fail(400, "no mask: send a file part (datapoint or image)") end
  local slot <close> = app:admit()
  if not slot then return busy(app) end
  local mask <close>, ierr = load_upload(part, true)
  if not mask then return ierr end
  local res = op_results(lumen.MaskToPolygon(mask, {more_points = more}))
  return json(200, res.polygons or {})
end

-- fixpolygon's params as the clients send them -> FixPolygon's options,
-- or nil, message.  The Python client sends {poly, vertex_offset,
-- polygon_index, vertex_index, propagate_neighbor[, slice_index,
-- propagate_neighbor_3d]}; the C++ client (MITK) camelCase indices
-- (polygonIndex, vertexIndex, sliceIndex), and either prev_poly with
-- vertexOffset, or (older) poly with the vertex already moved plus
-- prev_poly, from which the offset follows.
local function fixpolygon_options(params)
  local function pick(a, b)
    if params[a] ~= nil then return a end
    return b
  end
  local o = {}
  for _, k in ipairs{{"polygon_index", "polygonIndex"}, {"vertex_index", "vertexIndex"},
                     {"slice_index", "sliceIndex"}, {"propagate_neighbor"}, {"propagate_neighbor_3d"}} do
    local v, err = int_param(params, k[2] and pick(k[1], k[2]) or k[1], nil)
    if err then return nil, err end
    o[k[1]] = v
  end
  if o.polygon_index == nil or o.vertex_index == nil then
    return nil, "params.polygon_index and params.vertex_index are required"
  end
  local off = params[pick("vertex_offset", "vertexOffset")]
  local base = params.poly
  if off == nil and type(params.poly) == "table" and type(params.prev_poly) == "table" then
    -- the moved vertex minus where it was
    local function vertex(set)
      local polys = set
      if o.slice_index ~= nil then polys = type(set) == "table" and set[o.slice_index + 1] end
      local poly = type(polys) == "table" and polys[o.polygon_index + 1]
      local v = type(poly) == "table" and poly[o.vertex_index + 1]
      if type(v) == "table" and type(v[1]) == "number" and type(v[2]) == "number" then return v end
      return nil
    end
    local now, before = vertex(params.poly), vertex(params.prev_poly)
    if not now or not before then
      return nil, "params.poly / params.prev_poly hold no vertex at polygon_index, vertex_index"
    end
    off, base = {now[1] - before[1], now[2] - before[2]}, params.prev_poly
  elseif base == nil then
    base = params.prev_poly
  end
  if type(base) ~= "table" then return nil, "params.poly must be a list of polygons" end
  if type(off) ~= "table" or #off ~= 2 or type(off[1]) ~= "number" or type(off[2]) ~= "number" then
    return nil, "params.vertex_offset must be [dx, dy]"
  end
  o.poly = lumen.json_encode(base)
  o.vertex_offset = {off[1], off[2]}
  return o
end

-- POST /v1/fixpolygon: the polygon set, the moved vertex and the image
-- giving the grid (fixpolygon_options); multipart reply: params {"poly":
-- ...} and the rasterised mask.
local function fixpolygon(req, app)
  if type(lumen.FixPolygon) ~= "function" then
    return fail(501, "this build has no FixPolygon op")
  end
  local params, perr = read_params(req)
  if not params then return perr end
  local o, oerr = fixpolygon_options(params)
  if not o then return fail(400, oerr) end
  local part = image_part(req)
  if not part then return fail(400, "no image: send a file part (datapoint or image)") end
  local slot <close> = app:admit()
  if not slot then return busy(app) end
  local img <close>, ierr, kind = load_upload(part, true)
  if not img then return ierr end
  local ok, mask, res = pcall(lumen.FixPolygon, img, o)
  if not ok then
    S.rethrow_cancel(mask)
    return fail(400, "fixpolygon: " .. tostring(mask))
  end
  local owned <close> = mask
  -- a PNG slice comes back as a PNG (the 2-D clients paste it as one)
  local path, filename = result_file(app, mask, object{result_extension = kind == "png" and ".png" or nil})
  return reply(object{poly = (res or {}).poly}, path, filename, nil)
end

---------------------------------------------------------------------------
-- Sessions (aiaa-api.md 1.5).

local function session_info(app, s)
  return object{
    session_id = s.id,
    session_info = object{
      name = s.name, image = s.name,
      meta = object{shape = s.shape, dtype = s.dtype},
      create_ts = math.floor(s.created),
      last_access_ts = math.floor(S.wall_now() - (lumen.clock() - s.last)),
      expiry = s.expiry,
    },
  }
end

-- expiry: the request's (0 or none: the server's), at most the server's.
local function expiry_of(req, app)
  local e = req.query and tonumber(req.query.expiry)
  if req.query and req.query.expiry and not e then return nil, fail(400, "expiry must be a number") end
  if not e or e <= 0 then return app.session_expiry end
  return math.min(e, app.session_expiry)
end

local function put_session(req, app)
  local part = image_part(req)
  if not part then
    if req.body and req.body ~= "" then
      return fail(400, "sessions from DICOMweb (a JSON body) are not supported: upload the image")
    end
    return fail(400, "no image: send a multipart file part 'image'")
  end
  local expiry, eerr = expiry_of(req, app)
  if not expiry then return eerr end
  local img, ierr = load_upload(part)
  if not img then return ierr end
  local s = app:session_put(app.sessions, S.random_id(), {
    image = img, expiry = expiry, name = part.filename or "image",
    shape = img:shape(), dtype = img:dtype(),
  }, app.max_sessions)
  app:log{msg = "session created", session_id = s.id, expiry = expiry}
  return json(200, session_info(app, s))
end

local function get_session(req, app, id)
  local s = app:session_get(app.sessions, id)
  if not s then return fail(404, ("session '%s' is unknown or has expired"):format(id)) end
  return json(200, session_info(app, s))
end

local function delete_session(req, app, id)
  if not app:session_get(app.sessions, id) then
    return fail(404, ("session '%s' is unknown or has expired"):format(id))
  end
  app:session_drop(app.sessions, id)
  app:log{msg = "session closed", session_id = id}
  return json(200, {session_id = id, deleted = true})
end

---------------------------------------------------------------------------
-- Operations: /logs, /healthz, /metrics.

local function get_logs(req, app)
  local n = 100
  if req.query and req.query.lines then
    n = math.tointeger(tonumber(req.query.lines))
    if not n or n < 0 then return fail(400, "lines must be a non-negative integer") end
  end
  local lines = app:log_tail(n)
  return S.text(200, #lines > 0 and table.concat(lines, "\n") .. "\n" or "")
end

local function healthz(req, app)
  local n = #app:model_names()
  return json(200, {status = app.closing and "closing" or "ok", models = n, inflight = app.active})
end

local function metrics(req, app)
  return S.text(200, app:metrics_text(), "text/plain; version=0.0.4; charset=utf-8")
end

---------------------------------------------------------------------------
-- MONAI Label subset (aiaa-api.md 3.4).

local DATASTORE_MAX = 16 -- images kept at once; the least recently used goes first

local function info(req, app)
  local models, all = object{}, {}
  local seen = {}
  for _, name in ipairs(app:model_names()) do
    local entry = app:entry(name)
    local names, values = label_list(entry)
    for _, l in ipairs(names) do
      if not seen[l] then seen[l] = true all[#all + 1] = l end
    end
    models[name] = object{type = model_type(entry), labels = object(values), dimension = 3,
                          description = model_object(entry).description}
  end
  return json(200, object{
    name = "lumen", description = "lumen serve: AIAA and MONAI Label inference",
    version = lumen.version or "", labels = all, models = models,
    trainers = object{}, strategies = object{}, scoring = object{}, train_stats = object{},
    datastore = object{total = 0, completed = 0},
  })
end

local function put_datastore(req, app)
  local part = image_part(req)
  if not part then return fail(400, "no image: send a multipart file part 'file'") end
  local q = req.query or {}
  local id = q.image
  if not id or id == "" then
    id = (part.filename or "image"):gsub("%.nii%.gz$", ""):gsub("%.[^.]+$", "")
  end
  if #id > 256 or id:find("[%c/]") then return fail(400, "bad image id") end
  local img, ierr = load_upload(part)
  if not img then return ierr end
  app:session_put(app.datastore, id, {image = img, expiry = app.session_expiry, name = id,
                                      shape = img:shape(), dtype = img:dtype()}, DATASTORE_MAX)
  return json(200, {image = id})
end

local function get_datastore(req, app)
  local n = 0
  for _ in pairs(app.datastore) do n = n + 1 end
  return json(200, object{total = n, completed = 0, label_tags = object{}, train = 0})
end

---------------------------------------------------------------------------

function S.add_aiaa_routes(app)
  local function endpoint(name)
    return function(req, a) return run_inference(req, a, name) end
  end
  app:add_route("GET", "/v1/models", get_models)
  app:add_route("POST", "/v1/segmentation", endpoint("segmentation"))
  app:add_route("POST", "/v1/inference", endpoint("inference"))
  app:add_route("POST", "/v1/dextr3d", endpoint("dextr3d"))
  app:add_route("POST", "/v1/deepgrow", endpoint("deepgrow"))
  app:add_route("POST", "/v1/mask2polygon", mask2polygon)
  app:add_route("POST", "/v1/fixpolygon", fixpolygon)
  app:add_route("PUT", "/session", put_session)
  app:add_route("POST", "/session", put_session)
  app:add_route("GET", "/session/:id", get_session)
  app:add_route("DELETE", "/session/:id", delete_session)
  app:add_route("GET", "/logs", get_logs)
  app:add_route("GET", "/healthz", healthz)
  app:add_route("GET", "/metrics", metrics)
  app:add_route("GET", "/auth", function() return json(200, {enabled = false}) end)
  app:add_route("GET", "/info", info)
  app:add_route("PUT", "/datastore", put_datastore)
  app:add_route("PUT", "/datastore/image", put_datastore)
  app:add_route("GET", "/datastore", get_datastore)
  app:add_route("POST", "/infer/:model", function(req, a, model)
    return run_inference(req, a, "infer", model, {datastore = true})
  end)
end
