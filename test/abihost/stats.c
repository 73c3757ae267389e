// Counters, gauges and histograms, process-wide, keyed by name and tags.
// Two configs defining the same name share the stat, as in Envoy's store.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abihost.h"

#define HIST_KEEP 4096 // recorded values kept per histogram (count and sum are exact)

typedef struct stat_entry {
  struct stat_entry *next;
  int kind;
  char *key; // name \0 k=v \0 k=v ...
  size_t keylen;
  char *name;
  size_t ntags;
  char **tagk, **tagv;
  uint64_t value;
  uint64_t count, sum;
  uint64_t *vals;
  size_t nvals;
} stat_entry;

#define NBUCKETS 1024
static stat_entry *g_buckets[NBUCKETS];
static size_t g_nstats;
static pthread_mutex_t g_stats_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t fnv(const char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
  return h;
}

void stats_add(int kind, const metric_def *d, envoy_dynamic_module_type_module_buffer *vals, size_t nvals, int op,
               uint64_t value) {
  // The key: kind, name, then label=value pairs, NUL separated. Built on
  // the stack: this runs for every metric update of every stream.
  char stackbuf[512];
  size_t need = 2 + strlen(d->name);
  for (size_t i = 0; i < nvals; i++) need += 2 + strlen(d->labels[i]) + vals[i].length;
  char *key = need <= sizeof stackbuf ? stackbuf : xmalloc(need);
  size_t kn = 0;
  key[kn++] = (char)('0' + kind);
  key[kn++] = 0;
  size_t l = strlen(d->name);
  memcpy(key + kn, d->name, l);
  kn += l;
  for (size_t i = 0; i < nvals; i++) {
    key[kn++] = 0;
    l = strlen(d->labels[i]);
    memcpy(key + kn, d->labels[i], l);
    kn += l;
    key[kn++] = '=';
    if (vals[i].length) memcpy(key + kn, vals[i].ptr, vals[i].length);
    kn += vals[i].length;
  }
  uint64_t h = fnv(key, kn) % NBUCKETS;
  pthread_mutex_lock(&g_stats_mu);
  stat_entry *e = g_buckets[h];
  while (e && !(e->keylen == kn && memcmp(e->key, key, kn) == 0)) e = e->next;
  if (!e) {
    e = xcalloc(1, sizeof *e);
    e->kind = kind;
    e->key = xmemdup(key, kn);
    e->keylen = kn;
    e->name = xmemdup(d->name, strlen(d->name));
    e->ntags = nvals;
    e->tagk = xcalloc(nvals, sizeof(char *));
    e->tagv = xcalloc(nvals, sizeof(char *));
    for (size_t i = 0; i < nvals; i++) {
      e->tagk[i] = xmemdup(d->labels[i], strlen(d->labels[i]));
      e->tagv[i] = xmemdup(vals[i].ptr, vals[i].length);
    }
    e->next = g_buckets[h];
    g_buckets[h] = e;
    g_nstats++;
  }
  switch (op) {
  case 0:
    e->value += value;
    break;
  case 1:
    e->value -= value;
    break;
  case 2:
    e->value = value;
    break;
  case 4: // define: exists, unchanged
    break;
  case 3:
    e->count++;
    e->sum += value;
    if (e->nvals < HIST_KEEP) {
      if (!e->vals) e->vals = xmalloc(HIST_KEEP * sizeof(uint64_t));
      e->vals[e->nvals++] = value;
    }
    break;
  }
  pthread_mutex_unlock(&g_stats_mu);
  if (key != stackbuf) free(key);
}

static const char *kind_name(int k) { return k == MK_COUNTER ? "counter" : k == MK_GAUGE ? "gauge" : "histogram"; }

void stats_json(sbuf *b) {
  pthread_mutex_lock(&g_stats_mu);
  sb_addc(b, '[');
  bool first = true;
  for (int i = 0; i < NBUCKETS; i++) {
    for (stat_entry *e = g_buckets[i]; e; e = e->next) {
      if (!first) sb_addc(b, ',');
      first = false;
      sb_adds(b, "{\"kind\":");
      sb_jstr(b, kind_name(e->kind), strlen(kind_name(e->kind)));
      sb_adds(b, ",\"name\":");
      sb_jstr(b, e->name, strlen(e->name));
      sb_adds(b, ",\"tags\":{");
      for (size_t t = 0; t < e->ntags; t++) {
        if (t) sb_addc(b, ',');
        sb_jstr(b, e->tagk[t], strlen(e->tagk[t]));
        sb_addc(b, ':');
        sb_jstr(b, e->tagv[t], strlen(e->tagv[t]));
      }
      sb_addc(b, '}');
      if (e->kind == MK_HISTOGRAM) {
        sb_printf(b, ",\"count\":%llu,\"sum\":%llu,\"values\":[", (unsigned long long)e->count,
                  (unsigned long long)e->sum);
        for (size_t v = 0; v < e->nvals; v++) sb_printf(b, "%s%llu", v ? "," : "", (unsigned long long)e->vals[v]);
        sb_addc(b, ']');
      } else {
        sb_printf(b, ",\"value\":%llu", (unsigned long long)e->value);
      }
      sb_addc(b, '}');
    }
  }
  sb_addc(b, ']');
  pthread_mutex_unlock(&g_stats_mu);
}
