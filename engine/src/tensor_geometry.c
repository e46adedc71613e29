/* Geometry read from the affine: spacing (MONAI) and orientation codes
 * (nibabel's aff2axcodes(io_orientation(A))). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "internal.h"

void lm_tensor_spacing(const lm_tensor *t, double spacing[3])
{
  for (int c = 0; c < 3; c++) {
    double s = 0;
    for (int r = 0; r < 3; r++) s += t->affine[r * 4 + c] * t->affine[r * 4 + c];
    spacing[c] = s > 0 ? sqrt(s) : 1.0; /* MONAI: zero columns give 1 */
  }
}

/* Eigen-decomposition of a symmetric 3x3 matrix by cyclic Jacobi
 * rotations: a becomes diagonal (the eigenvalues), v holds the vectors in
 * its columns. */
static void jacobi3(double a[3][3], double v[3][3])
{
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 3; k++) v[i][k] = i == k;
  for (int sweep = 0; sweep < 50; sweep++) {
    double off = fabs(a[0][1]) + fabs(a[0][2]) + fabs(a[1][2]);
    if (off < 1e-300) break;
    for (int p = 0; p < 2; p++)
      for (int q = p + 1; q < 3; q++) {
        if (a[p][q] == 0) continue;
        double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        double tn = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
        double c = 1 / sqrt(tn * tn + 1), s = tn * c;
        for (int k = 0; k < 3; k++) { /* a = J^T a J */
          double akp = a[k][p], akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (int k = 0; k < 3; k++) {
          double apk = a[p][k], aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (int k = 0; k < 3; k++) {
          double vkp = v[k][p], vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
  }
}

/* nibabel io_orientation (5.0: input axes in ascending order): the
 * orthogonal polar factor R of the column-normalised 3x3, then for each
 * voxel axis the world axis of its largest |R| entry, that world axis being
 * taken out of consideration afterwards.  axis[i] = -1 when undetermined. */
static void io_orientation(const double *aff, int axis[3], int sign[3])
{
  double m[3][3];
  for (int c = 0; c < 3; c++) {
    double z = 0;
    for (int r = 0; r < 3; r++) z += aff[r * 4 + c] * aff[r * 4 + c];
    z = z > 0 ? sqrt(z) : 1.0;
    for (int r = 0; r < 3; r++) m[r][c] = aff[r * 4 + c] / z;
  }
  /* M = P S Q^T; M^T M = Q S^2 Q^T, so R = P Q^T = sum_k (M q_k / s_k) q_k^T
   * over the singular values kept (numpy's rank tolerance). */
  double mtm[3][3], q[3][3], s[3], smax = 0;
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 3; k++) {
      mtm[i][k] = 0;
      for (int r = 0; r < 3; r++) mtm[i][k] += m[r][i] * m[r][k];
    }
  jacobi3(mtm, q);
  for (int k = 0; k < 3; k++) {
    s[k] = mtm[k][k] > 0 ? sqrt(mtm[k][k]) : 0;
    if (s[k] > smax) smax = s[k];
  }
  double tol = smax * 3 * DBL_EPSILON, rr[3][3] = {{0}};
  for (int k = 0; k < 3; k++) {
    if (!(s[k] > tol)) continue;
    double p[3];
    for (int r = 0; r < 3; r++)
      p[r] = (m[r][0] * q[0][k] + m[r][1] * q[1][k] + m[r][2] * q[2][k]) / s[k];
    for (int r = 0; r < 3; r++)
      for (int c = 0; c < 3; c++) rr[r][c] += p[r] * q[c][k];
  }
  for (int in = 0; in < 3; in++) {
    axis[in] = -1;
    sign[in] = 0;
    int best = 0;
    bool zero = true;
    for (int r = 0; r < 3; r++) {
      /* np.allclose(col, 0): |x| <= 1e-8 */
      if (fabs(rr[r][in]) > 1e-8) zero = false;
      if (fabs(rr[r][in]) > fabs(rr[best][in])) best = r;
    }
    if (zero) continue;
    axis[in] = best;
    sign[in] = rr[best][in] < 0 ? -1 : 1;
    for (int c = 0; c < 3; c++) rr[best][c] = 0;
  }
}

char *lm_tensor_orientation(const lm_tensor *t, char *buf)
{
  static const char labels[3][2] = {{'L', 'R'}, {'P', 'A'}, {'I', 'S'}};
  int axis[3], sign[3];
  io_orientation(t->affine, axis, sign);
  for (int i = 0; i < 3; i++)
    buf[i] = axis[i] < 0 ? '?' : labels[axis[i]][sign[i] > 0];
  buf[3] = '\0';
  return buf;
}
