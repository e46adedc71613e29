/* Preview: a PNG mosaic of slices of a volume, with a label map drawn as
 * coloured contours or a translucent fill: the quick visual check people
 * otherwise make with matplotlib.  Slices are shown as radiologists read
 * them, from the affine (not the array order): axial with anterior up and
 * the patient's right on the image's left, coronal with superior up and the
 * patient's right on the left, sagittal with superior up and anterior on
 * the left.  Anisotropic voxels are scaled (nearest neighbour) so that one
 * pixel is the smaller in-plane spacing in both directions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "png_write.h"
#include "xf_util.h"

#define GAP 2          /* black pixels between tiles */
#define MAX_SLICES 256
#define MAX_PIXELS ((int64_t)1 << 28)

/* Distinct colours for label ids 1, 2, ... (cycled): Tableau's 10, then
 * lighter and darker variants. */
static const uint8_t palette[][3] = {
  {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
  {140, 86, 75}, {227, 119, 194}, {188, 189, 34}, {23, 190, 207}, {255, 215, 0},
  {174, 199, 232}, {255, 187, 120}, {152, 223, 138}, {255, 152, 150}, {197, 176, 213},
  {196, 156, 148}, {247, 182, 210}, {219, 219, 141}, {158, 218, 229}, {0, 128, 128},
};
#define NCOLORS ((int)(sizeof palette / sizeof palette[0]))

static const uint8_t *label_color(int32_t id)
{
  int k = (int)(((int64_t)id - 1) % NCOLORS);
  if (k < 0) k += NCOLORS;
  return palette[k];
}

typedef struct view {
  int64_t n[3];        /* volume dims (spatial) */
  const float *img;    /* C order: index (i*n1 + j)*n2 + k */
  const int32_t *lab;  /* same layout, or NULL */
  int axis, h, v;      /* slice axis, horizontal and vertical voxel axes */
  bool flip_h, flip_v;
  int64_t tw, th;      /* tile size in pixels */
  double lo, hi;       /* window */
  bool contour;
  double alpha;
  const int64_t *slices;
  int nslices, columns;
  int64_t width, height;
  uint8_t *rgb;
} view;

static int64_t voxel_at(const view *w, int64_t s, int64_t x, int64_t y)
{
  int64_t ih = (int64_t)(((double)x + 0.5) * (double)w->n[w->h] / (double)w->tw);
  int64_t iv = (int64_t)(((double)y + 0.5) * (double)w->n[w->v] / (double)w->th);
  if (ih >= w->n[w->h]) ih = w->n[w->h] - 1;
  if (iv >= w->n[w->v]) iv = w->n[w->v] - 1;
  if (w->flip_h) ih = w->n[w->h] - 1 - ih;
  if (w->flip_v) iv = w->n[w->v] - 1 - iv;
  int64_t idx[3];
  idx[w->axis] = s;
  idx[w->h] = ih;
  idx[w->v] = iv;
  return (idx[0] * w->n[1] + idx[1]) * w->n[2] + idx[2];
}

static int32_t label_px(const view *w, int64_t s, int64_t x, int64_t y)
{
  if (x < 0 || y < 0 || x >= w->tw || y >= w->th) return 0;
  return w->lab[voxel_at(w, s, x, y)];
}

static int draw_tiles(int64_t begin, int64_t end, void *arg)
{
  const view *w = arg;
  for (int64_t t = begin; t < end; t++) {
    int64_t s = w->slices[t];
    int64_t ox = (t % w->columns) * (w->tw + GAP), oy = (t / w->columns) * (w->th + GAP);
    for (int64_t y = 0; y < w->th; y++)
      for (int64_t x = 0; x < w->tw; x++) {
        int64_t vi = voxel_at(w, s, x, y);
        double g = (w->img[vi] - w->lo) / (w->hi - w->lo);
        g = isnan(g) ? 0 : g < 0 ? 0 : g > 1 ? 1 : g;
        double rgb[3] = {g * 255, g * 255, g * 255};
        int32_t l = w->lab ? w->lab[vi] : 0;
        if (l != 0) {
          const uint8_t *c = label_color(l);
          if (w->contour) {
            bool edge = label_px(w, s, x - 1, y) != l || label_px(w, s, x + 1, y) != l ||
                        label_px(w, s, x, y - 1) != l || label_px(w, s, x, y + 1) != l;
            if (edge)
              for (int k = 0; k < 3; k++) rgb[k] = c[k];
          } else {
            for (int k = 0; k < 3; k++) rgb[k] = (1 - w->alpha) * rgb[k] + w->alpha * c[k];
          }
        }
        uint8_t *px = w->rgb + ((oy + y) * w->width + ox + x) * 3;
        for (int k = 0; k < 3; k++) px[k] = (uint8_t)nearbyint(rgb[k]);
      }
  }
  return LM_OK;
}

static int cmp_float(const void *a, const void *b)
{
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* Auto window: the 0.5th and 99.5th percentiles of (a sample of) the
 * volume, so a few extreme voxels do not wash the image out. */
static int auto_window(const float *v, int64_t n, double *lo, double *hi)
{
  int64_t step = n > (1 << 20) ? n / (1 << 20) : 1, m = 0;
  float *s = malloc((size_t)(n / step + 1) * sizeof *s);
  if (!s) return LM_ENOMEM;
  for (int64_t i = 0; i < n; i += step)
    if (!isnan(v[i])) s[m++] = v[i];
  if (m == 0) {
    *lo = 0;
    *hi = 1;
  } else {
    qsort(s, (size_t)m, sizeof *s, cmp_float);
    *lo = s[(int64_t)(0.005 * (double)(m - 1))];
    *hi = s[(int64_t)ceil(0.995 * (double)(m - 1))];
    if (!(*hi > *lo)) {
      *lo = s[0];
      *hi = s[m - 1];
    }
    if (!(*hi > *lo)) *hi = *lo + 1;
  }
  free(s);
  return LM_OK;
}

/* The tensor's last 3 (or 2) dims as a C-ordered float32 / int32 volume,
 * after choosing one index of a leading channel dim. */
static int dense_volume(lm_op_ctx *ctx, lm_tensor *t, lm_dtype dt, int64_t channel,
                        const char *what, lm_tensor **out)
{
  lm_engine *e = lm_ctx_engine(ctx);
  int nd = lm_tensor_ndim(t);
  if (nd < 2 || nd > 4)
    return lm_ctx_error(ctx, LM_ESHAPE, "%s: %d dims; Preview shows 2-D and 3-D images, with "
                        "at most one leading channel dim", what, nd);
  if (lm_tensor_device(t).type != LM_DEVICE_CPU)
    return lm_ctx_error(ctx, LM_EDEVICE, "%s is on a CUDA device; bring it to the host first "
                        "(ToHost)", what);
  lm_tensor *a = NULL, *b = NULL;
  int st;
  if (nd == 4) {
    if (channel < 0 || channel >= lm_tensor_shape(t)[0])
      return lm_ctx_error(ctx, LM_EINVAL, "option channel: %lld is out of range 0..%lld",
                          (long long)channel, (long long)lm_tensor_shape(t)[0] - 1);
    if ((st = lm_tensor_narrow(t, 0, channel, 1, &b)) < 0) goto fail;
    st = lm_tensor_squeeze(b, 0, &a);
    lm_tensor_release(b);
    b = NULL;
    if (st < 0) goto fail;
  } else if (nd == 2) {
    if ((st = lm_tensor_unsqueeze(t, 2, &a)) < 0) goto fail;
  } else {
    a = lm_tensor_retain(t);
  }
  if ((st = lm_tensor_new(e, dt, 3, lm_tensor_shape(a), LM_CPU, &b)) < 0) goto fail;
  if ((st = lm_tensor_copy(b, a)) < 0) goto fail;
  lm_tensor_release(a);
  *out = b;
  return LM_OK;
fail:
  lm_tensor_release(a);
  lm_tensor_release(b);
  return lm_ctx_error(ctx, st, "%s: %s", what, lm_errmsg(e));
}

/* Which in-plane voxel axis is horizontal, and the flips, from the affine:
 * the horizontal axis is the one nearer the lower world axis (x before y
 * before z); both run toward decreasing world coordinates (right to left,
 * anterior to posterior, superior to inferior). */
static void orient(const double *A, view *w)
{
  int a = (w->axis + 1) % 3, b = (w->axis + 2) % 3;
  if (a > b) { int t = a; a = b; b = t; }
  int wa = 0, wb = 0;
  for (int r = 1; r < 3; r++) {
    if (fabs(A[r * 4 + a]) > fabs(A[wa * 4 + a])) wa = r;
    if (fabs(A[r * 4 + b]) > fabs(A[wb * 4 + b])) wb = r;
  }
  if (wb < wa) {
    w->h = b; w->v = a;
    int t = wa; wa = wb; wb = t;
  } else {
    w->h = a; w->v = b;
  }
  w->flip_h = A[wa * 4 + w->h] > 0;
  w->flip_v = A[wb * 4 + w->v] > 0;
}

static int preview_run(lm_op_ctx *ctx)
{
  lm_tensor *img = lm_ctx_input(ctx, 0), *lab = lm_ctx_ninputs(ctx) > 1 ? lm_ctx_input(ctx, 1) : NULL;
  const char *path = lm_arg_string(ctx, "path");
  lm_tensor *vol = NULL, *lvol = NULL;
  uint8_t *rgb = NULL;
  int64_t slices[MAX_SLICES];
  view w;
  memset(&w, 0, sizeof w);
  int st;
  if (!path || !*path) return lm_ctx_error(ctx, LM_EINVAL, "option path is required");
  int64_t channel = lm_arg_int(ctx, "channel");
  if ((st = dense_volume(ctx, img, LM_F32, channel, "img", &vol)) < 0) return st;
  memcpy(w.n, lm_tensor_shape(vol), sizeof w.n);
  if (lab) {
    if ((st = dense_volume(ctx, lab, LM_I32, 0, "label", &lvol)) < 0) goto done;
    if (memcmp(lm_tensor_shape(lvol), w.n, sizeof w.n) != 0) {
      st = lm_ctx_error(ctx, LM_ESHAPE, "label: spatial shape %lldx%lldx%lld differs from the "
                        "image's %lldx%lldx%lld", (long long)lm_tensor_shape(lvol)[0],
                        (long long)lm_tensor_shape(lvol)[1], (long long)lm_tensor_shape(lvol)[2],
                        (long long)w.n[0], (long long)w.n[1], (long long)w.n[2]);
      goto done;
    }
    w.lab = lm_tensor_data(lvol);
  }
  w.img = lm_tensor_data(vol);
  if ((st = xf_arg_axis(ctx, "axis", 3, &w.axis)) < 0) goto done;
  if (lm_tensor_ndim(img) == 2) w.axis = 2;

  /* Options. */
  const char *ov = lm_arg_string(ctx, "overlay");
  if (!ov || strcmp(ov, "contour") == 0) w.contour = true;
  else if (strcmp(ov, "fill") == 0) w.contour = false;
  else {
    st = lm_ctx_error(ctx, LM_EINVAL, "option overlay: '%s' is neither 'contour' nor 'fill'", ov);
    goto done;
  }
  w.alpha = lm_arg_number(ctx, "alpha");
  if (!(w.alpha >= 0 && w.alpha <= 1)) {
    st = lm_ctx_error(ctx, LM_EINVAL, "option alpha: %g is not in 0..1", w.alpha);
    goto done;
  }
  int nw;
  const double *win = lm_arg_numbers(ctx, "window", &nw);
  if (win) {
    if (nw != 2 || !(win[1] > win[0])) {
      st = lm_ctx_error(ctx, LM_EINVAL, "option window: give {low, high} with high > low");
      goto done;
    }
    w.lo = win[0];
    w.hi = win[1];
  } else if ((st = auto_window(w.img, lm_tensor_numel(vol), &w.lo, &w.hi)) < 0) {
    st = lm_ctx_error(ctx, st, "out of memory");
    goto done;
  }

  /* Slices: the given indices, or evenly spaced through the label's extent
   * along the axis (the whole axis without a label or with an empty one). */
  int64_t depth = w.n[w.axis];
  int ni;
  const double *ind = lm_arg_numbers(ctx, "indices", &ni);
  if (ind) {
    if (ni < 1 || ni > MAX_SLICES) {
      st = lm_ctx_error(ctx, LM_EINVAL, "option indices: 1..%d slice indices", MAX_SLICES);
      goto done;
    }
    for (int i = 0; i < ni; i++) {
      if (ind[i] != floor(ind[i]) || ind[i] < 0 || ind[i] >= (double)depth) {
        st = lm_ctx_error(ctx, LM_EINVAL, "option indices: %g is not a slice index 0..%lld",
                          ind[i], (long long)depth - 1);
        goto done;
      }
      slices[i] = (int64_t)ind[i];
    }
    w.nslices = ni;
  } else {
    int64_t count = lm_arg_is_set(ctx, "slices") ? lm_arg_int(ctx, "slices") : 9;
    if (count < 1 || count > MAX_SLICES) {
      st = lm_ctx_error(ctx, LM_EINVAL, "option slices: %lld is not 1..%d", (long long)count,
                        MAX_SLICES);
      goto done;
    }
    int64_t lo = 0, hi = depth - 1;
    if (w.lab) {
      int64_t first = -1, last = -1;
      for (int64_t s = 0; s < depth; s++) {
        bool any = false;
        for (int64_t i = 0; i < w.n[(w.axis + 1) % 3] && !any; i++)
          for (int64_t j = 0; j < w.n[(w.axis + 2) % 3] && !any; j++) {
            int64_t idx[3];
            idx[w.axis] = s;
            idx[(w.axis + 1) % 3] = i;
            idx[(w.axis + 2) % 3] = j;
            any = w.lab[(idx[0] * w.n[1] + idx[1]) * w.n[2] + idx[2]] != 0;
          }
        if (any) {
          if (first < 0) first = s;
          last = s;
        }
      }
      if (first >= 0) {
        lo = first;
        hi = last;
      }
    }
    if (count > hi - lo + 1) count = hi - lo + 1;
    for (int64_t k = 0; k < count; k++)
      slices[k] = lo + (int64_t)(((double)k + 0.5) * (double)(hi - lo + 1) / (double)count);
    w.nslices = (int)count;
  }
  w.slices = slices;

  /* Geometry of the mosaic. */
  double sp[3];
  lm_tensor_spacing(img, sp);
  const double *A = lm_tensor_affine(img);
  orient(A, &w);
  double sh = sp[w.h] > 0 ? sp[w.h] : 1, sv = sp[w.v] > 0 ? sp[w.v] : 1;
  double base = sh < sv ? sh : sv;
  w.tw = (int64_t)fmax(1, nearbyint((double)w.n[w.h] * sh / base));
  w.th = (int64_t)fmax(1, nearbyint((double)w.n[w.v] * sv / base));
  if (lm_arg_is_set(ctx, "columns")) {
    int64_t c = lm_arg_int(ctx, "columns");
    if (c < 1) {
      st = lm_ctx_error(ctx, LM_EINVAL, "option columns: %lld is not >= 1", (long long)c);
      goto done;
    }
    w.columns = (int)(c < w.nslices ? c : w.nslices);
  } else {
    w.columns = (int)ceil(sqrt((double)w.nslices));
  }
  int rows = (w.nslices + w.columns - 1) / w.columns;
  w.width = w.columns * w.tw + (w.columns - 1) * GAP;
  w.height = rows * w.th + (rows - 1) * GAP;
  if (w.width * w.height > MAX_PIXELS || w.width > 0x7fffffff || w.height > 0x7fffffff) {
    st = lm_ctx_error(ctx, LM_ESHAPE, "the mosaic would be %lldx%lld pixels; show fewer slices",
                      (long long)w.width, (long long)w.height);
    goto done;
  }
  rgb = calloc((size_t)(w.width * w.height * 3), 1);
  if (!rgb) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory for the mosaic");
    goto done;
  }
  w.rgb = rgb;
  if ((st = lm_parallel_for(lm_ctx_engine(ctx), ctx, w.nslices, 1, draw_tiles, &w)) < 0) {
    if (st == LM_ECANCELED) lm_ctx_error(ctx, st, "cancelled");
    goto done;
  }
  char msg[256];
  if ((st = png_write_rgb(path, rgb, (uint32_t)w.width, (uint32_t)w.height, msg, sizeof msg)) < 0) {
    st = lm_ctx_error(ctx, st, "%s: %s", path, msg);
    goto done;
  }
  lm_params *r = lm_ctx_results(ctx);
  if (r) {
    double idx[MAX_SLICES], wn[2] = {w.lo, w.hi};
    for (int i = 0; i < w.nslices; i++) idx[i] = (double)slices[i];
    lm_params_set_int(r, "width", w.width);
    lm_params_set_int(r, "height", w.height);
    lm_params_set_int(r, "tile_width", w.tw);
    lm_params_set_int(r, "tile_height", w.th);
    lm_params_set_int(r, "columns", w.columns);
    lm_params_set_numbers(r, "indices", idx, w.nslices);
    lm_params_set_numbers(r, "window", wn, 2);
  }
  st = lm_ctx_set_output(ctx, 0, lm_tensor_retain(img));
done:
  free(rgb);
  lm_tensor_release(vol);
  lm_tensor_release(lvol);
  return st;
}

static const lm_arg_desc preview_args[] = {
  {"path", LM_ARG_STRING, NULL, "PNG file to write"},
  {"axis", LM_ARG_INT, "2",
   "spatial axis the slices cut across (0..2 of the last three dims; 2 = axial for RAS/LPS "
   "volumes)"},
  {"slices", LM_ARG_INT, "nil",
   "how many evenly spaced slices (default 9): through the label's extent along the axis when "
   "a label is given, else the whole axis"},
  {"indices", LM_ARG_NUMBERS, "nil", "slice indices to show instead"},
  {"window", LM_ARG_NUMBERS, "nil",
   "grey window {low, high} (a CT window: {-160, 240} abdomen, {-1350, 150} lung); default: "
   "the 0.5th and 99.5th percentiles"},
  {"overlay", LM_ARG_STRING, "'contour'",
   "'contour' (label boundary pixels in the label's colour) or 'fill' (translucent)"},
  {"alpha", LM_ARG_NUMBER, "0.4", "opacity of the fill overlay"},
  {"columns", LM_ARG_INT, "nil", "tiles per row (default: ceil(sqrt(slices)))"},
  {"channel", LM_ARG_INT, "0", "channel shown for a channel-first (4-D) image"},
};

const lm_op_desc lm_op_preview = {
  .name = "Preview",
  .alias = NULL,
  .summary = "Write a PNG mosaic of slices, with a label map as coloured contours or a fill",
  .doc =
      "Shows slices of img (2-D, 3-D, or 4-D channel-first: one channel) across `axis`, in\n"
      "index order, left to right and top to bottom, with 2-pixel black gaps.  Orientation\n"
      "comes from the affine, not the array order: of the two in-plane axes, the one nearer\n"
      "the lower world axis (x, then y, then z) is horizontal, and both run toward decreasing\n"
      "RAS+ coordinates, which gives the radiological views: axial with anterior up and the\n"
      "patient's right on the image's left, coronal and sagittal with superior up (patient's\n"
      "right, resp. anterior, on the left).  Voxels are scaled by nearest neighbour so a\n"
      "pixel is the smaller in-plane spacing in both directions (true aspect).  Grey =\n"
      "(v - low) / (high - low) clipped to 0..1, times 255, rounded.  Label id L != 0 gets\n"
      "colour L of a fixed 20-colour table (cycled): Tableau's 10 (blue, orange, green, red,\n"
      "purple, brown, pink, olive, cyan, gold), then 10 lighter / darker ones.  'contour'\n"
      "paints the label's boundary pixels (a 4-neighbour differs) in that colour; 'fill'\n"
      "blends every labelled pixel: (1 - alpha) * grey + alpha * colour.  Results: width,\n"
      "height, tile_width, tile_height, columns, indices, window.  Returns img.",
  .inputs = "img, label",
  .min_inputs = 1,
  .max_inputs = 2,
  .outputs = "img",
  .args = preview_args,
  .nargs = sizeof preview_args / sizeof preview_args[0],
  .flags = LM_OP_IO,
  .check = NULL,
  .run_cpu = preview_run,
};
