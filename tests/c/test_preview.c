/* Preview: PNGs of a noise-free Phantom read back with libpng and compared
 * pixel by pixel with what the doc promises: the radiological orientation
 * from the affine (a mirrored volume with a mirrored affine gives the same
 * picture), the aspect from the spacing, grey levels from the window, label
 * colours from the fixed table (fill), contours exactly on label
 * boundaries, the mosaic layout, and errors. */
#include <png.h>

#include "tap.h"
#include "test_formats_util.h"

static lm_engine *E;

/* The first colours of Preview's table (its doc lists them). */
static const uint8_t palette[20][3] = {
  {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
  {140, 86, 75}, {227, 119, 194}, {188, 189, 34}, {23, 190, 207}, {255, 215, 0},
  {174, 199, 232}, {255, 187, 120}, {152, 223, 138}, {255, 152, 150}, {197, 176, 213},
  {196, 156, 148}, {247, 182, 210}, {219, 219, 141}, {158, 218, 229}, {0, 128, 128},
};

static void phantom(const double *shape, const double *spacing, lm_tensor **img, lm_tensor **lab)
{
  lm_params *o;
  lm_params_new(&o);
  lm_params_set_numbers(o, "shape", shape, 3);
  lm_params_set_numbers(o, "spacing", spacing, 3);
  lm_params_set_number(o, "noise", 0);
  lm_tensor *out[2] = {NULL, NULL};
  int n = 2;
  if (lm_call(E, "Phantom", NULL, 0, o, out, &n, NULL) < 0) {
    printf("# Phantom: %s\n", lm_errmsg(E));
    exit(1);
  }
  lm_params_free(o);
  *img = out[0];
  *lab = out[1];
}

typedef struct png {
  uint32_t w, h;
  uint8_t *rgb;
} png;

static bool read_png(const char *path, png *p)
{
  png_image im;
  memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&im, path)) return false;
  im.format = PNG_FORMAT_RGB;
  p->w = im.width;
  p->h = im.height;
  p->rgb = malloc(PNG_IMAGE_SIZE(im));
  if (!png_image_finish_read(&im, NULL, p->rgb, 0, NULL)) {
    free(p->rgb);
    return false;
  }
  return true;
}

static int preview(lm_tensor *img, lm_tensor *lab, const char *path, lm_params *o,
                   lm_params **res)
{
  lm_params_set_string(o, "path", path);
  return tf_run(E, "Preview", img, lab, o, res);
}

static uint8_t grey(double hu, double lo, double hi)
{
  double g = (hu - lo) / (hi - lo);
  g = g < 0 ? 0 : g > 1 ? 1 : g;
  return (uint8_t)nearbyint(g * 255);
}

/* Axial tile of slice k: pixel (x, y) shows voxel (nx-1-x, ny-1-y, k) for
 * a RAS affine with positive diagonal (patient right on the left, anterior
 * up); grey from the window, label colours filled at alpha 1. */
