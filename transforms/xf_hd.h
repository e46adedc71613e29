/* XF_HD marks the small functions in transforms' headers that the CUDA
 * kernels (transforms/cuda) call as well: one definition for the CPU op and
 * its kernel. */
#ifndef LM_XF_HD_H
#define LM_XF_HD_H
#ifdef __CUDACC__
#define XF_HD __host__ __device__
#else
#define XF_HD
#endif
#endif
