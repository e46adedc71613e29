#!/usr/bin/env bash
# Ctrl-C during `lumen run` (TAP): the first SIGINT raises "interrupted" in the
# script, whether it runs Lua code or waits on an op; a second one ends the
# process.
set -u
lumen=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }

# Wait (up to 10 s) until file $1 contains $2.
wait_for() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

cat >"$tmp/loop.lua" <<'LUA'
print("ready") io.stdout:flush()
local ok, err = pcall(function() while true do end end)
print("caught: " .. tostring(err)) io.stdout:flush()
while true do end
LUA
"$lumen" run "$tmp/loop.lua" >"$tmp/loop.out" 2>&1 &
pid=$!
wait_for "$tmp/loop.out" ready; kill -INT $pid
wait_for "$tmp/loop.out" "caught: .*interrupted"; ok $? "first Ctrl-C interrupts a pure-Lua loop (pcall catches it)"
kill -INT $pid; wait $pid; rc=$?
[ $rc -eq 130 ]; ok $? "second Ctrl-C ends the process (exit $rc)"

# The script first times an uncancelled 256^3 phantom (t_small); the 512^3 one
# it then starts would take about 8 * t_small, so a cancelled one must raise
# "interrupted" well before that (timings relative, so slow builds pass too).
cat >"$tmp/op.lua" <<'LUA'
local t0 = lumen.clock()
local small = Phantom{shape = {256, 256, 256}}
small:free()
local t_small = lumen.clock() - t0
print("ready") io.stdout:flush()
t0 = lumen.clock()
local ok, err = pcall(Phantom, {shape = {512, 512, 512}})
local took = lumen.clock() - t0
print(("caught: %s after %.2f s (t_small %.2f s)"):format(tostring(err), took, t_small))
print(took < 4 * t_small and "early" or "late")
LUA
"$lumen" run "$tmp/op.lua" >"$tmp/op.out" 2>&1 &
pid=$!
wait_for "$tmp/op.out" ready; sleep 0.2; kill -INT $pid
wait $pid; rc=$?
grep -Eq "caught: .*(interrupted|cancel)" "$tmp/op.out" && grep -q "^early" "$tmp/op.out"
ok $? "Ctrl-C cancels a running op early: $(grep caught "$tmp/op.out")"
[ $rc -eq 0 ]; ok $? "the script goes on after the cancelled op (exit $rc)"
echo "1..$n"
exit $failed
