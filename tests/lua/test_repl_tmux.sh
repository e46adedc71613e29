#!/bin/bash
# The interactive REPL driven through tmux, as a person would use it:
# printing, tensors, multi-line input, history (Up arrow and the file),
# Tab completion, help, Ctrl-C at the prompt and during work, Ctrl-D.
# Usage: test_repl_tmux.sh LUMEN_EXECUTABLE.  TAP output; exit 77 without tmux.
set -u
LUMEN=${1:?usage: test_repl_tmux.sh LUMEN_EXECUTABLE}
TIMEOUT=${LUMEN_REPL_TIMEOUT:-20} # seconds to wait for one expected output

if ! command -v tmux >/dev/null 2>&1; then
  echo "1..0 # SKIP tmux is not installed"
  exit 77
fi

unset TMUX # the test may itself run inside tmux
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lrepl.XXXXXX") || exit 1
SOCK="$WORK/tmux.sock" # a private tmux server: nothing to find or leave behind
PANE=repl
HIST="$WORK/history"
tmx() { tmux -S "$SOCK" "$@"; }
cleanup() {
  tmx kill-server >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
  n=$((n + 1))
  failed=$((failed + 1))
  echo "not ok $n - $1"
  echo "# --- screen (last 40 lines) ---"
  screen | grep -v '^ *$' | tail -n 40 | sed 's/^/# /'
}

# -J joins wrapped lines (and keeps trailing blanks: patterns allow them).
screen() { tmx capture-pane -p -J -t "$PANE" -S -1000 2>/dev/null; }

# wait_for DESCRIPTION GREP_ARGS...: poll the screen until grep matches.
wait_for() {
  local what=$1
  shift
  local deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS <= deadline)); do
    if screen | grep -q "$@"; then
      ok "$what"
      return 0
    fi
    sleep 0.05
  done
  not_ok "$what (waited ${TIMEOUT}s for: $*)"
  return 1
}

# The number of screen lines matching, to wait for a new occurrence.
count() { screen | grep -c "$@"; }
wait_count() { # wait_count DESCRIPTION N GREP_ARGS...: at least N matches
  local what=$1 want=$2
  shift 2
  local deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS <= deadline)); do
    if (($(count "$@") >= want)); then
      ok "$what"
      return 0
    fi
    sleep 0.05
  done
  not_ok "$what (waited ${TIMEOUT}s for $want lines matching: $*)"
  return 1
}

keys() { tmx send-keys -t "$PANE" "$@"; }

# Keys typed while a chunk runs are echoed by the terminal and read again by
# libedit, and a Ctrl-D typed then is taken by the terminal's line
# discipline, so the test waits for a fresh empty prompt before going on.
PROMPT_RE='^(lumen>|  \.\.\.>)'
prompts() { screen | grep -cE "$PROMPT_RE"; }
# submit KEYS...: send the keys, then wait for one more prompt, empty.
submit() {
  local before
  before=$(prompts)
  tmx send-keys -t "$PANE" "$@"
  local deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS <= deadline)); do
    if (($(prompts) > before)) && screen | grep -v '^ *$' | tail -n 1 | grep -qE "$PROMPT_RE *\$"; then
      return 0
    fi
    sleep 0.05
  done
  not_ok "prompt back after sending $* (waited ${TIMEOUT}s)"
  return 1
}
# line TEXT: type a line, press Enter, wait for the next prompt.
line() { tmx send-keys -t "$PANE" -l "$1"; submit Enter; }

# The new session is created before the old one is killed: killing the last
# session makes the tmux server exit, and a new-session racing with that exit
# fails with "server exited unexpectedly".
starts=0
start_repl() {
  local old=$PANE
  starts=$((starts + 1))
  PANE=repl$starts
  tmx new-session -d -s "$PANE" -x 160 -y 50 \
    "env HOME='$WORK' LUMEN_HISTORY='$HIST' '$LUMEN' repl; echo REPL-EXITED-\$?; sleep 600"
  tmx kill-session -t "=$old" >/dev/null 2>&1 # "=": exact name, not a prefix
}

start_repl
wait_for "banner says how to get help and leave" -e 'help(' 
wait_for "banner mentions Ctrl-D" -F 'Ctrl-D'
wait_for "prompt shown" -F 'lumen> '

# An expression prints its value; a statement prints nothing.
line '40 + 2 * 1000'
wait_for "expression printed" -x '2040'
line 'answer = 6 * 7'
line 'answer + 0.5'
wait_for "global kept across lines" -x '42.5'
line '{1, 2, name = "x"}'
wait_for "table printed readably" -F '{1, 2, name = "x"}'

# A tensor prints its dtype, shape, spacing, orientation and value range,
# as "tensor<int16 32x32x16 spacing 1x1x1 RAS cpu range [-1000, 80]>".
line 't = Phantom{shape={32,32,16}}'
line 't'
num='-?[0-9][0-9.e+-]*'
wait_for "tensor printed with dtype, shape, spacing, orientation, range" \
  -E "tensor<[a-z]+[0-9]* 32x32x16 spacing ${num}x${num}x${num} [LRAPSI]{3} .*range \[${num}, ${num}\]"

# An op that reads a file, at the prompt (values checked against nibabel:
# shape (122, 101, 30), zooms 3 mm, RAS, min -1100, max 1207).
CT="${LUMEN_TEST_DATA:-}/ct/totalseg_example_ct_sm.nii.gz"
if [ -n "${LUMEN_TEST_DATA:-}" ] && [ -r "$CT" ]; then
  line "ct = LoadNifti{path = '$CT'}"
  line 'ct'
  wait_for "a NIfTI file loaded at the prompt prints as a tensor" \
    -E 'tensor<[a-z]+[0-9]* 122x101x30 spacing 3x3x3 RAS .*range \[-1100, 1207\]'
