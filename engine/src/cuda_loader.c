/* Loading the CUDA plugin (liblumen_cuda.so) with dlopen.  The engine never
 * links CUDA: a missing plugin, driver or device means "no GPU", reported in
 * words by lm_engine_cuda_status(), never an error. */
#include <dlfcn.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lumen_config.h"

#define PLUGIN_NAME "liblumen_cuda.so"

/* Where the library itself lives (the installed libdir or the build tree). */
static bool self_dir(char *buf, size_t len)
{
  Dl_info info;
  if (!dladdr((void *)&lm_engine_new, &info) || !info.dli_fname) return false;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", info.dli_fname);
  snprintf(buf, len, "%s", dirname(tmp));
  return true;
}

/* Try one path; true when the plugin was opened and its table is good. */
static bool try_open(lm_cuda_state *cs, const char *path, char *why, size_t whylen)
{
  void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    const char *err = dlerror();
    snprintf(why, whylen, "%s", err ? err : path);
    return false;
  }
  lm_cuda_plugin_entry_fn entry;
  *(void **)&entry = dlsym(dl, LM_CUDA_PLUGIN_ENTRY);
  const lm_cuda_api *api = entry ? entry(LM_CUDA_ABI) : NULL;
  if (api && api->abi == LM_CUDA_ABI &&
      !(api->malloc && api->free && api->memcpy_h2d && api->memcpy_d2h && api->memcpy_d2d &&
        api->event_wait && api->event_release)) {
    snprintf(why, whylen, "%s: incomplete plugin table (ABI %d)", path, LM_CUDA_ABI);
    dlclose(dl);
    return false;
  }
  if (!api || api->abi != LM_CUDA_ABI) {
    snprintf(why, whylen, "%s: %s", path,
             entry ? "ABI version mismatch" : "no " LM_CUDA_PLUGIN_ENTRY " symbol");
    dlclose(dl);
    return false;
  }
  cs->dl = dl;
  cs->api = api;
  return true;
}

static bool open_plugin(const lm_config *cfg, lm_cuda_state *cs, char *why, size_t whylen)
{
  /* An explicit path is the only one tried: a typo must not silently pick
   * another build. */
  const char *explicit = cfg->cuda_plugin ? cfg->cuda_plugin : getenv("LUMEN_CUDA_PLUGIN");
  if (explicit && *explicit) return try_open(cs, explicit, why, whylen);
  char dir[4096], path[4200];
  why[0] = '\0';
  if (self_dir(dir, sizeof dir)) {
    snprintf(path, sizeof path, "%s/%s", dir, PLUGIN_NAME);
    if (try_open(cs, path, why, whylen)) return true;
    snprintf(path, sizeof path, "%s/transforms/cuda/%s", dir, PLUGIN_NAME);
    if (try_open(cs, path, why, whylen)) return true;
  }
  snprintf(path, sizeof path, "%s/%s", LUMEN_LIBDIR, PLUGIN_NAME);
  return try_open(cs, path, why, whylen);
}

void lm_cuda_load(lm_engine *e, const lm_config *cfg, lm_cuda_state *cs)
{
  memset(cs, 0, sizeof *cs);
  if (cfg->no_cuda) {
    snprintf(cs->status, sizeof cs->status, "CUDA disabled by the configuration (no_cuda)");
    return;
  }
  char why[512];
  if (!open_plugin(cfg, cs, why, sizeof why)) {
    bool explicit = cfg->cuda_plugin || getenv("LUMEN_CUDA_PLUGIN");
    if (!LM_HAVE_CUDA && !explicit)
      snprintf(cs->status, sizeof cs->status, "CUDA plugin not built");
    else
      snprintf(cs->status, sizeof cs->status, "CUDA plugin not loaded: %.200s", why);
    return;
  }
  char msg[256] = "";
  int n = cs->api->init ? cs->api->init(msg, sizeof msg) : 0;
  if (n <= 0) {
    snprintf(cs->status, sizeof cs->status, "%s", msg[0] ? msg : "no CUDA device");
    lm_cuda_unload(cs);
    return;
  }
  cs->ndevices = n;
  snprintf(cs->status, sizeof cs->status, "%s", msg[0] ? msg : "CUDA available");
  if (cs->api->register_kernels) {
    int st = cs->api->register_kernels(e);
    if (st < 0) {
      snprintf(cs->status, sizeof cs->status, "CUDA plugin failed to register its kernels: %s",
               lm_errmsg(e));
      cs->ndevices = 0;
      /* Kernels already installed would call into an unloaded library. */
      for (int i = 0; i < e->reg.n; i++) e->reg.ops[i]->cuda = NULL;
      lm_cuda_unload(cs);
    }
  }
}

void lm_cuda_unload(lm_cuda_state *cs)
{
  if (cs->dl) dlclose(cs->dl);
  cs->dl = NULL;
  cs->api = NULL;
  cs->ndevices = 0;
}
