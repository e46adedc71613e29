/* Contours on hand-made slices with OpenCV 4.6's measured answers
 * (semantics.md §9.3), the right/left rule, names and the JSON file. */
#include <stdio.h>
#include <unistd.h>

#include "test_transforms_util.h"

/* A 2-D (X, Y) uint8 label image from rows of text (row y, column x):
 * '.' is 0, a digit is that label. */
static lm_tensor *img2d(const char *const *rows, int h)
{
  int w = (int)strlen(rows[0]);
  int64_t sh[2] = {w, h};
  lm_tensor *t = NULL;
  lm_tensor_zeros(E, LM_U8, 2, sh, LM_CPU, &t);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int64_t idx[2] = {x, y};
      if (rows[y][x] != '.') lm_tensor_set(t, idx, rows[y][x] - '0');
    }
  return t;
}

/* The JSON result of Contours (malloc'ed) or NULL. */
static char *contours(lm_tensor *t, lm_params *p, int *st)
{
  lm_tensor *out[LM_MAX_OUTPUTS];
  int nout = LM_MAX_OUTPUTS;
  lm_params *res = NULL;
  int s = lm_call(E, "Contours", &t, 1, p, out, &nout, &res);
  lm_params_free(p);
  if (st) *st = s;
  if (s < 0) return NULL;
  const lm_value *v = lm_params_get(res, "contours");
  char *r = v ? strdup(v->u.string) : NULL;
  lm_params_free(res);
  return r;
}

/* Every contour to the 'r' list: a midline far to the left. */
static lm_params *all_right(void)
{
  lm_params *p = params();
  lm_params_set_number(p, "midline", -1e9);
  return p;
}

#define EXPECT_CONTOURS(rows, want)                                          \
  do {                                                                       \
    lm_tensor *t_ = img2d(rows, (int)(sizeof rows / sizeof rows[0]));        \
    char *got_ = contours(t_, all_right(), NULL);                            \
    CHECK_STR(got_, want);                                                   \
    free(got_);                                                              \
    lm_tensor_release(t_);                                                   \
  } while (0)

static void test_opencv_cases(void)
{
  static const char *block[] = {"......", ".11...", ".11...", "......"};
  EXPECT_CONTOURS(block, "{\"1\":{\"r\":[{\"slice\":0,\"points\":"
                  "[[1,1],[1,2],[2,2],[2,1]]}],\"l\":[]}}");
  static const char *pixel[] = {".....", ".....", "..1..", "....."};
  EXPECT_CONTOURS(pixel, "{\"1\":{\"r\":[{\"slice\":0,\"points\":[[2,2]]}],"
                  "\"l\":[]}}");
  static const char *row[] = {".......", ".......", ".11111.", "......."};
  EXPECT_CONTOURS(row, "{\"1\":{\"r\":[{\"slice\":0,\"points\":[[1,2],[5,2]]}],"
                  "\"l\":[]}}");
  static const char *full[] = {"111111", "111111", "111111", "111111",
                               "111111", "111111"};
  EXPECT_CONTOURS(full, "{\"1\":{\"r\":[{\"slice\":0,\"points\":"
                  "[[0,0],[0,5],[5,5],[5,0]]}],\"l\":[]}}");
  static const char *holed[] = {".......", ".11111.", ".11111.", ".11.11.",
                                ".11111.", ".11111.", "......."};
  EXPECT_CONTOURS(holed, "{\"1\":{\"r\":[{\"slice\":0,\"points\":"
                  "[[1,1],[1,5],[5,5],[5,1]]}],\"l\":[]}}");
  static const char *stair[] = {"1....", "11...", "111..", "1111.", "11111"};
  EXPECT_CONTOURS(stair, "{\"1\":{\"r\":[{\"slice\":0,\"points\":"
                  "[[0,0],[0,4],[4,4]]}],\"l\":[]}}");
  static const char *diag[] = {"....", ".1..", "..1.", "...."};
  EXPECT_CONTOURS(diag, "{\"1\":{\"r\":[{\"slice\":0,\"points\":[[1,1],[2,2]]}],"
                  "\"l\":[]}}");
  /* Two blobs: raster order of the start points (OpenCV 4.6 lists the
   * later one first; the spec fixes raster order). */
  static const char *two[] = {"........", ".11.....", ".11.....", ".....11.",
                              ".....11.", "........"};
  EXPECT_CONTOURS(two, "{\"1\":{\"r\":[{\"slice\":0,\"points\":"
                  "[[1,1],[1,2],[2,2],[2,1]]},{\"slice\":0,\"points\":"
                  "[[5,3],[5,4],[6,4],[6,3]]}],\"l\":[]}}");
}

/* A ring with an island of the same label in its hole: RETR_EXTERNAL
 * returns the ring's outer border only; an island of ANOTHER label is that
 * label's own external contour. */
