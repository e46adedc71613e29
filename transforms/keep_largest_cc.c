/* KeepLargestConnectedComponent: MONAI's post-processing step, with
 * nnU-Net's tie rule as an option (semantics.md §9.1). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "connected_components.h"
#include "keep_largest_cc.h"
#include "label_grid.h"
#include "xf_util.h"

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int klcc_options(lm_op_ctx *ctx, int nsp, klcc_opts *o)
{
  memset(o, 0, sizeof *o);
  o->independent = lm_arg_bool(ctx, "independent");
  o->keep_n = lm_arg_int(ctx, "num_components");
  if (o->keep_n < 1)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'num_components' must be at "
                        "least 1 (got %lld)", (long long)o->keep_n);
  o->connectivity = nsp == 3 ? 26 : 8;
  if (lm_arg_is_set(ctx, "connectivity")) {
    int64_t c = lm_arg_int(ctx, "connectivity");
    bool ok = nsp == 3 ? (c == 6 || c == 18 || c == 26) : (c == 4 || c == 8);
    if (!ok)
      return lm_ctx_error(ctx, LM_EINVAL, "option 'connectivity' = %lld is "
                          "not valid for %d-D input (use %s)", (long long)c,
                          nsp, nsp == 3 ? "6, 18 or 26" : "4 or 8");
    o->connectivity = (int)c;
  }
  const char *ties = lm_arg_string(ctx, "ties");
  if (strcmp(ties, "all") == 0) o->ties_all = true;
  else if (strcmp(ties, "monai") != 0)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'ties' must be 'monai' or "
                        "'all' (got '%s')", ties);
  if (lm_arg_is_set(ctx, "applied_labels")) {
    int n;
    const double *v = lm_arg_numbers(ctx, "applied_labels", &n);
    for (int i = 0; i < n; i++)
      if (v[i] != floor(v[i]) || fabs(v[i]) > 2147483647.0)
        return lm_ctx_error(ctx, LM_EINVAL, "option 'applied_labels': entry "
                            "%d (%g) is not an integer label", i + 1, v[i]);
    o->applied = malloc(sizeof *o->applied * (size_t)(n > 0 ? n : 1));
    if (!o->applied) return lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    memcpy(o->applied, v, sizeof *v * (size_t)n);
    qsort(o->applied, (size_t)n, sizeof *o->applied, cmp_double);
    o->napplied = n;
  }
  return LM_OK;
}

static int klcc_check(lm_op_ctx *ctx)
{
  lg_grid g;
  klcc_opts o;
  /* any device: the CUDA plugin has a kernel for this op */
  int st = lg_grid_of_any(ctx, lm_ctx_input(ctx, 0), "label", &g);
  if (st < 0) return st;
  st = klcc_options(ctx, g.nsp, &o);
  free(o.applied);
  return st;
}

typedef struct klcc_job {
  const klcc_opts *o;
  int32_t *cls;          /* label values, then classes */
  const int32_t *lab;    /* component ids */
  int32_t *comp_class;
  int64_t *first_key;    /* per component: first voxel in (i,j,k) C order */
  const uint8_t *drop;   /* per component: 1 = remove */
  int64_t nx, ny, nz;
  char *out;             /* output element (0,...,0) */
  int64_t os[3];         /* output strides of x, y, z in bytes */
  size_t esz;
} klcc_job;

bool klcc_is_applied(const klcc_opts *o, int32_t v)
{
  if (v == 0) return false;
  if (!o->applied) return true;
  double key = v;
  return bsearch(&key, o->applied, (size_t)o->napplied, sizeof key,
                 cmp_double) != NULL;
}

static int to_classes(int64_t b, int64_t e, void *arg)
{
  klcc_job *j = arg;
  for (int64_t v = b; v < e; v++) {
    int32_t x = j->cls[v];
    j->cls[v] = klcc_is_applied(j->o, x) ? (j->o->independent ? x : 1) : 0;
  }
  return LM_OK;
}

static int note_classes(int64_t b, int64_t e, void *arg)
{
  klcc_job *j = arg;
  for (int64_t v = b; v < e; v++)
    if (j->lab[v] > 0)
      __atomic_store_n(&j->comp_class[j->lab[v]], j->cls[v], __ATOMIC_RELAXED);
  return LM_OK;
}

/* skimage numbers components in C order over MONAI's (X, Y, Z) array (z
 * fastest): the key of voxel (x, y, z) is (x*ny + y)*nz + z. */
