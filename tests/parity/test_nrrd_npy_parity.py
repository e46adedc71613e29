#!/usr/bin/python3
"""Parity: NRRD and .npy I/O against numpy, nibabel and a hand-written NRRD
reader/writer (pynrrd is not in Debian; the NRRD here is written the way
pynrrd and ITK write it: LPS space directions, origin, gzip or raw).

Real CTs and labels are converted NIfTI -> NRRD by hand; lumen reads them
(LoadNrrd), writes NIfTI, NRRD (gzip, attached) and NRRD (raw, .nhdr).  The
NIfTI must give nibabel the original array and affine, and the NRRD files,
parsed back by hand, the original array, directions and origin, exactly.
The gzip data must be ONE gzip member (pynrrd reads only the first).  .npy
files written by numpy (every dtype, both byte orders, C and Fortran order,
0-d, a LUNA16-style float64 centre list) go through LoadNpy / SaveNpy and
must come back equal, dtype included (big-endian ones as little-endian).

usage: test_nrrd_npy_parity.py LUMEN SCRIPT   (TAP; exit 77 = skip without data)
"""
import gzip
import os
import subprocess
import sys
import tempfile
import zlib

import nibabel as nib
import numpy as np

NRRD_TYPES = {np.dtype('int16'): 'short', np.dtype('uint8'): 'uchar', np.dtype('int32'): 'int',
              np.dtype('float32'): 'float', np.dtype('float64'): 'double'}


def fmt(v):
    return repr(float(v)).replace('inf', 'nan')


def write_nrrd(path, arr, affine, encoding):
    """As pynrrd / ITK write it: the RAS+ affine turned into LPS."""
    lps = affine.copy()
    lps[:2, :] *= -1
    dirs = ' '.join('(%s)' % ','.join(fmt(x) for x in lps[:3, j]) for j in range(3))
    hdr = ('NRRD0004\n# Complete NRRD file format specification at:\n'
           '# http://teem.sourceforge.net/nrrd/format.html\n'
           'type: %s\ndimension: %d\nspace: left-posterior-superior\nsizes: %s\n'
           'space directions: %s\nkinds: domain domain domain\nendian: little\n'
           'encoding: %s\nspace origin: (%s)\n\n') % (
        NRRD_TYPES[arr.dtype], arr.ndim, ' '.join(str(s) for s in arr.shape), dirs, encoding,
        ','.join(fmt(x) for x in lps[:3, 3]))
    data = arr.astype(arr.dtype.newbyteorder('<')).tobytes(order='F')
    if encoding == 'gzip':
        data = gzip.compress(data)
    with open(path, 'wb') as f:
        f.write(hdr.encode() + data)


def parse_vec(s):
    return [float(x) for x in s.strip('()').split(',')]


def read_nrrd(path):
    """A small reader with pynrrd's rules, including its single-member gzip."""
    raw = open(path, 'rb').read()
    end = raw.find(b'\n\n')
    if end < 0:  # a detached header (.nhdr) ends with the file
        end = len(raw.rstrip(b'\n'))
    lines = raw[:end].decode().split('\n')
    assert lines[0].startswith('NRRD000'), lines[0]
    h = {}
    for ln in lines[1:]:
        if ln.startswith('#') or ':=' in ln:
            continue
        k, v = ln.split(': ', 1)
        h[k] = v
    body = raw[end + 2:]
    if 'data file' in h:
        body = open(os.path.join(os.path.dirname(path), h['data file']), 'rb').read()
    if h['encoding'] == 'gzip':
        d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        out = d.decompress(body)
        assert d.eof and d.unused_data == b'', 'gzip data are not exactly one member'
        body = out
    inv = {v: k for k, v in NRRD_TYPES.items()}
    dt = inv[h['type']].newbyteorder('<' if h.get('endian', 'little') == 'little' else '>')
    sizes = [int(s) for s in h['sizes'].split()]
    arr = np.frombuffer(body, dtype=dt).reshape(sizes, order='F')
    dirs = [parse_vec(s) for s in h['space directions'].split()]
    aff = np.eye(4)
    aff[:3, :3] = np.array(dirs).T
    aff[:3, 3] = parse_vec(h['space origin'])
    if h['space'] == 'left-posterior-superior':
        aff[:2, :] *= -1
    return h, arr, aff


