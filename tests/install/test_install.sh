#!/usr/bin/env bash
# The installed library is usable on its own: `meson install` into a staging
# folder, then (1) compile examples/ct_window.c with nothing but
# `pkg-config --cflags --libs lumen` and run it on a phantom, (2) `require "lumen"`
# from Debian's stock lua5.4 with the installed module, (3) the installed `lumen`.
set -u
src=$1 build=$2
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }

meson install -C "$build" --destdir "$stage" --no-rebuild >"$stage/install.log" 2>&1
ok $? "meson install into a staging folder" || { sed 's/^/# /' "$stage/install.log"; echo "1..$n"; exit 1; }

prefix=$(meson introspect "$build" --buildoptions | /usr/bin/python3 -c \
  'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
libdir=$(meson introspect "$build" --buildoptions | /usr/bin/python3 -c \
  'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="libdir"][0])')
case "$libdir" in /*) ;; *) libdir="$prefix/$libdir" ;; esac
pcdir="$stage$libdir/pkgconfig"
libs="$stage$libdir"

flags=$(PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$stage" pkg-config --cflags --libs lumen)
ok $? "pkg-config knows lumen: $flags"
cc -std=gnu11 -Wall -Werror "$src/examples/ct_window.c" $flags -o "$stage/ct_window" 2>"$stage/cc.log"
ok $? "examples/ct_window.c compiles against the installed header and library" || sed 's/^/# /' "$stage/cc.log"

# An input volume made by the installed lumen itself.
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$stage$prefix/bin/lumen" --no-cuda run /dev/stdin >"$stage/mk.log" 2>&1 <<LUA
local img = Phantom{shape = {40, 36, 20}}
SaveNifti(img, {path = "$stage/in.nii.gz"})
LUA
ok $? "the installed lumen runs a script" || sed 's/^/# /' "$stage/mk.log"
"$stage/ct_window" "$stage/in.nii.gz" "$stage/out.nii.gz" >"$stage/run.log" 2>&1
ok $? "the example runs: $(cat "$stage/run.log")"

if command -v lua5.4 >/dev/null; then
  moddir=$(find "$stage" -name 'lumen.so' -path '*lua/5.4*' -printf '%h\n' | head -n 1)
  out=$(IN="$stage/out.nii.gz" LUA_CPATH="$moddir/?.so" lua5.4 -e '
    local lumen = require "lumen"
    local img = lumen.LoadNifti{path = os.getenv("IN")}
    local s = img:stats()
    print(img:dtype(), table.concat(img:shape(), "x"), s.min <= s.max)' 2>&1)
  [ "$out" = "float32	40x36x20	true" ]
  ok $? "require \"lumen\" from stock lua5.4 with the installed module: $out"
else
  echo "# lua5.4 not installed"
fi
echo "1..$n"
exit $failed
