/* The annotation ops of the AIAA endpoints (transforms/extreme_points*.c,
 * mask_to_polygon.c, fix_polygon.c, polygon.c, png_io.c): hand-checked
 * points, the Gaussian channel against its formula, polygons of drawn
 * masks, the fixpolygon move rule, mask -> polygons -> mask round trips,
 * PNG in and out, errors. */
#include <png.h>
#include <unistd.h>

#include "test_transforms_util.h"

/* A (X, Y) uint8 image from rows of text: row r is index i = r, column c
 * is j = c, so a polygon vertex [x, y] is [c, r]; '#' is 1. */
static lm_tensor *drawn(const char *const *rows, int h)
{
  int64_t sh[2] = {h, (int64_t)strlen(rows[0])};
  lm_tensor *t = NULL;
  lm_tensor_zeros(E, LM_U8, 2, sh, LM_CPU, &t);
  for (int64_t i = 0; i < sh[0]; i++)
    for (int64_t j = 0; j < sh[1]; j++) {
      int64_t idx[2] = {i, j};
      if (rows[i][j] == '#') lm_tensor_set(t, idx, 1);
    }
  return t;
}

/* Call op on nin inputs; returns its first output (or NULL) and, when
 * json_name is given, that JSON result in *json (malloc'ed). */
static lm_tensor *run(const char *op, lm_tensor **in, int nin, lm_params *p,
                      const char *json_name, char **json, int *st)
{
  lm_tensor *out[LM_MAX_OUTPUTS] = {0};
  int nout = LM_MAX_OUTPUTS;
  lm_params *res = NULL;
  int s = lm_call(E, op, in, nin, p, out, &nout, &res);
  lm_params_free(p);
  if (st) *st = s;
  if (json) *json = NULL;
  if (s < 0) return NULL;
  if (json_name && json) {
    const lm_value *v = lm_params_get(res, json_name);
    *json = v ? strdup(v->u.string) : NULL;
  }
  lm_params_free(res);
  for (int i = 1; i < nout; i++) lm_tensor_release(out[i]);
  return nout > 0 ? out[0] : NULL;
}

static void test_extreme_points_ties(void)
{
  /* A 4x5x3 block of ones plus a voxel below it: the x and y extremes are
   * faces of tied voxels, the first in C order wins. */
  int64_t sh[4] = {1, 8, 7, 6};
  lm_tensor *t = NULL;
  lm_tensor_zeros(E, LM_F32, 4, sh, LM_CPU, &t);
  for (int64_t x = 2; x < 6; x++)
    for (int64_t y = 1; y < 6; y++)
      for (int64_t z = 2; z < 5; z++) lm_tensor_set(t, (int64_t[]){0, x, y, z}, 1);
  lm_tensor_set(t, (int64_t[]){0, 3, 4, 5}, 2);
  char *js;
  int st;
  lm_tensor *p = run("ExtremePoints", &t, 1, params(), "points", &js, &st);
  CHECK_INT(st, LM_OK);
  CHECK_STR(js, "[[2,1,2],[5,1,2],[2,1,2],[2,5,2],[2,1,2],[3,4,5]]");
  CHECK_INT(lm_tensor_dtype(p), LM_I64);
  CHECK_INT(lm_tensor_shape(p)[0], 6);
  CHECK_INT(lm_tensor_shape(p)[1], 3);
  CHECK_INT(at(p, 17), 5);
  free(js);
  lm_tensor_release(p);

  lm_params *o = params();
  lm_params_set_number(o, "label", 2);
  p = run("ExtremePoints", &t, 1, o, "points", &js, &st);
  CHECK_STR(js, "[[3,4,5],[3,4,5],[3,4,5],[3,4,5],[3,4,5],[3,4,5]]");
  free(js);
  lm_tensor_release(p);

  o = params();
  lm_params_set_number(o, "label", 7);
  p = run("ExtremePoints", &t, 1, o, NULL, NULL, &st);
  CHECK(p == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "no voxel equals 7");
  lm_tensor_release(t);
}

