"""`lumen run --shard K/N` (scale-out over a file list): N processes cover a
list exactly once, each result equal to a plain `lumen run PACKAGE IN OUT`;
a sharded script sees its slice of the arguments; bad shards are refused; a
failing input fails the run but not the other inputs.

Usage: test_aiaa_shard.py LUMEN_BINARY   (TAP; exit 77 without nibabel)"""

import os
import shutil
import tempfile

import test_aiaa_support as S


def main():
    S.need_nibabel()
    import nibabel as nib
    import numpy as np

    lumen = S.lumen_binary()
    t = S.Tap()
    d = tempfile.mkdtemp(prefix="lumen-shard-")
    pkg = os.path.join(S.source_root(), "models", "demo_ct_unet")
    if not os.path.isfile(os.path.join(pkg, "model.onnx")):
        S.skip("models/demo_ct_unet is missing")
    script = os.path.join(d, "phantoms.lua")
    with open(script, "w") as f:
        f.write("for i = 1, 4 do\n"
                "  local img = Phantom{shape = {48, 48, 32}, spacing = {7, 7, 9}, seed = i}\n"
                "  SaveNifti(img, {path = arg[1] .. '/case' .. i .. '.nii.gz'})\n"
                "end\n")
    r = S.run([lumen, "run", script, d])
    t.eq(r.returncode, 0, "four small phantoms written")
    cases = [os.path.join(d, "case%d.nii.gz" % i) for i in range(1, 5)]

    # the reference: one plain package run per case
    refs = {}
    for c in cases:
        out = c.replace(".nii.gz", "_ref.nii.gz")
        r = S.run([lumen, "run", pkg, c, out])
        refs[os.path.basename(c)] = np.asarray(nib.load(out).dataobj)

    out_dir = os.path.join(d, "out")
    seen = {}
    for k in range(3):
        r = S.run([lumen, "run", "--shard", "%d/3" % k, pkg] + cases + [out_dir])
        t.eq(r.returncode, 0, "shard %d/3 runs" % k)
        done = [line.split(" -> ")[0] for line in r.stdout.splitlines() if " -> " in line]
        want = [c for i, c in enumerate(cases) if i % 3 == k]
        t.eq(done, want, "shard %d/3 takes the items i %% 3 == %d" % (k, k))
        for c in done:
            seen[c] = seen.get(c, 0) + 1
    t.eq(sorted(seen.items()), [(c, 1) for c in sorted(cases)], "the three shards cover the list exactly once")
    same = all(np.array_equal(np.asarray(nib.load(os.path.join(out_dir, name)).dataobj), ref)
               for name, ref in refs.items())
    t.ok(same, "every sharded result equals the plain lumen run")

    # a sharded script sees only its items
    echo = os.path.join(d, "echo.lua")
    with open(echo, "w") as f:
        f.write("print(table.concat(arg, ','))\n")
    r = S.run([lumen, "run", "--shard", "1/3", echo, "a", "b", "c", "d", "e", "f", "g"])
    t.ok(r.returncode == 0 and r.stdout.strip() == "b,e", "script: arg holds the items 1, 4 of 0..6", r.stdout)

    for bad in ("3/3", "-1/2", "1/0", "x", "1/2/3"):
        r = S.run([lumen, "run", "--shard", bad, pkg] + cases + [out_dir])
        t.ok(r.returncode != 0 and "--shard" in r.stdout, "--shard %s refused" % bad, r.stdout)

    # one bad input: reported, the run fails, the other input is processed
    out2 = os.path.join(d, "out2")
    missing = os.path.join(d, "missing.nii.gz")
    r = S.run([lumen, "run", "--shard", "0/1", pkg, missing, cases[0], out2])
    t.ok(r.returncode == 1 and "missing.nii.gz" in r.stdout
         and os.path.isfile(os.path.join(out2, "case1.nii.gz")),
         "a failing input fails the run, the others are done", r.stdout)
    shutil.rmtree(d, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
