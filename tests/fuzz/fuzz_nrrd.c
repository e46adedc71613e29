/* libFuzzer harness: the NRRD header parser and the attached-data reader
 * (skips, gzip, ascii, byte swapping, conversion) from a memory buffer. */
#include <stdlib.h>

#include "nrrd_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  nrrd_header h;
  nifti_err err;
  void *out = NULL;
  lm_dtype dt;
  /* LoadNrrd's default (float32), then the stored type. */
  if (nrrd_read_memory(data, size, LM_F32, false, &h, &out, &dt, &err) == LM_OK) free(out);
  out = NULL;
  if (nrrd_read_memory(data, size, LM_I16, true, &h, &out, &dt, &err) == LM_OK) free(out);
  return 0;
}