static int note_first_keys(int64_t b, int64_t e, void *arg)
{
  klcc_job *j = arg;
  for (int64_t v = b; v < e; v++) {
    int32_t l = j->lab[v];
    if (l <= 0) continue;
    int64_t x = v % j->nx, y = (v / j->nx) % j->ny, z = v / (j->nx * j->ny);
    int64_t key = (x * j->ny + y) * j->nz + z;
    int64_t cur = __atomic_load_n(&j->first_key[l], __ATOMIC_RELAXED);
    while (key < cur &&
           !__atomic_compare_exchange_n(&j->first_key[l], &cur, key, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
  }
  return LM_OK;
}

static int zero_dropped(int64_t b, int64_t e, void *arg)
{
  klcc_job *j = arg;
  for (int64_t r = b; r < e; r++) { /* r = z*ny + y */
    int64_t y = r % j->ny, z = r / j->ny;
    const int32_t *lrow = j->lab + r * j->nx;
    char *orow = j->out + y * j->os[1] + z * j->os[2];
    for (int64_t x = 0; x < j->nx; x++)
      if (lrow[x] > 0 && j->drop[lrow[x]]) memset(orow + x * j->os[0], 0, j->esz);
  }
  return LM_OK;
}

/* Components of one class, in the order they are kept. */
typedef struct rank_ctx {
  const int64_t *sizes, *first_key;
} rank_ctx;

/* Larger first; among equal sizes MONAI keeps the component skimage
 * numbers higher (measured: argsort reversed), i.e. the later first voxel
 * in (i,j,k) C order. */
static int cmp_rank(const void *a, const void *b, void *arg)
{
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  const rank_ctx *r = arg;
  if (r->sizes[x] != r->sizes[y]) return r->sizes[x] > r->sizes[y] ? -1 : 1;
  if (r->first_key && r->first_key[x] != r->first_key[y])
    return r->first_key[x] > r->first_key[y] ? -1 : 1;
  return x < y ? -1 : x > y;
}

static int cmp_class_then_id(const void *a, const void *b, void *arg)
{
  const int32_t *cc = arg;
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  if (cc[x] != cc[y]) return cc[x] < cc[y] ? -1 : 1;
  return x < y ? -1 : x > y;
}

typedef struct keys_job {
  lm_engine *e;
  lm_op_ctx *ctx;
  klcc_job *j;
  int64_t numel;
} keys_job;

static int cpu_first_keys(void *arg, int64_t *first_key)
{
  keys_job *k = arg;
  k->j->first_key = first_key;
  int st = lm_parallel_for(k->e, k->ctx, k->numel, XF_GRAIN, note_first_keys, k->j);
  k->j->first_key = NULL;
  return st;
}

int klcc_choose(lm_op_ctx *ctx, const klcc_opts *o, int64_t ncomp,
                const int32_t *comp_class, const int64_t *sizes,
                klcc_keys_fn keys, void *arg, uint8_t *drop)
{
  int32_t *order = malloc(sizeof *order * (size_t)(ncomp + 1));
  int64_t *first_key = NULL;
  int st = LM_OK;
  if (!order) return lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
  for (int64_t c = 0; c < ncomp; c++) order[c] = (int32_t)(c + 1);
  qsort_r(order, (size_t)ncomp, sizeof *order, cmp_class_then_id, (void *)comp_class);

  /* Per class: rank its components and mark those past the cut. */
  for (int64_t a = 0; a < ncomp;) {
    int64_t b = a;
    while (b < ncomp && comp_class[order[b]] == comp_class[order[a]]) b++;
    int64_t n = b - a;
    if (n > o->keep_n) {
      rank_ctx rc = {sizes, NULL};
      qsort_r(order + a, (size_t)n, sizeof *order, cmp_rank, &rc);
      int64_t cut = sizes[order[a + o->keep_n - 1]];
      bool tie = sizes[order[a + o->keep_n]] == cut;
      if (tie && !o->ties_all) {
        if (!first_key) {
          first_key = malloc(sizeof *first_key * (size_t)(ncomp + 1));
          if (!first_key) {
            st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
            break;
          }
          for (int64_t c = 0; c <= ncomp; c++) first_key[c] = INT64_MAX;
          if ((st = keys(arg, first_key)) < 0) break;
        }
        rc.first_key = first_key;
        qsort_r(order + a, (size_t)n, sizeof *order, cmp_rank, &rc);
      }
      for (int64_t k = o->keep_n; k < n; k++)
        if (!(o->ties_all && sizes[order[a + k]] == cut)) drop[order[a + k]] = 1;
    }
    a = b;
  }
  free(order);
  free(first_key);
  return st;
}

static int klcc_run(lm_op_ctx *ctx)
{
  lm_engine *e = lm_ctx_engine(ctx);
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  lg_grid g;
  klcc_opts o;
  int st = lg_grid_of(ctx, in, "label", &g);
  if (st < 0) return st;
  if ((st = klcc_options(ctx, g.nsp, &o)) < 0) return st;

  klcc_job j = {.o = &o, .nx = g.n[0], .ny = g.n[1], .nz = g.n[2]};
  /* Scratch from the engine's caching allocator (fresh pages cost more
   * than the labelling at CT sizes). */
  lm_tensor *scratch = NULL;
  int64_t n2 = 2 * (g.numel ? g.numel : 1);
  int32_t *cls = NULL, *lab = NULL;
  if (lm_tensor_new(e, LM_I32, 1, &n2, LM_CPU, &scratch) >= 0) {
    cls = lm_tensor_data(scratch);
    lab = cls + n2 / 2;
  }
  int64_t *sizes = NULL, ncomp = 0;
  uint8_t *drop = NULL;
  if (!cls || !lab) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    goto done;
  }
  j.cls = cls;
  j.lab = lab;
  if ((st = lg_load_int32(ctx, in, &g, cls)) < 0) goto done;
  if ((st = lm_parallel_for(e, ctx, g.numel, XF_GRAIN, to_classes, &j)) < 0)
    goto done;
  st = cc_label(e, ctx, cls, g.n[0], g.n[1], g.n[2], o.connectivity, lab,
                &ncomp, &sizes);
  if (st < 0) goto done;

  j.comp_class = calloc((size_t)ncomp + 1, sizeof *j.comp_class);
  drop = calloc((size_t)ncomp + 1, 1);
  if (!j.comp_class || !drop) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    goto done;
  }
  if ((st = lm_parallel_for(e, ctx, g.numel, XF_GRAIN, note_classes, &j)) < 0)
    goto done;
  keys_job kj = {e, ctx, &j, g.numel};
  st = klcc_choose(ctx, &o, ncomp, j.comp_class, sizes, cpu_first_keys, &kj, drop);
  if (st < 0) goto done;

  st = lm_tensor_new_like(in, lm_tensor_dtype(in), LM_CPU, &out);
  if (st < 0) {
    st = lm_ctx_error(ctx, st, "cannot allocate the output");
    goto done;
  }
  if ((st = lm_tensor_copy(out, in)) < 0) {
    st = lm_ctx_error(ctx, st, "cannot copy the input");
    goto done;
  }
  j.drop = drop;
  j.esz = lm_dtype_size(lm_tensor_dtype(out));
  j.out = lm_tensor_data(out);
  for (int d = 0; d < g.nsp; d++)
    j.os[d] = lm_tensor_strides(out)[g.first + d] * (int64_t)j.esz;
  st = lm_parallel_for(e, ctx, g.n[1] * g.n[2], 16, zero_dropped, &j);
  if (st < 0) goto done;
  st = lm_ctx_set_output(ctx, 0, out);
  out = NULL;
done:
  lm_tensor_release(out);
  free(o.applied);
  lm_tensor_release(scratch);
  free(sizes);
  free(drop);
  free(j.comp_class);
  free(j.first_key);
  return st;
}