static void test_extreme_points_2d(void)
{
  static const char *rows[] = {".....", "..#..", ".###.", "..##.", "....."};
  lm_tensor *t = drawn(rows, 5);
  char *js;
  lm_tensor *p = run("ExtremePoints", &t, 1, params(), "points", &js, NULL);
  CHECK_STR(js, "[[1,2],[3,2],[2,1],[2,3]]");
  CHECK_INT(lm_tensor_shape(p)[0], 4);
  free(js);
  lm_tensor_release(p);
  lm_tensor_release(t);
  int64_t sh[2] = {3, 3};
  lm_tensor_zeros(E, LM_U8, 2, sh, LM_CPU, &t);
  int st;
  CHECK(run("ExtremePoints", &t, 1, params(), NULL, NULL, &st) == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "no foreground voxel");
  lm_tensor_release(t);
}

/* MONAI's erf kernel value at offset x for sigma s. */
static double kern(double x, double s)
{
  double t = 0.70710678 / s;
  return 0.5 * (erf(t * (x + 0.5)) - erf(t * (x - 0.5)));
}

static void test_points_channel(void)
{
  int64_t sh[4] = {2, 13, 12, 11};
  lm_tensor *img = NULL;
  lm_tensor_zeros(E, LM_I16, 4, sh, LM_CPU, &img);
  lm_tensor_set(img, (int64_t[]){1, 2, 3, 4}, -7);
  lm_params *o = params();
  double pt[6] = {4, 3, 3, 4.4, 3, 3};   /* the same voxel twice, once rounded */
  lm_params_set_numbers(o, "points", pt, 6);
  lm_params_set_numbers(o, "sigma", (double[]){1}, 1);
  int st;
  lm_tensor *out = run("AddExtremePointsChannel", &img, 1, o, NULL, NULL, &st);
  CHECK_INT(st, LM_OK);
  CHECK_INT(lm_tensor_dtype(out), LM_F32);
  CHECK_INT(lm_tensor_shape(out)[0], 3);
  CHECK_NEAR(lm_tensor_get(out, (int64_t[]){1, 2, 3, 4}), -7, 0);
  /* One point: the maximum (rescale_max = 1) at it, 0 -> -1 far away, and
   * a neighbour at 2 k(1)/k(0) - 1. */
  CHECK_NEAR(lm_tensor_get(out, (int64_t[]){2, 4, 3, 3}), 1, 1e-6);
  CHECK_NEAR(lm_tensor_get(out, (int64_t[]){2, 12, 11, 10}), -1, 1e-6);
  CHECK_NEAR(lm_tensor_get(out, (int64_t[]){2, 5, 3, 3}),
             2 * kern(1, 1) / kern(0, 1) - 1, 1e-6);
  CHECK_NEAR(lm_tensor_get(out, (int64_t[]){2, 5, 4, 2}),
             2 * kern(1, 1) * kern(1, 1) * kern(1, 1) / pow(kern(0, 1), 3) - 1, 1e-6);
  lm_tensor_release(out);

  /* Errors: a point outside, a count that is not a multiple of 3. */
  o = params();
  lm_params_set_numbers(o, "points", (double[]){4, 3, 11}, 3);
  CHECK(run("AddExtremePointsChannel", &img, 1, o, NULL, NULL, &st) == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "point 1: coordinate 2 (11) is outside");
  o = params();
  lm_params_set_numbers(o, "points", (double[]){4, 3}, 2);
  CHECK(run("AddExtremePointsChannel", &img, 1, o, NULL, NULL, &st) == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "not a list of 3-D points");
  CHECK(run("AddExtremePointsChannel", &img, 1, params(), NULL, NULL, &st) == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "none was given");
  lm_tensor_release(img);
}