static void test_ring_and_islands(void)
{
  static const char *same[] = {".......", ".11111.", ".1...1.", ".1.1.1.",
                               ".1...1.", ".11111.", "......."};
  EXPECT_CONTOURS(same, "{\"1\":{\"r\":[{\"slice\":0,\"points\":"
                  "[[1,1],[1,5],[5,5],[5,1]]}],\"l\":[]}}");
  static const char *other[] = {".......", ".11111.", ".1...1.", ".1.2.1.",
                                ".1...1.", ".11111.", "......."};
  EXPECT_CONTOURS(other, "{\"1\":{\"r\":[{\"slice\":0,\"points\":"
                  "[[1,1],[1,5],[5,5],[5,1]]}],\"l\":[]},\"2\":{\"r\":"
                  "[{\"slice\":0,\"points\":[[3,3]]}],\"l\":[]}}");
  /* A diamond ring (diagonal steps keep only the corners). */
  static const char *diamond[] = {"...1...", "..1.1..", ".1...1.", "1.....1",
                                  ".1...1.", "..1.1..", "...1..."};
  EXPECT_CONTOURS(diamond, "{\"1\":{\"r\":[{\"slice\":0,\"points\":"
                  "[[3,0],[0,3],[3,6],[6,3]]}],\"l\":[]}}");
}

/* Sides from world x: with an identity affine world x = i = the x of the
 * points, the midline is the centre (W-1)/2; a flipped affine (LPS-like)
 * swaps the sides. */
static void test_sides_and_names(void)
{
  static const char *rows[] = {"11....22", "11....22", "........"};
  lm_tensor *t = img2d(rows, 3);
  char *got = contours(t, NULL, NULL);
  CHECK_STR(got, "{\"1\":{\"r\":[],\"l\":[{\"slice\":0,\"points\":"
            "[[0,0],[0,1],[1,1],[1,0]]}]},\"2\":{\"r\":[{\"slice\":0,"
            "\"points\":[[6,0],[6,1],[7,1],[7,0]]}],\"l\":[]}}");
  free(got);
  double flip[16] = {-1, 0, 0, 10, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  lm_tensor_set_affine(t, flip);
  lm_params *p = params();
  lm_params_set_string(p, "names", "{\"1\": \"left\\u0020thing\", \"2\": \"b\"}");
  double labels[] = {2, 1, 9};
  lm_params_set_numbers(p, "labels", labels, 3);
  got = contours(t, p, NULL);
  CHECK_STR(got, "{\"left thing\":{\"r\":[{\"slice\":0,\"points\":"
            "[[0,0],[0,1],[1,1],[1,0]]}],\"l\":[]},\"b\":{\"r\":[],\"l\":"
            "[{\"slice\":0,\"points\":[[6,0],[6,1],[7,1],[7,0]]}]},"
            "\"9\":{\"r\":[],\"l\":[]}}");
  free(got);
  int st;
  p = params();
  lm_params_set_string(p, "names", "{\"one\": \"x\"}");
  CHECK(contours(t, p, &st) == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "not an integer label id at byte 1");
  p = params();
  lm_params_set_string(p, "names", "/nonexistent/names.json");
  CHECK(contours(t, p, &st) == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "/nonexistent/names.json");
  lm_tensor_release(t);
}

/* A 3-D volume along each axis, and the JSON file. */
static void test_volume_axes_and_file(void)
{
  int64_t sh[3] = {4, 5, 3};
  lm_tensor *t = NULL;
  lm_tensor_zeros(E, LM_I16, 3, sh, LM_CPU, &t);
  int64_t idx[3] = {1, 2, 1}; /* one voxel: each axis sees one pixel */
  lm_tensor_set(t, idx, 4);
  const char *want[3] = {
    "{\"4\":{\"r\":[{\"slice\":1,\"points\":[[2,1]]}],\"l\":[]}}",   /* x=j, y=k */
    "{\"4\":{\"r\":[{\"slice\":2,\"points\":[[1,1]]}],\"l\":[]}}",   /* x=i, y=k */
    "{\"4\":{\"r\":[{\"slice\":1,\"points\":[[1,2]]}],\"l\":[]}}"};  /* x=i, y=j */
  for (int a = 0; a < 3; a++) {
    lm_params *p = all_right();
    lm_params_set_int(p, "axis", a);
    char *got = contours(t, p, NULL);
    CHECK_STR(got, want[a]);
    free(got);
  }
  char path[] = "/tmp/lumen-test-contoursXXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  lm_params *p = all_right();
  lm_params_set_string(p, "path", path);
  char *got = contours(t, p, NULL);
  FILE *f = fopen(path, "rb");
  char buf[256] = {0};
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  CHECK(n > 0);
  CHECK_STR(buf, got);
  free(got);
  unlink(path);
  p = params();
  lm_params_set_string(p, "path", "/nonexistent-dir/c.json");
  int st;
  CHECK(contours(t, p, &st) == NULL);
  CHECK_INT(st, LM_EIO);
  CHECK_CONTAINS(lm_errmsg(E), "/nonexistent-dir/c.json");
  p = params();
  lm_params_set_int(p, "axis", 3);
  CHECK(contours(t, p, &st) == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "'axis'");
  lm_tensor_release(t);
}

int main(void)
{
  engine_start();
  RUN(test_opencv_cases);
  RUN(test_ring_and_islands);
  RUN(test_sides_and_names);
  RUN(test_volume_axes_and_file);
  lm_engine_release(E);
  TAP_DONE();
}
