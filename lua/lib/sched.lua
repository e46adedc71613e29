-- Scheduler helpers over the C core (lumen.spawn, handle:await).
--
-- spawn(fn, ...) starts fn at once; it runs until its first wait (an op,
-- an await, a sleep), then spawn returns its handle.  handle:await()
-- returns fn's results or raises its error.  all{...} runs functions (or
-- takes handles) concurrently and returns the list of their first results.
local lumen = ...

local spawn = lumen.spawn

-- lumen.await(handle): the function form of handle:await().
function lumen.await(handle)
  return handle:await()
end

-- lumen.all{fn_or_handle, ...} -> {result1, result2, ...}
-- Functions are spawned, handles taken as they are.  Waits for every one,
-- then raises the first error in list order (the other failures count as
-- seen, so nothing runs on unnoticed after all returns).  Entry i of the
-- result is the first value returned by entry i; return a table from the
-- function to pass several values.
function lumen.all(list)
  if type(list) ~= "table" then
    error("bad argument #1 to 'all' (table of functions or handles expected, got "
          .. type(list) .. ")", 2)
  end
  local handles = {}
  for i = 1, #list do
    local v = list[i]
    if type(v) == "function" then
      handles[i] = spawn(v)
    elseif lumen.istask(v) then
      handles[i] = v
    else
      error(("bad argument #1 to 'all' (entry %d is a %s, expected a function or a task)")
            :format(i, type(v)), 2)
    end
  end
  local results, first_err, failed = {}, nil, false
  for i = 1, #handles do
    local ok, r = pcall(handles[i].await, handles[i])
    if ok then
      results[i] = r
    elseif not failed then
      failed, first_err = true, r
    end
  end
  if failed then error(first_err, 0) end
  return results
end

-- lumen.run(fn, ...) -> fn's results: run fn as a managed coroutine and wait
-- for it.  From a stock lua5.4 main chunk this turns the loop, so ops
-- inside fn run concurrently with spawned ones.
function lumen.run(fn, ...)
  return spawn(fn, ...):await()
end