static void test_mask_to_polygon(void)
{
  /* A 3x2 block, a single pixel, a diagonal line: exact outlines, [x, y] =
   * [column, row], counter-clockwise on screen from the top-left. */
  static const char *rows[] = {"..........", ".##.....#.", ".##.......",
                               ".##...#...", ".......#..", "..........",
                               "........#."};
  lm_tensor *t = drawn(rows, 7);
  char *js;
  lm_tensor *o = run("MaskToPolygon", &t, 1, params(), "polygons", &js, NULL);
  CHECK(o == NULL);
  CHECK_STR(js, "[[[[1,1],[1,3],[2,3],[2,1]],[[8,1]],[[6,3],[7,4]],[[8,6]]]]");
  free(js);
  lm_tensor_release(t);
}

/* A filled disk of radius r in an n x n image. */
static lm_tensor *disk(int64_t n, double r)
{
  int64_t sh[2] = {n, n};
  lm_tensor *t = NULL;
  lm_tensor_zeros(E, LM_U8, 2, sh, LM_CPU, &t);
  double c = (double)(n - 1) / 2;
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++)
      if ((i - c) * (i - c) + (j - c) * 0.8 * (j - c) <= r * r)
        lm_tensor_set(t, (int64_t[]){i, j}, 1);
  return t;
}

static void test_sampled_vertices(void)
{
  /* more_points = 10: vertices 11 border pixels apart, so consecutive
   * ones are at most 11 apart (Chebyshev) and each lies on the mask. */
  lm_tensor *t = disk(60, 24);
  lm_params *o = params();
  lm_params_set_int(o, "more_points", 10);
  char *js;
  run("MaskToPolygon", &t, 1, o, "polygons", &js, NULL);
  int nv = 0, far = 0, off = 0;
  long px = -1, py = -1, x0 = 0, y0 = 0;
  for (const char *s = js; (s = strstr(s, "[")) != NULL; s++) {
    long x, y;
    if (sscanf(s, "[%ld,%ld]", &x, &y) != 2) continue;
    if (nv == 0) {
      x0 = x;
      y0 = y;
    } else if (labs(x - px) > 11 || labs(y - py) > 11) {
      far++;
    }
    off += lm_tensor_get(t, (int64_t[]){y, x}) != 1;
    px = x;
    py = y;
    nv++;
  }
  CHECK(nv >= 10 && nv <= 20);
  CHECK_INT(far, 0);
  CHECK_INT(off, 0);
  CHECK(labs(x0 - px) <= 11 && labs(y0 - py) <= 11);
  free(js);
  lm_tensor_release(t);
}

/* MaskToPolygon then FixPolygon with no move gives the mask back. */
static void test_round_trip(void)
{
  static const char *rows[] = {"............", ".#####......", ".######.##..",
                               "..#########.", "...##..###..", "...#.....#..",
                               "..###.......", "....##...##.", ".........#.."};
  lm_tensor *t = drawn(rows, 9);
  char *js;
  run("MaskToPolygon", &t, 1, params(), "polygons", &js, NULL);
  /* The 2-D set is slice 0 of the list: strip the outer brackets. */
  size_t n = strlen(js);
  js[n - 1] = 0;
  lm_params *o = params();
  lm_params_set_string(o, "poly", js + 1);
  lm_params_set_int(o, "polygon_index", 0);
  lm_params_set_int(o, "vertex_index", 0);
  lm_params_set_numbers(o, "vertex_offset", (double[]){0, 0}, 2);
  char *poly;
  int st;
  lm_tensor *m = run("FixPolygon", &t, 1, o, "poly", &poly, &st);
  CHECK_INT(st, LM_OK);
  CHECK_STR(poly, js + 1);
  int diff = 0;
  for (int64_t p = 0; m && p < lm_tensor_numel(t); p++) diff += at(m, p) != at(t, p);
  CHECK_INT(diff, 0);
  CHECK_INT(lm_tensor_dtype(m), LM_U8);
  free(js);
  free(poly);
  lm_tensor_release(m);
  lm_tensor_release(t);
}