static void test_fill_axial(void)
{
  const double shape[3] = {48, 40, 32}, sp[3] = {8, 8, 10};
  lm_tensor *img, *lab;
  phantom(shape, sp, &img, &lab);
  lm_params *o, *res = NULL;
  lm_params_new(&o);
  const double idx[1] = {14}, win[2] = {-1000, 1000};
  lm_params_set_numbers(o, "indices", idx, 1);
  lm_params_set_numbers(o, "window", win, 2);
  lm_params_set_string(o, "overlay", "fill");
  lm_params_set_number(o, "alpha", 1);
  char p[512];
  CHECK_INT(preview(img, lab, tf_path(p, sizeof p, "fill.png"), o, &res), LM_OK);
  png im;
  CHECK(read_png(p, &im));
  CHECK_INT(im.w, 48);
  CHECK_INT(im.h, 40);
  CHECK_INT(lm_params_get(res, "width")->u.integer, 48);
  int wrong = 0, labelled = 0;
  for (uint32_t y = 0; y < im.h; y++)
    for (uint32_t x = 0; x < im.w; x++) {
      int64_t v[3] = {47 - (int64_t)x, 39 - (int64_t)y, 14};
      int l = (int)lm_tensor_get(lab, v);
      const uint8_t *px = im.rgb + (y * im.w + x) * 3;
      uint8_t want[3];
      if (l) {
        memcpy(want, palette[(l - 1) % 20], 3);
        labelled++;
      } else {
        want[0] = want[1] = want[2] = grey(lm_tensor_get(img, v), -1000, 1000);
      }
      wrong += memcmp(px, want, 3) != 0;
    }
  CHECK_INT(wrong, 0);
  CHECK(labelled > 50);
  /* The liver (label 5, patient right, +x) is on the image's left half. */
  long liver_x = 0, liver_n = 0;
  for (uint32_t y = 0; y < im.h; y++)
    for (uint32_t x = 0; x < im.w; x++)
      if (memcmp(im.rgb + (y * im.w + x) * 3, palette[4], 3) == 0) {
        liver_x += x;
        liver_n++;
      }
  CHECK(liver_n > 20);
  CHECK(liver_n && liver_x / liver_n < 24);
  free(im.rgb);
  lm_params_free(res);

  /* The same body stored mirrored along x with a mirrored affine: the same
   * picture, because orientation comes from the affine. */
  lm_tensor *m;
  lm_tensor_clone(img, &m);
  lm_tensor *ml;
  lm_tensor_clone(lab, &ml);
  int64_t v[3];
  for (v[2] = 0; v[2] < 32; v[2]++)
    for (v[1] = 0; v[1] < 40; v[1]++)
      for (v[0] = 0; v[0] < 48; v[0]++) {
        int64_t s[3] = {47 - v[0], v[1], v[2]};
        lm_tensor_set(m, v, lm_tensor_get(img, s));
        lm_tensor_set(ml, v, lm_tensor_get(lab, s));
      }
  double A[16];
  memcpy(A, lm_tensor_affine(img), sizeof A);
  A[3] += A[0] * 47;
  A[0] = -A[0];
  lm_tensor_set_affine(m, A);
  lm_tensor_set_affine(ml, A);
  char p2[512];
  CHECK_INT(preview(m, ml, tf_path(p2, sizeof p2, "mirror.png"), o, NULL), LM_OK);
  size_t n1, n2;
  uint8_t *a = tf_read(p, &n1), *b = tf_read(p2, &n2);
  png im2;
  CHECK(read_png(p2, &im2));
  CHECK(read_png(p, &im));
  CHECK_INT(im2.w, im.w);
  CHECK(memcmp(im.rgb, im2.rgb, (size_t)im.w * im.h * 3) == 0);
  free(im.rgb);
  free(im2.rgb);
  free(a);
  free(b);
  lm_tensor_release(m);
  lm_tensor_release(ml);
  lm_params_free(o);
  lm_tensor_release(img);
  lm_tensor_release(lab);
}

/* Coronal slices of anisotropic voxels: x horizontal (2 mm a pixel), z
 * vertical stretched 5/2 by nearest neighbour, superior up; contours are
 * exactly the label pixels with a differing 4-neighbour; mosaic gaps. */
