"""What the GPU benchmarks share: their command line and running a Lua script in lumen."""
import json
import os
import subprocess
import tempfile

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv, defaults):
    """[BUILD_DIR] plus --NAME VALUE for each key of defaults (--runs an int, --shape X,Y,Z);
    BUILD_DIR defaults to build-release."""
    o = dict(defaults)
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and a[2:] in defaults and i + 1 < len(argv):
            v = argv[i + 1]
            o[a[2:]] = int(v) if a == "--runs" else tuple(int(s) for s in v.split(",")) if a == "--shape" else v
            i += 2
        else:
            rest.append(a)
            i += 1
    o["build"] = os.path.abspath(rest[0] if rest else os.path.join(root, "build-release"))
    return o


def lumen_run(lumen, script, *args):
    """Run a Lua script text with lumen; its last printed line is JSON, returned decoded."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        r = subprocess.run([lumen, "run", f.name] + [str(a) for a in args], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        raise RuntimeError("lumen failed: " + (r.stderr.strip() or r.stdout.strip())[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])
