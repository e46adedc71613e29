/* The op registry: descriptors sorted by name, aliases, and the defaults of
 * every argument parsed once at registration. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *skip_ws(const char *s)
{
  while (isspace((unsigned char)*s)) s++;
  return s;
}

/* A Lua numeral at s; *end past it.  Rejects what strtod accepts beyond
 * Lua's syntax (inf, nan). */
static bool parse_number(const char *s, const char **end, double *v)
{
  const char *p = s;
  if (*p == '-' || *p == '+') p++;
  if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1]))) return false;
  char *e;
  errno = 0;
  *v = strtod(s, &e);
  if (e == s || errno == ERANGE || !isfinite(*v)) return false;
  *end = e;
  return true;
}

static int parse_string(const char *s, const char **end, char **out)
{
  char q = *s++;
  size_t cap = strlen(s) + 1, n = 0;
  char *buf = malloc(cap);
  if (!buf) return LM_ENOMEM;
  for (; *s && *s != q; s++) {
    char c = *s;
    if (c == '\\') {
      s++;
      switch (*s) {
      case 'n': c = '\n'; break;
      case 't': c = '\t'; break;
      case '\\': case '\'': case '"': c = *s; break;
      default: free(buf); return LM_EINVAL;
      }
    } else if (c == '\n') {
      free(buf);
      return LM_EINVAL;
    }
    buf[n++] = c;
  }
  if (*s != q) {
    free(buf);
    return LM_EINVAL;
  }
  buf[n] = '\0';
  *end = s + 1;
  *out = buf;
  return LM_OK;
}

static int parse_table(const char *s, const char **end, lm_value *v)
{
  int n = 0, cap = 4;
  double *xs = malloc(sizeof *xs * (size_t)cap);
  if (!xs) return LM_ENOMEM;
  s = skip_ws(s + 1);
  while (*s != '}') {
    double x;
    if (!parse_number(s, &s, &x)) goto bad;
    if (n == cap) {
      double *nx = realloc(xs, sizeof *xs * (size_t)(cap *= 2));
      if (!nx) {
        free(xs);
        return LM_ENOMEM;
      }
      xs = nx;
    }
    xs[n++] = x;
    s = skip_ws(s);
    if (*s == ',') s = skip_ws(s + 1);
    else if (*s != '}') goto bad;
  }
  *end = s + 1;
  v->type = LM_VALUE_NUMBERS;
  v->u.numbers.v = xs;
  v->u.numbers.n = n;
  return LM_OK;
bad:
  free(xs);
  return LM_EINVAL;
}

int lm_parse_default(const char *text, lm_arg_type t, lm_value *v)
{
  const char *s = skip_ws(text), *end = s;
  memset(v, 0, sizeof *v);
  v->type = LM_VALUE_NIL;
  int st = LM_OK;
  if (strncmp(s, "nil", 3) == 0) {
    end = s + 3;
  } else if (strncmp(s, "true", 4) == 0 || strncmp(s, "false", 5) == 0) {
    if (t != LM_ARG_BOOL) return LM_EINVAL;
    v->type = LM_VALUE_BOOL;
    v->u.boolean = s[0] == 't';
    end = s + (v->u.boolean ? 4 : 5);
  } else if (*s == '\'' || *s == '"') {
    if (t != LM_ARG_STRING) return LM_EINVAL;
    char *str;
    if ((st = parse_string(s, &end, &str)) < 0) return st;
    v->type = LM_VALUE_STRING;
    v->u.string = str;
  } else if (*s == '{') {
    if (t != LM_ARG_NUMBERS) return LM_EINVAL;
    if ((st = parse_table(s, &end, v)) < 0) return st;
  } else {
    double x;
    if (!parse_number(s, &end, &x)) return LM_EINVAL;
    if (t == LM_ARG_NUMBER) {
      v->type = LM_VALUE_NUMBER;
      v->u.number = x;
    } else if (t == LM_ARG_INT) {
      if (x != floor(x) || fabs(x) > 9007199254740992.0) return LM_EINVAL;
      v->type = LM_VALUE_INT;
      v->u.integer = (int64_t)x;
    } else if (t == LM_ARG_NUMBERS) {
      lm_value one = {.type = LM_VALUE_NUMBERS, .u.numbers = {&x, 1}};
      if ((st = lm_value_copy(v, &one)) < 0) return st;
    } else {
      return LM_EINVAL;
    }
  }
  if (*skip_ws(end) != '\0') { /* trailing garbage */
    lm_value_clear(v);
    return LM_EINVAL;
  }
  return LM_OK;
}

