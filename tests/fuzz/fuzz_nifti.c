/* libFuzzer harness: the whole reading path from a memory buffer (gzip
 * detection and inflation, header parsing and validation, voxel conversion),
 * as a single file and as the header half of a pair. */
#include <stdlib.h>

#include "nifti_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  nifti_header h;
  nifti_err err;
  void *out = NULL;
  lm_dtype dt;
  /* MONAI's default (float32), then the stored type. */
  if (nifti_read_memory(data, size, LM_F32, false, &h, &out, &dt, NULL, &err) == LM_OK)
    free(out);
  out = NULL;
  if (nifti_read_memory(data, size, LM_I16, true, &h, &out, &dt, NULL, &err) == LM_OK)
    free(out);
  /* The header of a .hdr/.img pair has other vox_offset rules. */
  nifti_header_parse(data, size, false, &h, &err);
  return 0;
}
