#!/bin/bash
# `lumen repl` with no terminal: piped chunks run quietly, one after another;
# errors go to stderr and make the exit status non-zero.
# Usage: test_repl_pipe.sh LUMEN_EXECUTABLE.  TAP output.
set -u
shopt -s lastpipe # `printf ... | run` sets status in this shell
LUMEN=${1:?usage: test_repl_pipe.sh LUMEN_EXECUTABLE}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lpipe.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
export HOME="$WORK" LUMEN_HISTORY="$WORK/history"

n=0
failed=0
check() { # check DESCRIPTION COMMAND...: the command must succeed
  local what=$1
  shift
  n=$((n + 1))
  if "$@"; then
    echo "ok $n - $what"
  else
    failed=$((failed + 1))
    echo "not ok $n - $what"
    echo "# stdout:"; sed 's/^/#   /' "$WORK/out"
    echo "# stderr:"; sed 's/^/#   /' "$WORK/err"
    echo "# status: $status"
  fi
}
run() { # run: stdin of the test -> lumen repl; sets status, out, err
  "$LUMEN" repl >"$WORK/out" 2>"$WORK/err"
  status=$?
}
out_is() { printf '%s\n' "$@" | cmp -s - "$WORK/out"; }

printf 'print(1+1)\n' | run
check "a piped print runs" out_is 2
check "status 0 when every chunk succeeds" test "$status" -eq 0
check "nothing on stderr" test ! -s "$WORK/err"

# Chunks span lines; values are not echoed; globals persist between chunks.
printf '%s\n' 'x = 20' 'twice = function(v)' '  return 2 * v' 'end' 'twice(x)' \
  'tab = {' '  a = twice(x),' '}' 'print(tab.a, twice(1.5))' | run
check "multi-line chunks run, values not echoed" out_is $'40\t3.0'
check "multi-line input: status 0" test "$status" -eq 0

# A failing chunk: message on stderr with its line, later chunks still run.
printf '%s\n' 'print("before")' '' 'error("piped failure")' 'print("after")' | run
check "chunks around a failure run" out_is before after
check "the error is on stderr with its line" grep -q 'stdin:3: piped failure' "$WORK/err"
check "a traceback follows the error" grep -q 'stack traceback' "$WORK/err"
check "status non-zero after an error" test "$status" -ne 0

# A syntax error names the line; a chunk cut off by end of input fails.
printf '%s\n' 'print("ok")' 'y = = 2' | run
check "syntax error reported with its line" grep -q 'stdin:2:' "$WORK/err"
check "syntax error: status non-zero" test "$status" -ne 0
printf '%s\n' 'print("start")' 'for i = 1, 3 do' '  print(i)' | run
check "unfinished chunk at end of input fails" test "$status" -ne 0
check "unfinished chunk reported" grep -q "<eof>" "$WORK/err"
check "what came before it ran" out_is start

# Ops work from piped input (each chunk is a managed coroutine).
printf '%s\n' 't = Phantom{shape={16,16,8}}' 'print(t:shape()[1], t:dtype())' | run
check "an op runs in a piped chunk" grep -q '^16' "$WORK/out"
check "op chunk: status 0" test "$status" -eq 0

# No terminal: no banner, no prompt, no history file.
printf 'print("quiet")\n' | run
check "no banner or prompt" out_is quiet
check "no history file written" test ! -e "$WORK/history"

# Input from a file, with a #! first line as lua allows.
printf '%s\n' '#!/usr/bin/env lumen' 'print("from file")' >"$WORK/script.lua"
run <"$WORK/script.lua"
check "input redirected from a file" out_is "from file"

# The REPL takes no arguments: say so rather than ignore them.
"$LUMEN" repl stray.lua </dev/null >"$WORK/out" 2>"$WORK/err"
status=$?
check "an argument to repl is refused" test "$status" -eq 2
check "the refusal names the argument" grep -q "stray.lua" "$WORK/err"

echo "1..$n"
((failed == 0))