static void entry_free(lm_op_entry *op)
{
  if (!op) return;
  for (int i = 0; op->defaults && i < op->desc->nargs; i++) lm_value_clear(&op->defaults[i]);
  free(op->defaults);
  free(op->required);
  free(op);
}

void lm_registry_free(lm_registry *r)
{
  for (int i = 0; i < r->n; i++) entry_free(r->ops[i]);
  free(r->ops);
  free(r->aliases);
  memset(r, 0, sizeof *r);
}

/* Position of name among the sorted ops (or where it would go). */
static int op_pos(const lm_registry *r, const char *name, bool *found)
{
  int lo = 0, hi = r->n;
  while (lo < hi) {
    int mid = (lo + hi) / 2, c = strcmp(r->ops[mid]->desc->name, name);
    if (c == 0) {
      *found = true;
      return mid;
    }
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  *found = false;
  return lo;
}

static int alias_pos(const lm_registry *r, const char *name, bool *found)
{
  int lo = 0, hi = r->nalias;
  while (lo < hi) {
    int mid = (lo + hi) / 2, c = strcmp(r->aliases[mid].name, name);
    if (c == 0) {
      *found = true;
      return mid;
    }
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  *found = false;
  return lo;
}

lm_op_entry *lm_registry_find(lm_registry *r, const char *name)
{
  if (!name) return NULL;
  bool found;
  int i = op_pos(r, name, &found);
  if (found) return r->ops[i];
  i = alias_pos(r, name, &found);
  return found ? r->aliases[i].op : NULL;
}

lm_op_entry *lm_registry_entry(lm_registry *r, const lm_op_desc *d)
{
  lm_op_entry *op = d ? lm_registry_find(r, d->name) : NULL;
  return op && op->desc == d ? op : NULL;
}

static bool name_taken(lm_registry *r, const char *name)
{
  return lm_registry_find(r, name) != NULL;
}

static bool valid_name(const char *s)
{
  if (!s || !*s) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') return false;
  return true;
}

int lm_op_register(lm_engine *e, const lm_op_desc *d)
{
  lm_registry *r = &e->reg;
  if (!d || !valid_name(d->name))
    return lm_set_error(e, LM_EINVAL, "op_register: the op name must be a non-empty "
                                      "identifier");
  const char *nm = d->name;
  if (name_taken(r, nm))
    return lm_set_error(e, LM_EINVAL, "op_register: an op named '%s' already exists", nm);
  if (d->alias && (!valid_name(d->alias) || name_taken(r, d->alias) ||
                   strcmp(d->alias, nm) == 0))
    return lm_set_error(e, LM_EINVAL, "%s: alias '%s' is invalid or already taken", nm,
                        d->alias);
  if (d->nargs < 0 || (d->nargs > 0 && !d->args))
    return lm_set_error(e, LM_EINVAL, "%s: nargs is %d but args is %s", nm, d->nargs,
                        d->args ? "set" : "NULL");
  if (d->min_inputs < 0 || (d->max_inputs >= 0 && d->max_inputs < d->min_inputs))
    return lm_set_error(e, LM_EINVAL, "%s: bad input counts min %d max %d", nm,
                        d->min_inputs, d->max_inputs);
  if (!d->run_cpu && !d->run_cuda)
    return lm_set_error(e, LM_EINVAL, "%s: the op has no kernel", nm);
  lm_op_entry *op = calloc(1, sizeof *op);
  if (!op) return lm_set_error(e, LM_ENOMEM, "out of memory (registry)");
  op->desc = d;
  op->defaults = calloc((size_t)(d->nargs ? d->nargs : 1), sizeof *op->defaults);
  op->required = calloc((size_t)(d->nargs ? d->nargs : 1), sizeof *op->required);
  if (!op->defaults || !op->required) {
    entry_free(op);
    return lm_set_error(e, LM_ENOMEM, "out of memory (registry)");
  }
  for (int i = 0; i < d->nargs; i++) {
    const lm_arg_desc *a = &d->args[i];
    if (!valid_name(a->name)) {
      entry_free(op);
      return lm_set_error(e, LM_EINVAL, "%s: argument %d has no valid name", nm, i + 1);
    }
    for (int k = 0; k < i; k++)
      if (strcmp(d->args[k].name, a->name) == 0) {
        entry_free(op);
        return lm_set_error(e, LM_EINVAL, "%s: argument '%s' is declared twice", nm, a->name);
      }
    if ((unsigned)a->type > LM_ARG_MODEL) {
      entry_free(op);
      return lm_set_error(e, LM_EINVAL, "%s: argument '%s' has an unknown type %d", nm,
                          a->name, (int)a->type);
    }
    if (!a->def) {
      op->required[i] = true;
      continue;
    }
    int st = lm_parse_default(a->def, a->type, &op->defaults[i]);
    if (st < 0) {
      static const char *tn[] = {"number", "integer", "boolean", "string", "list of numbers",
                                 "model (only nil as a default)"};
      entry_free(op);
      if (st == LM_ENOMEM) return lm_set_error(e, st, "out of memory (registry)");
      return lm_set_error(e, LM_EINVAL, "%s: default of '%s' (%s) is not a valid %s", nm,
                          a->name, a->def, tn[a->type]);
    }
  }
  /* Grow both arrays first so nothing fails half-way through. */
  if (r->n == r->cap) {
    int cap = r->cap ? r->cap * 2 : 32;
    lm_op_entry **ops = realloc(r->ops, sizeof *ops * (size_t)cap);
    if (!ops) {
      entry_free(op);
      return lm_set_error(e, LM_ENOMEM, "out of memory (registry)");
    }
    r->ops = ops;
    r->cap = cap;
  }
  if (d->alias && r->nalias == r->calias) {
    int cap = r->calias ? r->calias * 2 : 8;
    void *al = realloc(r->aliases, sizeof *r->aliases * (size_t)cap);
    if (!al) {
      entry_free(op);
      return lm_set_error(e, LM_ENOMEM, "out of memory (registry)");
    }
    r->aliases = al;
    r->calias = cap;
  }
  bool found;
  int pos = op_pos(r, nm, &found);
  memmove(r->ops + pos + 1, r->ops + pos, sizeof *r->ops * (size_t)(r->n - pos));
  r->ops[pos] = op;
  r->n++;
  if (d->alias) {
    pos = alias_pos(r, d->alias, &found);
    memmove(r->aliases + pos + 1, r->aliases + pos,
            sizeof *r->aliases * (size_t)(r->nalias - pos));
    r->aliases[pos].name = d->alias;
    r->aliases[pos].op = op;
    r->nalias++;
  }
  return LM_OK;
}

const lm_op_desc *lm_op_find(lm_engine *e, const char *name)
{
  lm_op_entry *op = lm_registry_find(&e->reg, name);
  return op ? op->desc : NULL;
}

int lm_op_count(lm_engine *e)
{
  return e->reg.n;
}

const lm_op_desc *lm_op_at(lm_engine *e, int i)
{
  if (i < 0 || i >= e->reg.n) return NULL;
  return e->reg.ops[i]->desc;
}

int lm_op_set_cuda_kernel(lm_engine *e, const char *name, lm_kernel_fn fn)
{
  lm_op_entry *op = lm_registry_find(&e->reg, name);
  if (!op)
    return lm_set_error(e, LM_ENOENT, "set_cuda_kernel: unknown op '%s'", name ? name : "");
  op->cuda = fn;
  return LM_OK;
}

lm_kernel_fn lm_op_cuda_kernel(lm_engine *e, const lm_op_desc *desc)
{
  lm_op_entry *op = lm_registry_entry(&e->reg, desc);
  if (!op) return NULL;
  return op->cuda ? op->cuda : desc->run_cuda;
}
