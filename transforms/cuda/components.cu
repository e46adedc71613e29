/* KeepLargestConnectedComponent on the GPU: connected components by
 * union-find on the device (every voxel starts as its own root; each voxel
 * hooks onto its earlier neighbours of the same class with atomicMin, so a
 * root is always the component's first voxel in memory order, x fastest;
 * then every voxel is pointed at its root), component sizes by an atomic
 * histogram over the roots, and the CPU op's own choice of the components
 * to remove (klcc_choose, with its tie rules) on the host over the short
 * list of components.  A mask kernel writes the result.  The output equals
 * the CPU op's exactly. */
#include <stdlib.h>
#include <string.h>

#include "cuda_util.h"
#include "keep_largest_cc.h"
#include "label_grid.h"

/* A parent read that another thread may be changing: volatile on the device
 * so it is not served from a stale cache line.  Parents only ever decrease
 * to another member of the same tree, so any value read is an ancestor. */
LMC_HD int cc_load(const int *p)
{
#ifdef __CUDA_ARCH__
  return *(const volatile int *)p;
#else
  return *p;
#endif
}

LMC_HD int cc_find(const int *parent, int x)
{
  int y = cc_load(parent + x);
  while (y != x) {
    x = y;
    y = cc_load(parent + x);
  }
  return x;
}

/* Join the trees of a and b: the larger root is hooked under the smaller
 * one.  When the hook finds that its root had meanwhile been hooked
 * elsewhere (atomicMin returns another parent), the join goes on from that
 * parent. */
LMC_HD void cc_union(int *parent, int a, int b)
{
  for (;;) {
    a = cc_find(parent, a);
    b = cc_find(parent, b);
    if (a == b) return;
    if (a < b) {
      int t = a;
      a = b;
      b = t;
    }
    int old = lmc_atomic_min_i32(parent + a, b);
    if (old == a) return;
    a = old;
  }
}

/* Classes (0 = background) in grid order v = (z*ny + y)*nx + x, and every
 * foreground voxel its own root. */
struct cc_load_kernel {
  const void *in;
  int dt;
  int64_t nx, ny, st[3];
  const double *applied;  /* sorted; NULL = every nonzero label */
  int napplied;
  bool independent;
  int *cls, *parent, *count;
  LMC_HD void operator()(int64_t v) const
  {
    int64_t x = v % nx, y = (v / nx) % ny, z = v / (nx * ny);
    double d = lmc_load_f64(in, x * st[0] + y * st[1] + z * st[2], dt);
    int32_t l = (int32_t)lmc_sat(d, -2147483648.0, 2147483647.0);
    bool on = l != 0;
    if (on && applied) {
      /* binary search of the sorted applied labels (bsearch of the CPU) */
      int lo = 0, hi = napplied - 1;
      double key = l;
      on = false;
      while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (applied[mid] < key) lo = mid + 1;
        else if (applied[mid] > key) hi = mid - 1;
        else {
          on = true;
          break;
        }
      }
    }
    int c = on ? (independent ? l : 1) : 0;
    cls[v] = c;
    parent[v] = c ? (int)v : -1;
    count[v] = 0;
  }
};

/* Hook each foreground voxel onto its earlier neighbours (those before it
 * in grid order) of the same class: every neighbouring pair is joined once,
 * from its later voxel. */
struct cc_hook_kernel {
  const int *cls;
  int *parent;
  int64_t nx, ny, nz;
  int conn;
  LMC_HD void operator()(int64_t v) const
  {
    int c = cls[v];
    if (!c) return;
    int64_t x = v % nx, y = (v / nx) % ny, z = v / (nx * ny);
    bool planar = conn == 4 || conn == 8;
    int maxsum = conn == 6 || conn == 4 ? 1 : conn == 18 ? 2 : 3;
    for (int dz = planar ? 0 : -1; dz <= 0; dz++)
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
          /* earlier in grid order only */
          if (dz > 0 || (dz == 0 && (dy > 0 || (dy == 0 && dx >= 0)))) continue;
          if ((dx != 0) + (dy != 0) + (dz != 0) > maxsum) continue;
          int64_t xx = x + dx, yy = y + dy, zz = z + dz;
          if (xx < 0 || xx >= nx || yy < 0 || yy >= ny || zz < 0) continue;
          int64_t u = (zz * ny + yy) * nx + xx;
          if (cls[u] == c) cc_union(parent, (int)v, (int)u);
        }
  }
};

