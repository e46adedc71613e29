/* Named values (op options and scalar results), in insertion order.  A
 * MODEL value holds one model reference: copying retains, clearing
 * releases (the model lives in models/, linked into the same library). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct {
  char *name;
  lm_value v;
} param;

struct lm_params {
  param *items;
  int n, cap;
};

int lm_value_copy(lm_value *dst, const lm_value *src)
{
  *dst = *src;
  if (src->type == LM_VALUE_STRING || src->type == LM_VALUE_JSON) {
    dst->u.string = strdup(src->u.string ? src->u.string : "");
    if (!dst->u.string) return LM_ENOMEM;
  } else if (src->type == LM_VALUE_NUMBERS) {
    int n = src->u.numbers.n > 0 ? src->u.numbers.n : 0;
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!v) return LM_ENOMEM;
    if (n) memcpy(v, src->u.numbers.v, sizeof(double) * (size_t)n);
    dst->u.numbers.v = v;
    dst->u.numbers.n = n;
  } else if (src->type == LM_VALUE_MODEL) {
    lm_model_retain(src->u.model);
  }
  return LM_OK;
}

void lm_value_clear(lm_value *v)
{
  if (v->type == LM_VALUE_STRING || v->type == LM_VALUE_JSON)
    free((char *)v->u.string);
  else if (v->type == LM_VALUE_NUMBERS) free((double *)v->u.numbers.v);
  else if (v->type == LM_VALUE_MODEL) lm_model_release(v->u.model);
  v->type = LM_VALUE_NIL;
}

int lm_params_new(lm_params **out)
{
  *out = calloc(1, sizeof **out);
  return *out ? LM_OK : LM_ENOMEM;
}

void lm_params_free(lm_params *p)
{
  if (!p) return;
  for (int i = 0; i < p->n; i++) {
    free(p->items[i].name);
    lm_value_clear(&p->items[i].v);
  }
  free(p->items);
  free(p);
}

static int set(lm_params *p, const char *name, const lm_value *v)
{
  if (!p || !name) return LM_EINVAL;
  lm_value copy;
  if (lm_value_copy(&copy, v) < 0) return LM_ENOMEM;
  for (int i = 0; i < p->n; i++)
    if (strcmp(p->items[i].name, name) == 0) {
      lm_value_clear(&p->items[i].v);
      p->items[i].v = copy;
      return LM_OK;
    }
  if (p->n == p->cap) {
    int cap = p->cap ? p->cap * 2 : 8;
    param *items = realloc(p->items, sizeof *items * (size_t)cap);
    if (!items) {
      lm_value_clear(&copy);
      return LM_ENOMEM;
    }
    p->items = items;
    p->cap = cap;
  }
  char *nm = strdup(name);
  if (!nm) {
    lm_value_clear(&copy);
    return LM_ENOMEM;
  }
  p->items[p->n].name = nm;
  p->items[p->n].v = copy;
  p->n++;
  return LM_OK;
}

int lm_params_set_number(lm_params *p, const char *name, double v)
{
  lm_value x = {.type = LM_VALUE_NUMBER, .u.number = v};
  return set(p, name, &x);
}

int lm_params_set_int(lm_params *p, const char *name, int64_t v)
{
  lm_value x = {.type = LM_VALUE_INT, .u.integer = v};
  return set(p, name, &x);
}

int lm_params_set_bool(lm_params *p, const char *name, bool v)
{
  lm_value x = {.type = LM_VALUE_BOOL, .u.boolean = v};
  return set(p, name, &x);
}

int lm_params_set_string(lm_params *p, const char *name, const char *v)
{
  if (!v) return LM_EINVAL;
  lm_value x = {.type = LM_VALUE_STRING, .u.string = v};
  return set(p, name, &x);
}

int lm_params_set_json(lm_params *p, const char *name, const char *json)
{
  if (!json) return LM_EINVAL;
  lm_value x = {.type = LM_VALUE_JSON, .u.string = json};
  return set(p, name, &x);
}

int lm_params_set_numbers(lm_params *p, const char *name, const double *v, int n)
{
  if (n < 0 || (n > 0 && !v)) return LM_EINVAL;
  lm_value x = {.type = LM_VALUE_NUMBERS, .u.numbers = {v, n}};
  return set(p, name, &x);
}

int lm_params_set_model(lm_params *p, const char *name, struct lm_model *m)
{
  if (!m) return LM_EINVAL;
  lm_value x = {.type = LM_VALUE_MODEL, .u.model = m};
  return set(p, name, &x);
}

int lm_params_count(const lm_params *p)
{
  return p ? p->n : 0;
}

const char *lm_params_at(const lm_params *p, int i, lm_value *v)
{
  if (!p || i < 0 || i >= p->n) return NULL;
  if (v) *v = p->items[i].v;
  return p->items[i].name;
}

const lm_value *lm_params_get(const lm_params *p, const char *name)
{
  if (!p || !name) return NULL;
  for (int i = 0; i < p->n; i++)
    if (strcmp(p->items[i].name, name) == 0) return &p->items[i].v;
  return NULL;
}
