#!/usr/bin/env python3
"""Run a build's GPU test suite: `meson test -C BUILD --suite gpu`, or, where meson is missing or
cannot read the build directory (a carried build configured by another meson version), the same
tests straight from BUILD/meson-info/intro-tests.json (command, environment, timeout, exit-code
protocol: 0 pass, 77 skip, anything else fail).  Used by scripts/gpu-check on the GPU machine.

usage: python3 bench/gpu/run_suite.py BUILD_DIR [SUITE] [--log FILE]
Exit status: 0 when no test failed.
"""
import json
import os
import shutil
import subprocess
import sys
import time


def meson_test(build, suite, log):
    meson = shutil.which("meson")
    if not meson:
        return None
    r = subprocess.run([meson, "test", "-C", build, "--suite", suite, "--no-rebuild", "--print-errorlogs"],
                       capture_output=True, text=True)
    text = r.stdout + r.stderr
    sys.stdout.write(text)
    if "Ok:" not in text:  # meson could not run the suite at all (version, missing files)
        print("# meson test did not run the suite; running the tests from intro-tests.json")
        return None
    src = os.path.join(build, "meson-logs", "testlog.txt")
    if log and os.path.exists(src):
        shutil.copyfile(src, log)
    return r.returncode


def direct(build, suite, log):
    with open(os.path.join(build, "meson-info", "intro-tests.json")) as f:
        tests = json.load(f)
    want = {suite, "lumen:" + suite}
    tests = [t for t in tests if want & set(t["suite"])]
    counts = {"ok": 0, "skip": 0, "fail": 0}
    out = open(log, "w") if log else None
    for t in tests:
        env = dict(os.environ)
        for k, v in (t.get("env") or {}).items():
            # the test's own library path first, the machine's (cuDNN, carried libraries) after it
            env[k] = v + ":" + os.environ[k] if k == "LD_LIBRARY_PATH" and os.environ.get(k) else v
        t0 = time.time()
        try:
            r = subprocess.run(t["cmd"], env=env, cwd=t.get("workdir") or build, capture_output=True, text=True,
                               timeout=t.get("timeout") or 300)
            rc, text = r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired as e:
            rc, text = -1, "TIMEOUT after %ss\n%s" % (t.get("timeout"), e.stdout or "")
        except OSError as e:  # not built
            rc, text = -1, str(e)
        kind = "ok" if rc == 0 else "skip" if rc == 77 else "fail"
        counts[kind] += 1
        line = "%-32s %-5s %6.1fs" % (t["name"], kind.upper(), time.time() - t0)
        print(line)
        if kind == "fail":
            print(text[-4000:])
        if out:
            out.write("==== %s\n%s\n" % (line, text))
    print("Ok: %d  Skipped: %d  Fail: %d" % (counts["ok"], counts["skip"], counts["fail"]))
    if out:
        out.close()
    return 1 if counts["fail"] else 0


def main():
    args = list(sys.argv[1:])
    log = None
    if "--log" in args:
        i = args.index("--log")
        log = args[i + 1]
        del args[i:i + 2]
    build = os.path.abspath(args[0])
    suite = args[1] if len(args) > 1 else "gpu"
    rc = meson_test(build, suite, log)
    if rc is None:
        rc = direct(build, suite, log)
    sys.exit(rc)


if __name__ == "__main__":
    main()