/* Every voxel at its root; component sizes counted at the roots, and the
 * roots listed (in no particular order; the host sorts them). */
struct cc_flatten_kernel {
  int *parent, *count, *roots;
  unsigned *nroots;
  LMC_HD void operator()(int64_t v) const
  {
    if (parent[v] < 0) return;
    int r = cc_find(parent, (int)v);
    parent[v] = r;
    lmc_atomic_add_u32((unsigned *)count + r, 1u);
    if (r == (int)v) roots[lmc_atomic_add_u32(nroots, 1u)] = r;
  }
};

/* Size and class of component i + 1 (roots sorted), and its number stored
 * at its root for the later kernels. */
struct cc_info_kernel {
  const int *roots, *cls;
  int *count;
  long long *size_class;  /* 2 per component */
  LMC_HD void operator()(int64_t i) const
  {
    int r = roots[i];
    size_class[2 * i] = count[r];
    size_class[2 * i + 1] = cls[r];
    count[r] = (int)i + 1;
  }
};

/* First voxel of each component in C order over (X, Y, Z). */
struct cc_keys_kernel {
  const int *parent, *id;
  long long *keys;  /* ncomp + 1 */
  int64_t nx, ny, nz;
  LMC_HD void operator()(int64_t v) const
  {
    if (parent[v] < 0) return;
    int64_t x = v % nx, y = (v / nx) % ny, z = v / (nx * ny);
    lmc_atomic_min_i64(keys + id[parent[v]], (long long)((x * ny + y) * nz + z));
  }
};

/* The output: the input's value, or 0 where the voxel's component is
 * dropped. */
struct cc_mask_kernel {
  const void *in;
  void *out;
  int esize, nd, first, nsp;
  int64_t shape[LM_MAX_DIMS], ist[LM_MAX_DIMS], ost[LM_MAX_DIMS];
  int64_t nx, ny;
  const int *parent, *id;
  const uint8_t *drop;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t i = 0, p[3] = {0, 0, 0};
    for (int d = 0; d < nd; d++) {
      int64_t c = (o / ost[d]) % shape[d];
      i += c * ist[d];
      if (d >= first && d < first + nsp) p[d - first] = c;
    }
    int64_t v = (p[2] * ny + p[1]) * nx + p[0];
    int r = parent[v];
    bool zero = r >= 0 && drop[id[r]];
    const char *src = (const char *)in + i * esize;
    char *dst = (char *)out + o * esize;
    for (int b = 0; b < esize; b++) dst[b] = zero ? 0 : src[b];
  }
};

static int cmp_int(const void *a, const void *b)
{
  int x = *(const int *)a, y = *(const int *)b;
  return x < y ? -1 : x > y;
}

typedef struct cc_keys_job {
  lm_op_ctx *ctx;
  cudaStream_t s;
  cc_keys_kernel k;
  int64_t numel, ncomp;
} cc_keys_job;

/* klcc_choose's callback: the first-voxel keys on the device, copied back. */
static int cc_first_keys(void *arg, int64_t *first_key)
{
  cc_keys_job *j = (cc_keys_job *)arg;
  size_t bytes = sizeof(long long) * (size_t)(j->ncomp + 1);
  long long *d = (long long *)lmc_scratch_alloc(j->ctx, j->s, bytes);
  if (!d) return LM_ENOMEM;
  int st = lmc_copy_to_device(j->ctx, j->s, d, first_key, bytes);
  cudaError_t e = cudaSuccess;
  if (st >= 0) {
    j->k.keys = d;
    e = lmc_for_each(j->s, j->numel, j->k);
    if (e != cudaSuccess) st = lmc_fail(j->ctx, "KeepLargestConnectedComponent keys", e);
  }
  if (st >= 0) st = lmc_copy_to_host(j->ctx, j->s, first_key, d, bytes);
  lmc_scratch_free(j->ctx, j->s, d);
  return st;
}