static void test_contour_coronal_mosaic(void)
{
  const double shape[3] = {40, 30, 16}, sp[3] = {8, 10, 20};
  lm_tensor *img, *lab;
  phantom(shape, sp, &img, &lab);
  lm_params *o, *res = NULL;
  lm_params_new(&o);
  lm_params_set_int(o, "axis", 1);
  lm_params_set_int(o, "slices", 4);
  lm_params_set_int(o, "columns", 2);
  const double win[2] = {-200, 200};
  lm_params_set_numbers(o, "window", win, 2);
  char p[512];
  CHECK_INT(preview(img, lab, tf_path(p, sizeof p, "cor.png"), o, &res), LM_OK);
  int tw = 40, th = (int)nearbyint(16 * 20.0 / 8);
  CHECK_INT(lm_params_get(res, "tile_width")->u.integer, tw);
  CHECK_INT(lm_params_get(res, "tile_height")->u.integer, th);
  png im;
  CHECK(read_png(p, &im));
  CHECK_INT(im.w, 2 * tw + 2);
  CHECK_INT(im.h, 2 * th + 2);
  const lm_value *ind = lm_params_get(res, "indices");
  CHECK_INT(ind->u.numbers.n, 4);
  int bad = 0, edges = 0;
  for (int t = 0; t < 4; t++) {
    int64_t j = (int64_t)ind->u.numbers.v[t];
    int ox = (t % 2) * (tw + 2), oy = (t / 2) * (th + 2);
    for (int y = 0; y < th; y++)
      for (int x = 0; x < tw; x++) {
        /* pixel -> voxel: i flipped (right on the left), k flipped (superior up),
         * k stretched by nearest neighbour. */
        int64_t k = (int64_t)((y + 0.5) * 16 / th);
        int64_t v[3] = {39 - x, j, 15 - k};
        int l = (int)lm_tensor_get(lab, v);
        bool edge = false;
        if (l) {
          int dx[4] = {-1, 1, 0, 0}, dy[4] = {0, 0, -1, 1};
          for (int d = 0; d < 4; d++) {
            int xx = x + dx[d], yy = y + dy[d];
            int ln = 0;
            if (xx >= 0 && yy >= 0 && xx < tw && yy < th) {
              int64_t kk = (int64_t)((yy + 0.5) * 16 / th);
              int64_t vv[3] = {39 - xx, j, 15 - kk};
              ln = (int)lm_tensor_get(lab, vv);
            }
            edge = edge || ln != l;
          }
        }
        const uint8_t *px = im.rgb + ((oy + y) * im.w + ox + x) * 3;
        uint8_t want[3];
        if (edge) {
          memcpy(want, palette[(l - 1) % 20], 3);
          edges++;
        } else {
          want[0] = want[1] = want[2] = grey(lm_tensor_get(img, v), -200, 200);
        }
        bad += memcmp(px, want, 3) != 0;
      }
  }
  CHECK_INT(bad, 0);
  CHECK(edges > 40);
  /* The gaps are black. */
  for (uint32_t y = 0; y < im.h; y++) CHECK(im.rgb[(y * im.w + tw) * 3 + 1] == 0);
  free(im.rgb);
  lm_params_free(res);
  lm_params_free(o);
  lm_tensor_release(img);
  lm_tensor_release(lab);
}

static void test_errors(void)
{
  const double shape[3] = {16, 16, 8}, sp[3] = {20, 20, 40};
  lm_tensor *img, *lab, *small;
  phantom(shape, sp, &img, &lab);
  lm_tensor_narrow(lab, 0, 0, 8, &small);
  char p[512];
  lm_params *o;
  lm_params_new(&o);
  CHECK_INT(preview(img, small, tf_path(p, sizeof p, "e.png"), o, NULL), LM_ESHAPE);
  CHECK_CONTAINS(lm_errmsg(E), "label: spatial shape 8x16x8 differs");
  lm_params_set_string(o, "overlay", "outline");
  CHECK_INT(preview(img, lab, p, o, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "option overlay");
  lm_params_free(o);
  lm_params_new(&o);
  const double win[2] = {5, 5};
  lm_params_set_numbers(o, "window", win, 2);
  CHECK_INT(preview(img, lab, p, o, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "option window");
  lm_params_free(o);
  lm_params_new(&o);
  const double ind[2] = {3, 8};
  lm_params_set_numbers(o, "indices", ind, 2);
  CHECK_INT(preview(img, lab, p, o, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "option indices: 8 is not a slice index 0..7");
  lm_params_free(o);
  lm_params_new(&o);
  CHECK_INT(preview(img, lab, "/nonexistent-folder/p.png", o, NULL), LM_ENOENT);
  lm_params_free(o);
  CHECK_INT(tf_count_files(), 0);
  lm_tensor_release(small);
  lm_tensor_release(img);
  lm_tensor_release(lab);
}

int main(void)
{
  tf_init();
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.threads = 2;
  cfg.no_cuda = true;
  if (lm_engine_new(&cfg, &E) < 0) return 1;
  RUN(test_errors);
  RUN(test_fill_axial);
  RUN(test_contour_coronal_mosaic);
  lm_engine_release(E);
  tf_cleanup();
  TAP_DONE();
}
