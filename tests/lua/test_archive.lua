-- lumen.extract_archive on archives written by this test (archive_writer.lua,
-- so the hostile entries are exactly what the test says):
-- good archives extract whole; hostile ones (absolute paths, '..', links,
-- devices, duplicates, too big, too many) are refused with the archive and
-- the entry named, and leave nothing behind, inside or outside the
-- destination.  Also lumen.fs.mkdtemp and lumen.fs.remove_tree.
local dir = arg[0]:match("^(.*/)") or "./"
local tap = dofile(dir .. "tap.lua")
local test = tap.test

local W = dofile(dir .. "archive_writer.lua")
local tar, zip = W.tar, W.zip

-- helpers --------------------------------------------------------------------

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- A scratch folder holding the archive; removed by the returned closer.
local function scratch(t)
  local d = assert(lumen.fs.mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/lumen-archive-"))
  return d, setmetatable({}, {__close = function() t:ok(lumen.fs.remove_tree(d)) end})
end

-- Extract expecting a refusal matching `pattern`; check that the scratch
-- folder holds only the archive afterwards (no destination, no staging
-- folder, nothing written through a link or a '..').
local function refused(t, archive_bytes, pattern, opts)
  local d, closer = scratch(t)
  local _ <close> = closer
  write(d .. "/a.bin", archive_bytes)
  local r, err, code = lumen.extract_archive(d .. "/a.bin", d .. "/pkg", opts)
  t:eq(r, nil, "refused")
  t:eq(code, "LM_EINVAL", "code")
  t:ok(tostring(err):find(d .. "/a.bin", 1, true), "names the archive: " .. tostring(err))
  t:ok(tostring(err):find(pattern), ("message %q matches %q"):format(tostring(err), pattern))
  t:same(lumen.fs.list(d), {"a.bin"}, "nothing left beside the archive")
  return err
end

-- good archives ----------------------------------------------------------------

test("a tar with folders and files extracts whole", function(t)
  local d, closer = scratch(t)
  local _ <close> = closer
  local big = ("0123456789abcdef"):rep(4096)
  write(d .. "/p.tar", tar{
    {name = "pkg/", type = "5"},
    {name = "pkg/metadata.json", data = '{"name": "x"}'},
    {name = "./pkg/sub/weights.bin", data = big},
    {name = "pkg//sub/./empty.txt", data = ""},
  })
  local r, err = lumen.extract_archive(d .. "/p.tar", d .. "/dest")
  t:ok(r, err)
  t:same(r, {files = 3, dirs = 1, bytes = 13 + #big})
  t:eq(read(d .. "/dest/pkg/metadata.json"), '{"name": "x"}')
  t:eq(read(d .. "/dest/pkg/sub/weights.bin"), big)
  t:eq(read(d .. "/dest/pkg/sub/empty.txt"), "")
  t:same(lumen.fs.list(d), {"dest", "p.tar"}, "no staging folder left")
end)

test("a zip extracts whole; a long name through the ustar prefix", function(t)
  local d, closer = scratch(t)
  local _ <close> = closer
  write(d .. "/p.zip", zip{{name = "m/metadata.json", data = "{}"}, {name = "m/w", data = "abc"}})
  local r, err = lumen.extract_archive(d .. "/p.zip", d .. "/z")
  t:ok(r, err)
  t:same(r, {files = 2, dirs = 0, bytes = 5})
  t:eq(read(d .. "/z/m/w"), "abc")
  local long = ("d"):rep(60) .. "/" .. ("e"):rep(60) .. "/f.txt"
  write(d .. "/long.tar", tar{{name = long, data = "L"}})
  t:ok(lumen.extract_archive(d .. "/long.tar", d .. "/l"))
  t:eq(read(d .. "/l/" .. long), "L")
end)

test("the limits are inclusive: exactly max_bytes and max_files pass", function(t)
  local d, closer = scratch(t)
  local _ <close> = closer
  write(d .. "/p.tar", tar{{name = "a", data = "12345"}, {name = "b", data = "678"}})
  t:ok(lumen.extract_archive(d .. "/p.tar", d .. "/x", {max_bytes = 8, max_files = 2}))
end)

-- hostile archives ---------------------------------------------------------------

test("'..' components are refused (tar and zip)", function(t)
  refused(t, tar{{name = "pkg/ok", data = "1"}, {name = "pkg/../../escaped", data = "x"}},
          "entry 'pkg/%.%./%.%./escaped': '%.%.' component refused")
  refused(t, tar{{name = "..", type = "5"}}, "'%.%.' component")
  refused(t, zip{{name = "../escaped", data = "x"}}, "entry '%.%./escaped'")
end)

test("absolute paths are refused", function(t)
  local target = (os.getenv("TMPDIR") or "/tmp") .. "/lumen-archive-absolute-" .. os.time()
  refused(t, tar{{name = target, data = "x"}}, "absolute path refused")
  t:eq(lumen.fs.stat(target), nil, "nothing written at the absolute path")
  refused(t, zip{{name = target, data = "x"}}, "absolute path refused")
  t:eq(lumen.fs.stat(target), nil)
end)

test("links, devices and fifos are refused", function(t)
  refused(t, tar{{name = "pkg/l", type = "2", link = "/etc/passwd"}}, "entry 'pkg/l': symbolic link")
  refused(t, tar{{name = "pkg/l", type = "2", link = "x"}, {name = "pkg/l/f", data = "x"}},
          "symbolic link")
  refused(t, tar{{name = "a", data = "x"}, {name = "b", type = "1", link = "a"}},
          "entry 'b': hard link refused")
  refused(t, tar{{name = "dev", type = "3"}}, "character device refused")
  refused(t, tar{{name = "p", type = "6"}}, "fifo refused")
  refused(t, zip{{name = "m/link", data = "/etc/passwd", mode = 0xA1FF}}, "symbolic link")
end)

test("duplicates and files used as folders are refused", function(t)
  refused(t, tar{{name = "a", data = "1"}, {name = "./a", data = "2"}}, "holds this name twice")
  refused(t, tar{{name = "a", data = "1"}, {name = "a/b", data = "2"}}, "a parent of the entry is a file")
  refused(t, tar{{name = "a", data = "1"}, {name = "a/", type = "5"}}, "a folder and a file")
end)

test("size and count limits", function(t)
  refused(t, tar{{name = "big", data = ("x"):rep(2000)}}, "entry 'big': 2000 bytes, over the limit of 1000",
          {max_bytes = 1000})
  refused(t, tar{{name = "a", data = ("x"):rep(600)}, {name = "b", data = ("x"):rep(600)}},
          "entry 'b': 600 bytes, over the limit of 1000", {max_bytes = 1000})
  refused(t, zip{{name = "a", data = ("x"):rep(1001)}}, "over the limit of 1000", {max_bytes = 1000})
  refused(t, tar{{name = "a"}, {name = "b"}, {name = "c"}}, "entry 'c': more than 2 entries",
          {max_files = 2})
end)

test("not an archive, an empty one, a truncated one", function(t)
  refused(t, "just some text, not an archive\n", "not a zip or tar archive")
  refused(t, ("\0"):rep(1024), "empty")
  local good = tar{{name = "a", data = ("x"):rep(5000)}}
  refused(t, good:sub(1, 2048), "cannot read its data")
end)

test("a name longer than the file system allows is refused", function(t)
  refused(t, zip{{name = ("n"):rep(300) .. "/f", data = "x"}}, "File name too long")
end)

test("control characters in names are not echoed raw", function(t)
  local err = refused(t, tar{{name = "../evil\27[31m", data = "x"}}, "'%.%.' component refused")
  t:ok(not err:find("\27", 1, true), "no escape byte in the message")
end)

test("an existing destination is refused and left alone", function(t)
  local d, closer = scratch(t)
  local _ <close> = closer
  write(d .. "/p.tar", tar{{name = "a", data = "new"}})
  assert(lumen.fs.mkdir(d .. "/dest"))
  write(d .. "/dest/a", "old")
  local r, err, code = lumen.extract_archive(d .. "/p.tar", d .. "/dest")
  t:eq(r, nil)
  t:eq(code, "LM_EINVAL")
  t:ok(err:find("already exists"), err)
  t:eq(read(d .. "/dest/a"), "old")
  t:same(lumen.fs.list(d), {"dest", "p.tar"})
end)

test("a missing archive and bad options", function(t)
  local d, closer = scratch(t)
  local _ <close> = closer
  local r, err, code = lumen.extract_archive(d .. "/nope.zip", d .. "/x")
  t:eq(r, nil)
  t:eq(code, "LM_EIO")
  t:ok(err:find("nope.zip", 1, true) and err:find("cannot open"), err)
  t:same(lumen.fs.list(d), {})
  t:raises("unknown option 'max_size'", lumen.extract_archive, "a", "b", {max_size = 1})
  t:raises("'max_bytes' must be a non%-negative integer", lumen.extract_archive, "a", "b",
           {max_bytes = -1})
end)

test("fs.mkdtemp and fs.remove_tree", function(t)
  local d = assert(lumen.fs.mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/lumen-tree-"))
  t:eq(lumen.fs.stat(d), "dir")
  assert(lumen.fs.mkdir(d .. "/a"))
  assert(lumen.fs.mkdir(d .. "/a/b"))
  write(d .. "/a/b/f", "x")
  -- A link to a folder outside: removing the tree removes the link only.
  local outside = assert(lumen.fs.mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/lumen-keep-"))
  write(outside .. "/keep", "k")
  t:ok(os.execute(("ln -s '%s' '%s/a/link'"):format(outside, d)))
  t:eq(lumen.fs.lstat(d .. "/a/link"), "link")
  t:eq(lumen.fs.stat(d .. "/a/link"), "dir")
  t:eq(lumen.fs.lstat(d .. "/a/b/f"), "file")
  t:eq(lumen.fs.lstat(d .. "/a"), "dir")
  t:eq(lumen.fs.lstat(d .. "/nope"), nil)
  t:eq(lumen.fs.remove_tree(d), true)
  t:eq(lumen.fs.stat(d), nil)
  t:eq(read(outside .. "/keep"), "k", "the link's target survives")
  t:eq(lumen.fs.remove_tree(d), true, "a missing path is not an error")
  t:ok(lumen.fs.remove_tree(outside))
  local none, err = lumen.fs.mkdtemp("/nonexistent-folder/x-")
  t:eq(none, nil)
  t:ok(err:find("/nonexistent%-folder/x%-XXXXXX"), err)
  t:raises("refusing to remove the root", lumen.fs.remove_tree, "/")
end)

test("fs.exchange swaps two folders", function(t)
  local d, closer = scratch(t)
  local _ <close> = closer
  assert(lumen.fs.mkdir(d .. "/a"))
  assert(lumen.fs.mkdir(d .. "/b"))
  write(d .. "/a/f", "from a")
  write(d .. "/b/f", "from b")
  local ok, err, code = lumen.fs.exchange(d .. "/a", d .. "/b")
  if not ok and code == "LM_ENOTSUP" then t:skip("no RENAME_EXCHANGE on this file system") end
  t:ok(ok, err)
  t:eq(read(d .. "/a/f"), "from b")
  t:eq(read(d .. "/b/f"), "from a")
  local none, err2, code2 = lumen.fs.exchange(d .. "/a", d .. "/missing")
  t:eq(none, nil)
  t:eq(code2, "LM_ENOENT")
  t:ok(err2:find("missing", 1, true), err2)
end)

tap.run()
