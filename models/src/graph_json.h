/* Internal to the graph JSON loader (graph_json.c, graph_json_values.c):
 * inline constants and node attributes read from cJSON into the IR. */
#ifndef LM_GRAPH_JSON_H
#define LM_GRAPH_JSON_H

#include <cjson/cJSON.h>

#include "graph.h"

/* Where an error is: "nodes[3] ('conv3')", "weights[1]", ...  Messages are
** "<source>: <where>: <what>". */
#define GJ_SOURCE "lumen graph JSON"

/* An inline constant {"name", "dtype", "shape", "data": [numbers]} bound to
** value v (v < 0: a fresh anonymous value).  Returns the value index or a
** negative code with g->err set. */
int gj_inline_tensor(lm_graph *g, const cJSON *j, int v, const char *where);

/* Attribute name = j on node (an ONNX op): numbers become INT when integral
** and the attribute is an integer one for that op, else FLOAT; arrays INTS
** (all integral) or FLOATS; strings STRING(S); booleans INT; an object with
** "data" a TENSOR. */
int gj_attr(lm_graph *g, int node, const char *op, const cJSON *j, const char *where);

#endif
