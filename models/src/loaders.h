/* Model file readers: each builds an lm_graph (graph.h).  On error they
 * return a negative LM_E* code, free what they built, and write a message
 * naming the file and the field into err. */
#ifndef LM_LOADERS_H
#define LM_LOADERS_H

#include <stddef.h>

#include "graph.h"

/* ONNX (onnx_reader.c): a zero-copy protobuf reader over mmap; opsets 11-18;
** external data next to the file. */
int lm_onnx_load(const char *path, lm_graph **out, char *err, size_t errlen);
/* The same from a memory buffer (for the fuzzer and tests); the buffer
** must outlive the graph. */
int lm_onnx_load_buffer(const void *buf, size_t len, const char *name,
                        lm_graph **out, char *err, size_t errlen);
/* A serialized TensorProto (.pb of the ONNX test data) as a dense
** float32/int64/... buffer: dtype, shape and a malloc'd copy of the data. */
int lm_onnx_read_tensor_file(const char *path, lm_dtype *dt, int *ndim,
                             int64_t *shape, void **data, size_t *nbytes,
                             char *err, size_t errlen);

/* safetensors (safetensors.c): a mapped file of named tensors. */
typedef struct lm_safetensors lm_safetensors;
int lm_safetensors_open(const char *path, lm_safetensors **out, char *err,
                        size_t errlen);
void lm_safetensors_close(lm_safetensors *s);
int lm_safetensors_count(const lm_safetensors *s);
/* Tensor i: name, dtype, shape; data points into the mapping. */
const char *lm_safetensors_at(const lm_safetensors *s, int i, lm_dtype *dt,
                              int *ndim, int64_t *shape, const void **data,
                              size_t *nbytes);

/* lumen graph JSON (graph_json.c): the form lumen.nn (Lua) produces:
** {"inputs":[{"name","shape","dtype"}], "outputs":[names],
**  "nodes":[{"op","name","inputs":[...],"outputs":[...],"attrs":{...}}],
**  "weights":"file.safetensors" (relative to base_dir) or inline constants}. */
int lm_graph_json_load(const char *json, size_t len, const char *base_dir,
                       lm_graph **out, char *err, size_t errlen);

/* TensorFlow.js layers model (tfjs.c): model.json + weight shards; the
** Keras channels_last graph is translated to the ONNX-style channels-first
** IR (input [N, C, D, H, W] where Keras had [N, D, H, W, C]). */
int lm_tfjs_load(const char *model_json_path, lm_graph **out, char *err,
                 size_t errlen);

#endif