else
  echo "# LUMEN_TEST_DATA/ct not found: skipping the LoadNifti check"
fi

# Multi-line input: the continuation prompt, then the function works.
line 'function sq(x)'
wait_for "continuation prompt" -F '...>'
line '  return x * x end'
line 'sq(12)'
wait_for "multi-line function defined and called" -x '144'

# Top-level local: warned about.
line 'local lost = 1'
wait_for "warning about a top-level local" -F 'locals do not survive'

# Errors print a message and traceback; the REPL goes on.
line 'error("deliberate failure")'
wait_for "error message printed" -F 'deliberate failure'
wait_for "traceback printed" -F 'stack traceback'
line '7 * 111'
wait_for "REPL alive after an error" -x '777'

# History: Up recalls the previous line; the file has what was entered.
keys Up
wait_for "Up arrow recalls the last line" -x 'lumen> 7 \* 111'
keys Enter
wait_count "recalled line runs again" 2 -x '777'
if grep -qxF 'function sq(x)' "$HIST" && grep -qxF '7 * 111' "$HIST"; then
  ok "history file written as lines are entered"
  if [ "$(stat -c %a "$HIST")" = 600 ]; then
    ok "history file readable by its owner only"
  else
    not_ok "history file readable by its owner only (mode $(stat -c %a "$HIST"))"
  fi
else
  not_ok "history file written as lines are entered ($(wc -l <"$HIST" 2>/dev/null) lines)"
fi

# Tab completion: an op name prefix, then the list of candidates.
tmx send-keys -t "$PANE" -l 'ScaleIntensityRa'
keys Tab
wait_for "Tab completes an op name" -x 'lumen> ScaleIntensityRange'
keys Tab
wait_for "second Tab lists the candidates" -F 'ScaleIntensityRangePercentiles'
submit C-c
wait_for "Ctrl-C at the prompt drops the line" -F '^C'
tmx send-keys -t "$PANE" -l 't:sta'
keys Tab
wait_for "Tab completes a tensor method" -x 'lumen> t:stats'
submit C-c
tmx send-keys -t "$PANE" -l 'string.for'
keys Tab
wait_for "Tab completes a field after a dot" -x 'lumen> string.format'
submit C-c
tmx send-keys -t "$PANE" -l 'lumen.ScaleIntensityRangeP'
keys Tab
wait_for "Tab completes an op in the lumen module" -x 'lumen> lumen.ScaleIntensityRangePercentiles'
submit C-c
line '2 + 3'
wait_for "line cleared by Ctrl-C is not run" -x '5'

# help(Op) from the prelude.
line 'help(Argmax)'
wait_for "help(Argmax) names the op" -E '^Argmax: '
wait_for "help(Argmax) shows how to call it" -E 'call: +Argmax\('
line 'help("Argmax")'
wait_count "help(\"Argmax\") works too" 2 -E '^Argmax: '

# Ctrl-C during a long Lua loop, then while a chunk waits on the loop.
tmx send-keys -t "$PANE" -l 'while true do end'
keys Enter
sleep 0.3
submit C-c
wait_for "Ctrl-C interrupts a Lua loop" -F 'interrupted'
line '1 + 1'
wait_for "REPL alive after interrupting a loop" -x '2'
tmx send-keys -t "$PANE" -l 'big = Phantom{shape={400,400,400}}'
keys Enter
sleep 0.3
submit C-c
wait_count "Ctrl-C cancels a running op" 2 -F 'interrupted'
line 'big == nil'
wait_for "the cancelled chunk assigned nothing" -x 'true'
tmx send-keys -t "$PANE" -l 'lumen.sleep(120)'
keys Enter
sleep 0.3
submit C-c
wait_count "Ctrl-C cancels a chunk waiting on a timer" 3 -F 'interrupted'
line '10 + 1'
wait_for "REPL alive after cancelling a wait" -x '11'

# The loop turns while the prompt waits: a spawned coroutine finishes.
line 'bg = spawn(function() lumen.sleep(0.2); print("background " .. 6 * 7) end)'
wait_for "a spawned coroutine runs while the prompt waits" -F 'background 42'
line 'bg:done()'
wait_for "the spawned coroutine is done" -x 'true'

# Ctrl-D on an empty line leaves with status 0.
keys C-d
wait_for "Ctrl-D exits with status 0" -x 'REPL-EXITED-0'

# The next session loads the history file, trimmed to its newest 1000 lines.
{ for i in $(seq 1 1100); do echo "seed_$i = $i"; done; cat "$HIST"; } >"$WORK/seeded"
mv "$WORK/seeded" "$HIST"
start_repl
wait_for "second session starts" -F 'lumen> '
keys Up
wait_for "history survives a restart" -x 'lumen> bg:done()'
if [ "$(wc -l <"$HIST")" -eq 1000 ] && [ "$(tail -n 1 "$HIST")" = "bg:done()" ] &&
  ! grep -qx 'seed_1 = 1' "$HIST"; then
  ok "history file trimmed to the newest 1000 entries"
else
  not_ok "history file trimmed to the newest 1000 entries ($(wc -l <"$HIST") lines)"
fi
submit C-c
keys C-d
wait_for "second session exits" -x 'REPL-EXITED-0'

echo "1..$n"
((failed == 0))