static void test_fix_polygon_2d(void)
{
  int64_t sh[2] = {10, 10};
  lm_tensor *img = NULL;
  lm_tensor_zeros(E, LM_F32, 2, sh, LM_CPU, &img);
  lm_params *o = params();
  lm_params_set_string(o, "poly", "[[[1,1],[1,5],[3,6],[5,5],[5,1]],[[8,8]]]");
  lm_params_set_int(o, "polygon_index", 0);
  lm_params_set_int(o, "vertex_index", 0);
  lm_params_set_numbers(o, "vertex_offset", (double[]){-3, 3}, 2);
  lm_params_set_int(o, "propagate_neighbor", 2);
  char *poly;
  lm_tensor *m = run("FixPolygon", &img, 1, o, "poly", &poly, NULL);
  /* Shares 1, 2/3, 1/3 on each side (cyclic): -3 -> -3, -2, -1 (rounded
   * half away from zero), 3 -> 3, 2, 1. */
  CHECK_STR(poly, "[[[-2,4],[-1,7],[2,7],[4,6],[3,3]],[[8,8]]]");
  /* Pixel (x=8, y=8) from the one-vertex polygon; (x=0, y=5) inside the
   * moved one; (x=9, y=0) outside. */
  CHECK_INT(lm_tensor_get(m, (int64_t[]){8, 8}), 1);
  CHECK_INT(lm_tensor_get(m, (int64_t[]){5, 0}), 1);
  CHECK_INT(lm_tensor_get(m, (int64_t[]){0, 9}), 0);
  free(poly);
  lm_tensor_release(m);

  int st;
  o = params();
  lm_params_set_string(o, "poly", "[[[1,1],[1,5]]]");
  lm_params_set_int(o, "polygon_index", 1);
  lm_params_set_int(o, "vertex_index", 0);
  lm_params_set_numbers(o, "vertex_offset", (double[]){1, 1}, 2);
  CHECK(run("FixPolygon", &img, 1, o, NULL, NULL, &st) == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "'polygon_index' = 1");
  o = params();
  lm_params_set_string(o, "poly", "[[[1,1],[1]]]");
  lm_params_set_int(o, "polygon_index", 0);
  lm_params_set_int(o, "vertex_index", 0);
  lm_params_set_numbers(o, "vertex_offset", (double[]){1, 1}, 2);
  CHECK(run("FixPolygon", &img, 1, o, NULL, NULL, &st) == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "polygon 0, vertex 1: expected [x, y]");
  lm_tensor_release(img);
}

static void test_fix_polygon_3d(void)
{
  int64_t sh[3] = {8, 8, 4};
  lm_tensor *img = NULL;
  lm_tensor_zeros(E, LM_U8, 3, sh, LM_CPU, &img);
  lm_params *o = params();
  lm_params_set_string(o, "poly", "[[[[1,1],[1,4],[4,4],[4,1]]],[],"
                       "[[[2,2],[2,5],[5,5],[5,2]],[[0,7]]],[[[6,6]]]]");
  lm_params_set_int(o, "slice_index", 0);
  lm_params_set_int(o, "polygon_index", 0);
  lm_params_set_int(o, "vertex_index", 2);
  lm_params_set_numbers(o, "vertex_offset", (double[]){2, 3}, 2);
  lm_params_set_int(o, "propagate_neighbor", 0);
  lm_params_set_int(o, "propagate_neighbor_3d", 3);
  char *poly;
  int st;
  lm_tensor *m = run("FixPolygon", &img, 1, o, "poly", &poly, &st);
  CHECK_INT(st, LM_OK);
  /* Slice 1 is empty; slice 2 (t = 2, share 1/2) moves its vertex nearest
   * to (4, 4), which is (5, 5), by (1, 2) (1.5 rounds to 2); slice 3 (share
   * 1/4) its only vertex by (1, 1) (0.5 and 0.75 round to 1). */
  CHECK_STR(poly, "[[[[1,1],[1,4],[6,7],[4,1]]],[],"
            "[[[2,2],[2,5],[6,7],[5,2]],[[0,7]]],[[[7,7]]]]");
  /* Slice k of the mask: row i = y, column j = x. */
  CHECK_INT(lm_tensor_get(m, (int64_t[]){7, 7, 3}), 1);
  CHECK_INT(lm_tensor_get(m, (int64_t[]){6, 6, 3}), 0);
  CHECK_INT(lm_tensor_get(m, (int64_t[]){7, 0, 2}), 1);
  CHECK_INT(lm_tensor_get(m, (int64_t[]){3, 3, 1}), 0);
  CHECK_INT(lm_tensor_get(m, (int64_t[]){6, 5, 0}), 1);
  free(poly);
  lm_tensor_release(m);

  o = params();
  lm_params_set_string(o, "poly", "[[],[]]");
  lm_params_set_int(o, "slice_index", 0);
  lm_params_set_int(o, "polygon_index", 0);
  lm_params_set_int(o, "vertex_index", 0);
  lm_params_set_numbers(o, "vertex_offset", (double[]){1, 1}, 2);
  CHECK(run("FixPolygon", &img, 1, o, NULL, NULL, &st) == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "'poly' has 2 slices; the image has 4");
  lm_tensor_release(img);
}

