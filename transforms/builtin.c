/* The list of built-in ops: every descriptor the engine registers at start. */
#include "lumen.h"
#include "transforms.h"

#define OPS(X)                                   \
  X(lm_op_load_nifti)                            \
  X(lm_op_save_nifti)                            \
  X(lm_op_convert_to_channels_first)             \
  X(lm_op_scale_intensity_range)                 \
  X(lm_op_scale_intensity_range_percentiles)     \
  X(lm_op_cast)                                  \
  X(lm_op_argmax)                                \
  X(lm_op_softmax)                               \
  X(lm_op_sigmoid)                               \
  X(lm_op_threshold)                             \
  X(lm_op_to_device)                             \
  X(lm_op_to_host)                               \
  X(lm_op_phantom)                               \
  /* spatial: orientation, resampling, inversion */ \
  X(lm_op_orientation)                           \
  X(lm_op_scale_by_resolution)                   \
  X(lm_op_resize)                                \
  X(lm_op_restore_original_shape)                \
  /* intensity normalisation, crops, pads, samplers */ \
  X(lm_op_spatial_crop)                          \
  X(lm_op_center_crop)                           \
  X(lm_op_spatial_pad)                           \
  X(lm_op_divisible_pad)                         \
  X(lm_op_crop_foreground)                       \
  X(lm_op_fill_holes)                            \
  X(lm_op_normalize_intensity)                   \
  X(lm_op_rand_crop_by_pos_neg_label)            \
  X(lm_op_rand_crop_around_centers)              \
  X(lm_op_rand_negative_crop)                    \
  /* post-processing: components, stats, contours */ \
  X(lm_op_label_components)                     \
  X(lm_op_keep_largest_connected_component)     \
  X(lm_op_label_stats)                          \
  X(lm_op_contours)                             \
  /* annotation: extreme points, polygons (AIAA) */ \
  X(lm_op_extreme_points)                        \
  X(lm_op_add_extreme_points_channel)            \
  X(lm_op_mask_to_polygon)                       \
  X(lm_op_fix_polygon)                           \
  X(lm_op_load_png)                              \
  X(lm_op_save_png)                              \
  /* formats, slices, previews */ \
  X(lm_op_split_slices)                         \
  X(lm_op_stack_slices)                         \
  X(lm_op_load_nrrd)                             \
  X(lm_op_save_nrrd)                             \
  X(lm_op_load_npy)                              \
  X(lm_op_save_npy)                              \
  X(lm_op_load_image)                            \
  X(lm_op_save_image)                            \
  X(lm_op_preview)                               \
  /* nnU-Net preprocessing */ \
  X(lm_op_class_locations)                       \
  /* inference */ \
  X(lm_op_load_model)                            \
  X(lm_op_infer)                                 \
  X(lm_op_sliding_window_infer)                  \
  /* end of the list */

#define DECLARE(sym) extern const lm_op_desc sym;
OPS(DECLARE)

int lm_register_builtin_ops(lm_engine *e)
{
  static const lm_op_desc *const ops[] = {
#define ADDRESS(sym) &sym,
    OPS(ADDRESS)
  };
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    int st = lm_op_register(e, ops[i]);
    if (st < 0) return st;
  }
  return LM_OK;
}