extern "C" int lmc_keep_largest_cc(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  lg_grid g;
  klcc_opts o;
  int st = lg_grid_of_any(ctx, in, "label", &g);
  if (st < 0) return st;
  if ((st = klcc_options(ctx, g.nsp, &o)) < 0) return st;
  if (g.numel >= 2147483646) {
    free(o.applied);
    return lm_ctx_error(ctx, LM_EUNSUPPORTED, "label has %lld voxels; the GPU "
                        "labelling takes fewer than 2^31 - 2", (long long)g.numel);
  }
  cudaStream_t s;
  if ((st = lmc_stream(ctx, &s)) < 0) {
    free(o.applied);
    return st;
  }
  int64_t n = g.numel ? g.numel : 1;
  /* cls, parent, count (then component numbers), roots; the root count */
  int *work = (int *)lmc_scratch_alloc(ctx, s, sizeof(int) * (size_t)(4 * n + 1));
  double *applied = NULL;
  int *roots_h = NULL;
  long long *info_h = NULL;
  int32_t *comp_class = NULL;
  int64_t *sizes = NULL;
  uint8_t *drop = NULL, *drop_d = NULL;
  long long *info_d = NULL;
  unsigned nroots = 0;
  cudaError_t e = cudaSuccess;
  if (!work) {
    st = LM_ENOMEM;
    goto done;
  }
  {
    int *cls = work, *parent = work + n, *count = work + 2 * n, *roots = work + 3 * n;
    unsigned *nroots_d = (unsigned *)(work + 4 * n);
    if (o.applied) {
      applied = (double *)lmc_scratch_alloc(ctx, s, sizeof(double) * (size_t)(o.napplied + 1));
      if (!applied) {
        st = LM_ENOMEM;
        goto done;
      }
      if ((st = lmc_copy_to_device(ctx, s, applied, o.applied,
                                   sizeof(double) * (size_t)o.napplied)) < 0)
        goto done;
    }
    if ((st = lmc_copy_to_device(ctx, s, nroots_d, &nroots, sizeof nroots)) < 0) goto done;
    const int64_t *ist = lm_tensor_strides(in);
    cc_load_kernel lk;
    memset(&lk, 0, sizeof lk);
    lk.in = lm_tensor_data(in);
    lk.dt = lm_tensor_dtype(in);
    lk.nx = g.n[0];
    lk.ny = g.n[1];
    for (int d = 0; d < g.nsp; d++) lk.st[d] = ist[g.first + d];
    lk.applied = applied;
    lk.napplied = o.napplied;
    lk.independent = o.independent;
    lk.cls = cls;
    lk.parent = parent;
    lk.count = count;
    e = lmc_for_each(s, g.numel, lk);
    if (e == cudaSuccess)
      e = lmc_for_each(s, g.numel,
                       cc_hook_kernel{cls, parent, g.n[0], g.n[1], g.n[2], o.connectivity});
    if (e == cudaSuccess)
      e = lmc_for_each(s, g.numel, cc_flatten_kernel{parent, count, roots, nroots_d});
    if (e != cudaSuccess) goto done;
    if ((st = lmc_copy_to_host(ctx, s, &nroots, nroots_d, sizeof nroots)) < 0) goto done;

    /* The components numbered as the CPU numbers them: by root, which is
     * the first voxel in memory order. */
    int64_t ncomp = nroots;
    roots_h = (int *)malloc(sizeof(int) * (size_t)(ncomp + 1));
    info_h = (long long *)malloc(sizeof(long long) * (size_t)(2 * ncomp + 1));
    comp_class = (int32_t *)calloc((size_t)ncomp + 1, sizeof *comp_class);
    sizes = (int64_t *)calloc((size_t)ncomp + 1, sizeof *sizes);
    drop = (uint8_t *)calloc((size_t)ncomp + 1, 1);
    if (!roots_h || !info_h || !comp_class || !sizes || !drop) {
      st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
      goto done;
    }
    if ((st = lmc_copy_to_host(ctx, s, roots_h, roots, sizeof(int) * (size_t)ncomp)) < 0)
      goto done;
    qsort(roots_h, (size_t)ncomp, sizeof *roots_h, cmp_int);
    if ((st = lmc_copy_to_device(ctx, s, roots, roots_h, sizeof(int) * (size_t)ncomp)) < 0)
      goto done;
    info_d = (long long *)lmc_scratch_alloc(ctx, s, sizeof(long long) * (size_t)(2 * ncomp + 1));
    if (!info_d) {
      st = LM_ENOMEM;
      goto done;
    }
    e = lmc_for_each(s, ncomp, cc_info_kernel{roots, cls, count, info_d});
    if (e != cudaSuccess) goto done;
    if ((st = lmc_copy_to_host(ctx, s, info_h, info_d,
                               sizeof(long long) * (size_t)(2 * ncomp))) < 0)
      goto done;
    for (int64_t c = 0; c < ncomp; c++) {
      sizes[c + 1] = info_h[2 * c];
      comp_class[c + 1] = (int32_t)info_h[2 * c + 1];
    }

    cc_keys_job kj;
    memset(&kj, 0, sizeof kj);
    kj.ctx = ctx;
    kj.s = s;
    kj.k.parent = parent;
    kj.k.id = count;
    kj.k.nx = g.n[0];
    kj.k.ny = g.n[1];
    kj.k.nz = g.n[2];
    kj.numel = g.numel;
    kj.ncomp = ncomp;
    if ((st = klcc_choose(ctx, &o, ncomp, comp_class, sizes, cc_first_keys, &kj, drop)) < 0)
      goto done;

    drop_d = (uint8_t *)lmc_scratch_alloc(ctx, s, (size_t)ncomp + 1);
    if (!drop_d) {
      st = LM_ENOMEM;
      goto done;
    }
    if ((st = lmc_copy_to_device(ctx, s, drop_d, drop, (size_t)ncomp + 1)) < 0) goto done;
    st = lm_tensor_new_like(in, lm_tensor_dtype(in), lm_tensor_device(in), &out);
    if (st < 0) {
      st = lm_ctx_error(ctx, st, "cannot allocate the output on cuda:%d",
                        lm_tensor_device(in).index);
      goto done;
    }
    cc_mask_kernel mk;
    memset(&mk, 0, sizeof mk);
    mk.in = lm_tensor_data(in);
    mk.out = lm_tensor_data(out);
    mk.esize = (int)lm_dtype_size(lm_tensor_dtype(in));
    mk.nd = lm_tensor_ndim(in);
    mk.first = g.first;
    mk.nsp = g.nsp;
    for (int d = 0; d < mk.nd; d++) {
      mk.shape[d] = lm_tensor_shape(in)[d];
      mk.ist[d] = ist[d];
      mk.ost[d] = lm_tensor_strides(out)[d];
    }
    mk.nx = g.n[0];
    mk.ny = g.n[1];
    mk.parent = parent;
    mk.id = count;
    mk.drop = drop_d;
    e = lmc_for_each(s, lm_tensor_numel(out), mk);
  }
done:
  lmc_scratch_free(ctx, s, work);
  lmc_scratch_free(ctx, s, applied);
  lmc_scratch_free(ctx, s, info_d);
  lmc_scratch_free(ctx, s, drop_d);
  free(o.applied);
  free(roots_h);
  free(info_h);
  free(comp_class);
  free(sizes);
  free(drop);
  if (st < 0) {
    lm_tensor_release(out);
    return st;
  }
  return lmc_finish(ctx, s, e, "KeepLargestConnectedComponent kernel", &out, out ? 1 : 0);
}