/* LoadPng / SavePng, as AIAA's 2-D fixpolygon moves its images: the
 * tensor is (rows, columns), a polygon vertex [x, y] is a PNG pixel. */
static void test_png(void)
{
  char path[] = "/tmp/lumen_test_png_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  static const char *rows[] = {".........", "...###...", "...###...", "........."};
  lm_tensor *t = drawn(rows, 4);
  lm_tensor_set(t, (int64_t[]){3, 8}, 300); /* saturates at 255 */
  lm_params *o = params();
  lm_params_set_string(o, "path", path);
  int st;
  lm_tensor *r = run("SavePng", &t, 1, o, NULL, NULL, &st);
  CHECK_INT(st, LM_OK);
  lm_tensor_release(r);
  o = params();
  lm_params_set_string(o, "path", path);
  lm_tensor *back = run("LoadPng", NULL, 0, o, NULL, NULL, &st);
  CHECK_INT(st, LM_OK);
  CHECK_INT(lm_tensor_dtype(back), LM_U8);
  CHECK_INT(lm_tensor_shape(back)[0], 4);
  CHECK_INT(lm_tensor_shape(back)[1], 9);
  CHECK_INT(lm_tensor_get(back, (int64_t[]){1, 3}), 1);
  CHECK_INT(lm_tensor_get(back, (int64_t[]){3, 8}), 255);
  char *js;
  run("MaskToPolygon", &back, 1, params(), "polygons", &js, NULL);
  CHECK_STR(js, "[[[[3,1],[3,2],[5,2],[5,1]],[[8,3]]]]");
  free(js);
  lm_tensor_release(back);
  lm_tensor_release(t);

  /* 16-bit gray keeps its values. */
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = 3;
  img.height = 2;
  img.format = PNG_FORMAT_LINEAR_Y;
  const uint16_t px[6] = {0, 1000, 65535, 7, 40000, 2};
  CHECK(png_image_write_to_file(&img, path, 0, px, 0, NULL));
  o = params();
  lm_params_set_string(o, "path", path);
  back = run("LoadPng", NULL, 0, o, NULL, NULL, &st);
  CHECK_INT(lm_tensor_dtype(back), LM_U16);
  for (int k = 0; back && k < 6; k++) CHECK_INT(at(back, k), px[k]);
  lm_tensor_release(back);
  unlink(path);

  o = params();
  lm_params_set_string(o, "path", path);
  CHECK(run("LoadPng", NULL, 0, o, NULL, NULL, &st) == NULL);
  CHECK_INT(st, LM_ENOENT);
  CHECK_CONTAINS(lm_errmsg(E), path);
}

int main(void)
{
  engine_start();
  RUN(test_extreme_points_ties);
  RUN(test_extreme_points_2d);
  RUN(test_points_channel);
  RUN(test_mask_to_polygon);
  RUN(test_sampled_vertices);
  RUN(test_round_trip);
  RUN(test_fix_polygon_2d);
  RUN(test_fix_polygon_3d);
  RUN(test_png);
  lm_engine_release(E);
  TAP_DONE();
}