static const lm_arg_desc klcc_args[] = {
  {"applied_labels", LM_ARG_NUMBERS, "nil", "labels to process; nil = every "
   "nonzero label present. Other labels are left as they are"},
  {"independent", LM_ARG_BOOL, "true", "true: each applied label keeps its "
   "own largest component(s); false: components of the union of the "
   "applied labels (a component may span labels), and the voxels of the "
   "removed ones become 0"},
  {"connectivity", LM_ARG_INT, "nil", "3-D: 6 (faces), 18 (and edges) or 26 "
   "(and corners); 2-D: 4 or 8; nil = full (26 / 8, MONAI's "
   "connectivity=None)"},
  {"num_components", LM_ARG_INT, "1", "how many of the largest components "
   "to keep"},
  {"ties", LM_ARG_STRING, "'monai'", "components of equal size at the cut: "
   "'monai' keeps exactly num_components, preferring the one skimage "
   "numbers higher (whose first voxel in (i,j,k) C order comes later, "
   "MONAI's measured behaviour); 'all' keeps every component as large as "
   "the cut (nnU-Net v2 remove_all_but_largest_component)"},
};

const lm_op_desc lm_op_keep_largest_connected_component = {
  .name = "KeepLargestConnectedComponent",
  .alias = NULL,
  .summary = "Keep only the largest connected component(s) of each label "
             "(or of their union); the rest becomes background 0",
  .doc =
    "MONAI KeepLargestConnectedComponent (transforms/utils.py:"
    "get_largest_connected_component_mask, skimage.measure.label) with "
    "is_onehot=false: input is a label map (X,Y,Z), (1,X,Y,Z), (X,Y) or "
    "(1,X,Y) of any dtype (values converted to int32 as Cast does). "
    "independent=true: for each applied label l, components of (label == l) "
    "are found; if there are more than num_components, all but the "
    "num_components largest (by voxel count) are set to 0. "
    "independent=false: the same on the union of the applied labels. "
    "Connectivity: full (26 in 3-D, 8 in 2-D) by default as MONAI; "
    "nnU-Net v1 (scipy.ndimage.label default) used 6. "
    "Ties: MONAI's np.argsort(...)[::-1] keeps the higher skimage label "
    "among equal sizes (measured; skimage numbers components by their first "
    "voxel in C order over (X,Y,Z), z fastest), and so does ties='monai'; "
    "ties='all' keeps every component whose size equals the cut, as "
    "nnU-Net v2 does. Output: the input's dtype, shape, memory order, "
    "affine, layout and trace. The labelling core (union-find over runs, "
    "slabs in parallel) is shared with Contours.",
  .inputs = "label",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "label",
  .args = klcc_args,
  .nargs = (int)(sizeof klcc_args / sizeof klcc_args[0]),
  .flags = 0,
  .check = klcc_check,
  .run_cpu = klcc_run,
  .run_cuda = NULL,
};