def main():
    lumen, script = sys.argv[1], sys.argv[2]
    data = os.environ.get('LUMEN_TEST_DATA', '')
    files = {'ct_lps': ('ct/totalseg_aorta_ct_cropped.nii.gz', 'gzip'),
             'ct_ras_i32': ('ct/totalseg_example_ct.nii.gz', 'gzip'),
             'seg': ('labels/totalseg_example_seg.nii.gz', 'raw'),
             'mri_lia': ('mri/brainchop_t1_crop.nii.gz', 'gzip'),
             'oblique_f32': ('odd/FA_float32.nii.gz', 'raw')}
    paths = {k: os.path.join(data, v[0]) for k, v in files.items()}
    if not all(os.path.exists(p) for p in paths.values()):
        print('1..0 # SKIP test data not available (LUMEN_TEST_DATA)')
        return 77
    n = 0
    failed = 0

    def ok(cond, what):
        nonlocal n, failed
        n += 1
        if not cond:
            failed += 1
        print('%s %d - %s' % ('ok' if cond else 'not ok', n, what))

    rng = np.random.default_rng(7)
    arrays = {
        'bboxes.npy': rng.normal(size=(12, 4)) * 100,
        'f_i16.npy': np.asfortranarray(rng.integers(-3000, 3000, size=(7, 6, 5)).astype(np.int16)),
        'be_f4.npy': rng.normal(size=(4, 5)).astype('>f4'),
        'be_i4.npy': rng.integers(-9, 9, size=(3, 2, 2, 2)).astype('>i4'),
        'u1.npy': rng.integers(0, 255, size=(9,)).astype(np.uint8),
        'i1.npy': rng.integers(-128, 127, size=(2, 3)).astype(np.int8),
        'u2.npy': rng.integers(0, 65535, size=(5, 3)).astype(np.uint16),
        'u4.npy': rng.integers(0, 2**32 - 1, size=(5,), dtype=np.uint64).astype(np.uint32),
        'i8.npy': rng.integers(-2**62, 2**62, size=(3, 3), dtype=np.int64),
        'f2.npy': rng.normal(size=(2, 2, 2)).astype(np.float16),
        'scalar.npy': np.array(3.25),
        'patch.npy': rng.normal(size=(1, 16, 16, 8)).astype(np.float32),
    }
    with tempfile.TemporaryDirectory() as tmp:
        originals = {}
        for name, (rel, enc) in files.items():
            img = nib.load(paths[name])
            arr = np.asanyarray(img.dataobj)
            if img.dataobj.slope not in (1, None) or img.dataobj.inter not in (0, None):
                arr = img.get_fdata(dtype=np.float32)
            arr = arr.astype(arr.dtype.newbyteorder('='))
            originals[name] = (arr, img.affine)
            write_nrrd(os.path.join(tmp, name + '.nrrd'), arr, img.affine, enc)
        for k, a in arrays.items():
            np.save(os.path.join(tmp, k), a)
        r = subprocess.run([lumen, 'run', script, tmp] + list(files) + list(arrays),
                           capture_output=True, text=True)
        ok(r.returncode == 0, 'lumen ran the script' + ('' if r.returncode == 0 else
                                                          ': ' + r.stderr.strip()[-500:]))
        if r.returncode != 0:
            print('1..%d' % n)
            return 1
        for name in files:
            arr, aff = originals[name]
            nii = nib.load(os.path.join(tmp, name + '_lumen.nii.gz'))
            got = np.asanyarray(nii.dataobj)
            ok(got.dtype == arr.dtype and np.array_equal(got, arr),
               '%s: NRRD -> LoadNrrd -> SaveNifti gives nibabel the original array' % name)
            ok(np.allclose(nii.affine, aff, rtol=0, atol=1e-4 * max(1, np.abs(aff).max())),
               '%s: and the original affine (float32 sform)' % name)
            for suffix in ('_lumen.nrrd', '_lumen_raw.nhdr'):
                try:
                    h, back, baff = read_nrrd(os.path.join(tmp, name + suffix))
                except AssertionError as e:
                    ok(False, '%s%s: %s' % (name, suffix, e))
                    continue
                ok(back.dtype == arr.dtype and np.array_equal(back, arr),
                   '%s%s: the array, read back by hand' % (name, suffix))
                ok(np.array_equal(baff, aff),
                   '%s%s: space directions and origin give the original affine exactly'
                   % (name, suffix))
            ok(h['space'] == 'left-posterior-superior' and h['kinds'] == 'domain domain domain',
               '%s: LPS space, domain kinds (as ITK writes)' % name)
        for k, a in arrays.items():
            b = np.load(os.path.join(tmp, k.replace('.npy', '_lumen.npy')))
            want_dt = a.dtype.newbyteorder('<') if a.dtype.byteorder == '>' else a.dtype
            ok(b.dtype == want_dt and b.shape == a.shape and np.array_equal(a, b),
               '%s: numpy -> LoadNpy -> SaveNpy -> numpy is exact (%s %s)' % (k, b.dtype, b.shape))
    print('1..%d' % n)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
