// abihost main: loads the module, runs Envoy's main thread and N worker
// threads, and speaks a line protocol on stdin/stdout (see PROTOCOL.md), or
// replays one recorded exchange N times in-process (--bench).
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "abihost.h"

// Under valgrind --tool=callgrind the measured exchanges are dumped on their
// own ("measured"): instruction counts repeat where times do not. Without
// valgrind's header, or outside valgrind, these do nothing.
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#endif
#ifndef CALLGRIND_ZERO_STATS
#define CALLGRIND_ZERO_STATS
#define CALLGRIND_DUMP_STATS_AT(s)
#endif

module_t g_mod;
worker **g_workers;
int g_nworkers = 2;
worker g_main;
bool g_strict;
bool g_router_retry_buffering = true;
uint64_t g_buffer_limit = 1048576;
__thread worker *tls_worker;
__thread hook_ctx tls_hook;
__thread fconfig *tls_creating;
extern void (*g_log_sink)(stream *st, int level, const char *msg, size_t n);
extern _Atomic uint64_t g_sched_commits, g_sched_foreign_commits, g_sched_dropped, g_foreign_violations;
static _Atomic uint64_t g_violations;

enum { T_CMD = 0, T_SCHEDULED = 100, T_CONFIG_SCHEDULED = 101, T_DESTROY_CHAIN = 102, T_DESTROY_ROUTES = 103 };

// ----------------------------------------------------------------- output

static pthread_mutex_t g_out_mu = PTHREAD_MUTEX_INITIALIZER;
// Where replies go: stdout, or stderr for bench mode's setup commands (its
// stdout is the one result line).
static int g_out_fd = 1;
static _Atomic uint64_t g_reply_errs; // err replies sent

static void out_line(sbuf *b) {
  sb_addc(b, '\n');
  pthread_mutex_lock(&g_out_mu);
  size_t off = 0;
  while (off < b->n) {
    ssize_t k = write(g_out_fd, b->p + off, b->n - off);
    if (k < 0) {
      if (errno == EINTR) continue;
      _exit(3); // the harness went away
    }
    off += (size_t)k;
  }
  pthread_mutex_unlock(&g_out_mu);
}

static void reply_ok(uint64_t id, const char *extra) {
  sbuf b;
  sb_init(&b);
  sb_printf(&b, "{\"t\":\"ok\",\"id\":%llu", (unsigned long long)id);
  if (extra) {
    sb_addc(&b, ',');
    sb_adds(&b, extra);
  }
  sb_addc(&b, '}');
  out_line(&b);
  sb_free(&b);
}

static void reply_err(uint64_t id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply_err(uint64_t id, const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  atomic_fetch_add(&g_reply_errs, 1);
  sbuf b;
  sb_init(&b);
  sb_printf(&b, "{\"t\":\"err\",\"id\":%llu,\"msg\":", (unsigned long long)id);
  sb_jstr(&b, msg, strlen(msg));
  sb_addc(&b, '}');
  out_line(&b);
  sb_free(&b);
}

// ------------------------------------------------------------- diagnostics

static const char *lvl_names[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};

void host_log(int level, stream *st, const char *fmt, ...) {
  if (level < g_log_level) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (st)
    fprintf(stderr, "abihost [%s][stream %llu] host: %s\n", lvl_names[level], (unsigned long long)st->id, msg);
  else
    fprintf(stderr, "abihost [%s] host: %s\n", lvl_names[level], msg);
}

void violation(stream *st, const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  atomic_fetch_add(&g_violations, 1);
  if (st) st = si(st); // an attempt's violations are its stream's
  if (st) {
    fprintf(stderr, "abihost: ABI VIOLATION [stream %llu]: %s\n", (unsigned long long)st->id, msg);
    if (st->violations.n) sb_addc(&st->violations, ',');
    sb_jstr(&st->violations, msg, strlen(msg));
    st->nviolations++;
  } else {
    fprintf(stderr, "abihost: ABI VIOLATION: %s\n", msg);
  }
  if (g_strict) abort();
}

// ---------------------------------------------------------------- queues

void worker_push(worker *w, task *t) {
  t->next = NULL;
  pthread_mutex_lock(&w->mu);
  if (w->tail)
    w->tail->next = t;
  else
    w->head = t;
  w->tail = t;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

// take_head unlinks the queue's first task (NULL if empty); w->mu is held.
static task *take_head(worker *w) {
  task *t = w->head;
  if (t) {
    w->head = t->next;
    if (!w->head) w->tail = NULL;
  }
  return t;
}

task *worker_pop(worker *w, bool wait) {
  pthread_mutex_lock(&w->mu);
  while (!w->head && wait && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
  task *t = take_head(w);
  pthread_mutex_unlock(&w->mu);
  return t;
}

static task *worker_pop_timeout(worker *w, uint64_t timeout_ns) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t end = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + timeout_ns;
  ts.tv_sec = (time_t)(end / 1000000000ull);
  ts.tv_nsec = (long)(end % 1000000000ull);
  pthread_mutex_lock(&w->mu);
  while (!w->head) {
    if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) break;
  }
  task *t = take_head(w);
  pthread_mutex_unlock(&w->mu);
  return t;
}

static void free_task(task *t) {
  free(t->line);
  free(t->tok);
  free(t);
}

// -------------------------------------------------------- configs, chains

static chain *g_chain; // the current chain, guarded by g_chain_mu
static pthread_mutex_t g_chain_mu = PTHREAD_MUTEX_INITIALIZER;

void fconfig_unref(fconfig *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1) return;
  for (int k = 0; k < 3; k++) {
    for (size_t i = 0; i < c->nmetrics[k]; i++) {
      for (size_t j = 0; j < c->metrics[k][i].nlabels; j++) free(c->metrics[k][i].labels[j]);
      free(c->metrics[k][i].labels);
      free(c->metrics[k][i].name);
    }
    free(c->metrics[k]);
  }
  sb_free(&c->creation_logs);
  free(c->name);
  free(c->config);
  c->magic = 0;
  free(c);
}

// Envoy destroys filter configs on the main thread.
static void destroy_config(fconfig *c) {
  if (c->mod) {
    count_hook(NULL, HK_config_destroy);
    g_mod.config_destroy(c->mod);
  }
  atomic_store(&c->destroyed, true);
  fconfig_unref(c);
}

void chain_unref(chain *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1) return;
  task *t = xcalloc(1, sizeof *t);
  t->kind = T_DESTROY_CHAIN;
  t->ptr = c;
  worker_push(&g_main, t);
}

static bool parse_u64(const char *s, uint64_t *v);

static route_table *g_routes; // the current route table (NULL: none), guarded by g_chain_mu

void route_table_unref(route_table *t) {
  if (atomic_fetch_sub(&t->refs, 1) != 1) return;
  task *d = xcalloc(1, sizeof *d);
  d->kind = T_DESTROY_ROUTES;
  d->ptr = t;
  worker_push(&g_main, d);
}

// Envoy destroys per-route configs with the route table, on the main thread.
static void destroy_routes(route_table *t) {
  for (int i = 0; i < t->n; i++) {
    route *r = &t->r[i];
    for (int k = 0; k < r->ncfgs; k++) {
      if (r->cfgs[k].mod && g_mod.route_config_destroy) g_mod.route_config_destroy(r->cfgs[k].mod);
      free(r->cfgs[k].filter);
    }
    free(r->cfgs);
    free(r->name);
    free(r->hkey);
    free(r->hval);
    free(r->cluster);
  }
  free(t->r);
  free(t);
}

// routes id n [name hkey hval cluster m [filter per_route_config_name filter_config]*m]*n
// Builds a route table, creating every per-route config as Envoy does when
// it loads a route configuration; one the module refuses (NULL) rejects the
// whole table, with what the module logged.
static route_table *build_routes(task *t, sbuf *err) {
  uint64_t n;
  int at = 2;
  if (t->ntok < 3 || !parse_u64(t->tok[at++], &n) || n > 64) {
    sb_adds(err, "routes: malformed arguments");
    return NULL;
  }
  route_table *rt = xcalloc(1, sizeof *rt);
  atomic_store(&rt->refs, 1);
  rt->r = xcalloc(n ? n : 1, sizeof(route));
  for (uint64_t i = 0; i < n; i++) {
    route *r = &rt->r[rt->n++];
    uint64_t m;
    if (at + 5 > t->ntok || !parse_u64(t->tok[at + 4], &m) || m > 64 || at + 5 + 3 * (int)m > t->ntok) {
      sb_adds(err, "routes: malformed arguments");
      goto fail;
    }
    r->name = (char *)b64_dup(t->tok[at], &r->namelen);
    if (strcmp(t->tok[at + 1], "-") != 0) {
      r->hkey = (char *)b64_dup(t->tok[at + 1], &r->hkeylen);
      r->hval = (char *)b64_dup(t->tok[at + 2], &r->hvallen);
      for (size_t k = 0; r->hkey && k < r->hkeylen; k++) r->hkey[k] = (char)tolower((unsigned char)r->hkey[k]);
    }
    size_t cn;
    r->cluster = (char *)b64_dup(t->tok[at + 3], &cn);
    at += 5;
    if (!r->name || !r->cluster || (strcmp(t->tok[at - 4], "-") != 0 && (!r->hkey || !r->hval))) {
      sb_adds(err, "routes: bad base64");
      goto fail;
    }
    r->cfgs = xcalloc(m ? m : 1, sizeof(route_filter_cfg));
    for (uint64_t k = 0; k < m; k++, at += 3) {
      route_filter_cfg *c = &r->cfgs[r->ncfgs++];
      size_t pn, cn;
      c->filter = (char *)b64_dup(t->tok[at], &c->filterlen);
      char *pname = (char *)b64_dup(t->tok[at + 1], &pn);
      char *cfg = (char *)b64_dup(t->tok[at + 2], &cn);
      if (!c->filter || !pname || !cfg) {
        free(pname);
        free(cfg);
        sb_adds(err, "routes: bad base64");
        goto fail;
      }
      if (!g_mod.route_config_new) {
        free(pname);
        free(cfg);
        sb_printf(err, "route %s: the module exports no envoy_dynamic_module_on_http_filter_per_route_config_new",
                  r->name);
        goto fail;
      }
      // Capture what the module logs while refusing, as for filter configs.
      fconfig capture = {0};
      sb_init(&capture.creation_logs);
      tls_creating = &capture;
      envoy_dynamic_module_type_envoy_buffer bn = {pname, pn}, bc = {cfg, cn};
      c->mod = g_mod.route_config_new(bn, bc);
      tls_creating = NULL;
      if (!c->mod) {
        sb_printf(err, "route %s, filter %s: per-route config %.*s rejected by the module", r->name, c->filter,
                  (int)pn, pname);
        if (capture.creation_logs.n) {
          sb_adds(err, ": ");
          sb_add(err, capture.creation_logs.p, capture.creation_logs.n);
        }
      }
      sb_free(&capture.creation_logs);
      free(pname);
      free(cfg);
      if (!c->mod) goto fail;
    }
  }
  if (at != t->ntok) {
    sb_adds(err, "routes: trailing arguments");
    goto fail;
  }
  return rt;
fail:
  destroy_routes(rt);
  return NULL;
}

static fconfig *create_config(const char *name, size_t nn, const char *cfg, size_t cn) {
  fconfig *c = xcalloc(1, sizeof *c);
  c->magic = FCONFIG_MAGIC;
  c->name = xmemdup(name, nn);
  c->namelen = nn;
  c->config = xmemdup(cfg, cn);
  c->configlen = cn;
  atomic_store(&c->refs, 1);
  tls_creating = c;
  count_hook(NULL, HK_config_new);
  envoy_dynamic_module_type_envoy_buffer bn = {c->name, nn}, bc = {c->config, cn};
  c->mod = g_mod.config_new(c, bn, bc);
  tls_creating = NULL;
  c->frozen = true; // Envoy freezes stat creation once the config exists
  return c;
}

static void metrics_json(sbuf *b, chain *ch) {
  sb_adds(b, "\"metrics\":[");
  bool first = true;
  static const char *kinds[] = {"counter", "gauge", "histogram"};
  for (int i = 0; i < ch->n; i++) {
    fconfig *c = ch->f[i];
    for (int k = 0; k < 3; k++)
      for (size_t m = 0; m < c->nmetrics[k]; m++) {
        if (!first) sb_addc(b, ',');
        first = false;
        sb_adds(b, "{\"filter\":");
        sb_jstr(b, c->name, c->namelen);
        sb_printf(b, ",\"kind\":\"%s\",\"name\":", kinds[k]);
        sb_jstr(b, c->metrics[k][m].name, strlen(c->metrics[k][m].name));
        sb_adds(b, ",\"labels\":[");
        for (size_t l = 0; l < c->metrics[k][m].nlabels; l++) {
          if (l) sb_addc(b, ',');
          sb_jstr(b, c->metrics[k][m].labels[l], strlen(c->metrics[k][m].labels[l]));
        }
        sb_adds(b, "]}");
      }
  }
  sb_addc(b, ']');
}

// Builds a chain; on rejection returns NULL and the message in *err.
static chain *build_chain(int n, char **names, size_t *nlens, char **cfgs, size_t *clens, sbuf *err) {
  chain *ch = xcalloc(1, sizeof *ch);
  ch->n = n;
  ch->f = xcalloc(n ? (size_t)n : 1, sizeof(fconfig *));
  atomic_store(&ch->refs, 1);
  for (int i = 0; i < n; i++) {
    fconfig *c = create_config(names[i], nlens[i], cfgs[i], clens[i]);
    if (!c->mod) {
      sb_printf(err, "filter %.*s: filter_config rejected by the module", (int)nlens[i], names[i]);
      if (c->creation_logs.n) {
        sb_adds(err, ": ");
        sb_add(err, c->creation_logs.p, c->creation_logs.n);
      }
      fconfig_unref(c);
      for (int j = 0; j < i; j++) destroy_config(ch->f[j]);
      free(ch->f);
      free(ch);
      return NULL;
    }
    ch->f[i] = c;
  }
  return ch;
}

// ---------------------------------------------------------------- clusters

#define MAX_CLUSTERS 64
static cluster *g_clusters[MAX_CLUSTERS]; // guarded by g_chain_mu
static _Atomic int g_nclusters;

cluster *cluster_ref(const char *name, size_t n) {
  cluster *c = NULL;
  if (atomic_load_explicit(&g_nclusters, memory_order_relaxed) == 0) return NULL; // the common case: no lock
  pthread_mutex_lock(&g_chain_mu);
  for (int i = 0; i < g_nclusters; i++)
    if (strlen(g_clusters[i]->name) == n && memcmp(g_clusters[i]->name, name, n) == 0) {
      c = g_clusters[i];
      atomic_fetch_add(&c->refs, 1);
      break;
    }
  pthread_mutex_unlock(&g_chain_mu);
  return c;
}

void cluster_unref(cluster *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1) return;
  for (int i = 0; i < c->nh; i++) {
    free(c->h[i].addr);
    md_free(&c->h[i].md);
    md_free(&c->h[i].lmd);
  }
  free(c->h);
  free(c->name);
  if (c->uch) chain_unref(c->uch); // its configs are destroyed on the main thread
  free(c);
}

// cluster id name nhosts [addr nmd [src ns key kind value]*nmd]*nhosts nfilters [name cfg]*nfilters
// src: h (Host) or l (HostLocality); kind: s (string), n (number), b (bool);
// name, addr, ns, key, value and the filters' name and cfg are base64.
// Creates the upstream filter configs (on_http_filter_config_new, main
// thread, as Envoy does for a cluster's HttpProtocolOptions http_filters)
// and replaces the cluster of that name for streams routed from now on.
static void handle_cluster_cmd(task *t) {
  int at = 2;
  uint64_t nh, nf;
  cluster *c = NULL;
  sbuf err;
  sb_init(&err);
  char *names[64] = {0}, *cfgs[64] = {0};
  size_t nl[64], cl[64];
  if (at + 2 > t->ntok) goto bad;
  c = xcalloc(1, sizeof *c);
  atomic_store(&c->refs, 1);
  size_t nn;
  c->name = (char *)b64_dup(t->tok[at++], &nn);
  if (!c->name || !parse_u64(t->tok[at++], &nh) || nh > 256) goto bad;
  c->h = xcalloc(nh ? nh : 1, sizeof(uhost));
  for (uint64_t i = 0; i < nh; i++) {
    uhost *h = &c->h[c->nh++];
    uint64_t nmd;
    size_t an;
    if (at + 2 > t->ntok) goto bad;
    h->addr = (char *)b64_dup(t->tok[at++], &an);
    if (!h->addr || !parse_u64(t->tok[at++], &nmd) || nmd > 256 || at + 5 * (int)nmd > t->ntok) goto bad;
    for (uint64_t k = 0; k < nmd; k++, at += 5) {
      const char *src = t->tok[at], *kind = t->tok[at + 3];
      size_t nsn, kn, vn;
      char *ns = (char *)b64_dup(t->tok[at + 1], &nsn), *key = (char *)b64_dup(t->tok[at + 2], &kn);
      char *val = (char *)b64_dup(t->tok[at + 4], &vn);
      bool ok = ns && key && val && (src[0] == 'h' || src[0] == 'l') &&
                (kind[0] == 's' || kind[0] == 'n' || kind[0] == 'b');
      if (ok) {
        mval *v = md_put(src[0] == 'h' ? &h->md : &h->lmd, ns, nsn, key, kn);
        if (kind[0] == 's') {
          v->k = MV_STR;
          v->s = val;
          v->sn = vn;
          val = NULL;
        } else if (kind[0] == 'n') {
          v->k = MV_NUM;
          v->num = strtod(val, NULL);
        } else {
          v->k = MV_BOOL;
          v->b = strcmp(val, "true") == 0 || strcmp(val, "1") == 0;
        }
      }
      free(ns);
      free(key);
      free(val);
      if (!ok) goto bad;
    }
  }
  if (at >= t->ntok || !parse_u64(t->tok[at++], &nf) || nf > 64 || at + 2 * (int)nf != t->ntok) goto bad;
  for (uint64_t i = 0; i < nf; i++) {
    names[i] = (char *)b64_dup(t->tok[at + 2 * i], &nl[i]);
    cfgs[i] = (char *)b64_dup(t->tok[at + 2 * i + 1], &cl[i]);
    if (!names[i] || !cfgs[i]) goto bad;
  }
  c->uch = build_chain((int)nf, names, nl, cfgs, cl, &err);
  if (!c->uch) {
    reply_err(t->id, "cluster %s: %s", c->name, err.p);
    goto out;
  }
  sbuf b;
  sb_init(&b);
  metrics_json(&b, c->uch);
  pthread_mutex_lock(&g_chain_mu);
  cluster *old = NULL;
  int i = 0;
  for (; i < g_nclusters; i++)
    if (strcmp(g_clusters[i]->name, c->name) == 0) break;
  if (i < g_nclusters) {
    old = g_clusters[i];
    g_clusters[i] = c;
  } else if (g_nclusters < MAX_CLUSTERS) {
    g_clusters[g_nclusters++] = c;
  } else {
    old = c; // table full: refused
  }
  pthread_mutex_unlock(&g_chain_mu);
  if (old == c) {
    reply_err(t->id, "cluster: more than %d clusters", MAX_CLUSTERS);
  } else {
    reply_ok(t->id, b.p);
  }
  sb_free(&b);
  if (old) cluster_unref(old);
  c = NULL;
  goto out;
bad:
  reply_err(t->id, "cluster: malformed arguments");
out:
  if (c) cluster_unref(c);
  for (int k = 0; k < 64; k++) {
    free(names[k]);
    free(cfgs[k]);
  }
  sb_free(&err);
}

// --------------------------------------------------------- stream registry

#define NSTREAMB 4096
typedef struct sentry {
  struct sentry *next;
  stream *st;
} sentry;
static sentry *g_streams[NSTREAMB];
static pthread_mutex_t g_streams_mu = PTHREAD_MUTEX_INITIALIZER;

static stream *stream_find(uint64_t sid) {
  pthread_mutex_lock(&g_streams_mu);
  sentry *e = g_streams[sid % NSTREAMB];
  while (e && e->st->id != sid) e = e->next;
  stream *st = e ? e->st : NULL;
  pthread_mutex_unlock(&g_streams_mu);
  return st;
}

static bool stream_insert(stream *st) {
  pthread_mutex_lock(&g_streams_mu);
  sentry **b = &g_streams[st->id % NSTREAMB];
  for (sentry *e = *b; e; e = e->next)
    if (e->st->id == st->id) {
      pthread_mutex_unlock(&g_streams_mu);
      return false;
    }
  sentry *e = xcalloc(1, sizeof *e);
  e->st = st;
  e->next = *b;
  *b = e;
  pthread_mutex_unlock(&g_streams_mu);
  return true;
}

static void stream_remove(uint64_t sid) {
  pthread_mutex_lock(&g_streams_mu);
  sentry **p = &g_streams[sid % NSTREAMB];
  while (*p && (*p)->st->id != sid) p = &(*p)->next;
  if (*p) {
    sentry *e = *p;
    *p = e->next;
    free(e);
  }
  pthread_mutex_unlock(&g_streams_mu);
}

// ------------------------------------------------------------ HCM emulation

static __thread uint64_t tls_rng;
static uint64_t rng(void) {
  if (!tls_rng) tls_rng = now_ns() ^ (uint64_t)(uintptr_t)&tls_rng;
  tls_rng ^= tls_rng << 13;
  tls_rng ^= tls_rng >> 7;
  tls_rng ^= tls_rng << 17;
  return tls_rng;
}

// What the connection manager adds before the filters see a request.
static void hcm_request_headers(stream *st) {
  const char *v;
  size_t vn;
  if (!hm_get(&st->req_h, "x-request-id", 12, 0, &v, &vn)) {
    // a version-4 UUID, as Envoy generates
    static const char hex[] = "0123456789abcdef";
    uint64_t a = rng(), b = rng();
    char id[36];
    for (int i = 0, bit = 0; i < 36; i++) {
      if (i == 8 || i == 13 || i == 18 || i == 23) {
        id[i] = '-';
        continue;
      }
      uint64_t w = bit < 64 ? a : b;
      id[i] = hex[(w >> (bit & 63)) & 15];
      bit += 4;
    }
    id[14] = '4';
    id[19] = hex[8 | (b >> 60 & 3)];
    hm_add(&st->req_h, "x-request-id", 12, id, 36);
  }
  if (!hm_get(&st->req_h, "x-forwarded-proto", 17, 0, &v, &vn)) hm_add(&st->req_h, "x-forwarded-proto", 17, "http", 4);
}

static stream *stream_new(uint64_t sid, worker *w, chain *ch) {
  stream *st = xcalloc(1, sizeof *st);
  st->id = sid;
  st->w = w;
  st->ch = ch;
  st->protocol = xmemdup("HTTP/1.1", 8);
  st->source_addr = xmemdup("127.0.0.1:40000", 15);
  st->dest_addr = xmemdup("127.0.0.1:10000", 15);
  return st;
}

// ------------------------------------------------------- protocol: events

static const char *ev_names[] = {"up_headers",     "up_data",     "up_trailers", "down_headers", "down_data",
                                 "down_trailers", "local_reply", "reset",       "log",          "violation",
                                 "attempt",       "ua_headers",  "ua_data",     "ua_trailers",  "retry"};

static void json_headers(sbuf *b, const hmap *h) {
  sb_addc(b, '[');
  for (size_t i = 0; h && i < h->n; i++) {
    if (i) sb_addc(b, ',');
    sb_addc(b, '[');
    sb_jb64(b, h->e[i].k, h->e[i].kn);
    sb_addc(b, ',');
    sb_jb64(b, h->e[i].v, h->e[i].vn);
    sb_addc(b, ']');
  }
  sb_addc(b, ']');
}

static void proto_emit(stream *st, const event *ev) {
  sbuf b;
  sb_init(&b);
  sb_printf(&b, "{\"t\":\"ev\",\"s\":%llu,\"k\":\"%s\"", (unsigned long long)st->id, ev_names[ev->k]);
  switch (ev->k) {
  case EV_UP_HEADERS:
    if (ev->route) {
      const route *r = ev->route;
      sb_adds(&b, ",\"route\":");
      sb_jstr(&b, r->name, r->namelen);
      sb_adds(&b, ",\"cluster\":");
      sb_jstr(&b, r->cluster, strlen(r->cluster));
    }
    // fall through
  case EV_DOWN_HEADERS:
  case EV_UP_TRAILERS:
  case EV_DOWN_TRAILERS:
  case EV_UA_HEADERS:
  case EV_UA_TRAILERS:
    sb_printf(&b, ",\"n\":%d,\"eos\":%s,\"h\":", ev->attempt, ev->eos ? "true" : "false");
    json_headers(&b, ev->h);
    break;
  case EV_ATTEMPT:
    sb_printf(&b, ",\"n\":%d,\"endpoint\":", ev->attempt);
    sb_jstr(&b, ev->endpoint, strlen(ev->endpoint));
    sb_adds(&b, ",\"source\":");
    sb_jstr(&b, ev->source, strlen(ev->source));
    break;
  case EV_RETRY:
    sb_printf(&b, ",\"n\":%d,\"status\":%u,\"reason\":", ev->attempt, ev->status);
    sb_jstr(&b, ev->data, ev->len);
    break;
  case EV_UP_DATA:
  case EV_DOWN_DATA:
  case EV_UA_DATA:
    sb_printf(&b, ",\"n\":%d", ev->attempt);
    sb_printf(&b, ",\"eos\":%s,\"d\":", ev->eos ? "true" : "false");
    if (ev->b) {
      size_t n;
      char *p = body_flatten(ev->b, &n);
      sb_jb64(&b, p, n);
      free(p);
    } else {
      sb_jb64(&b, ev->data, ev->len);
    }
    break;
  case EV_LOCAL_REPLY:
    sb_printf(&b, ",\"status\":%u,\"details\":", ev->status);
    sb_jstr(&b, ev->data ? ev->data : "", ev->len);
    sb_adds(&b, ",\"who\":");
    sb_jstr(&b, ev->who, strlen(ev->who));
    break;
  case EV_RESET:
    sb_adds(&b, ",\"reason\":");
    sb_jstr(&b, ev->data, ev->len);
    break;
  default:
    break;
  }
  sb_addc(&b, '}');
  out_line(&b);
  sb_free(&b);
}

static void proto_log(stream *st, int level, const char *msg, size_t n) {
  sbuf b;
  sb_init(&b);
  sb_printf(&b, "{\"t\":\"log\",\"s\":%llu,\"level\":\"%s\",\"msg\":", st ? (unsigned long long)st->id : 0ull,
            lvl_names[level >= 0 && level <= 6 ? level : 6]);
  sb_jstr(&b, msg, n);
  sb_addc(&b, '}');
  out_line(&b);
  sb_free(&b);
}

static void state_json(sbuf *b, stream *st) {
  uint64_t commits = 0, foreign = 0, foreign_calls = 0;
  for (int i = 0; i < st->n; i++) {
    commits += atomic_load(&st->f[i]->commits);
    foreign += atomic_load(&st->f[i]->foreign_commits);
    foreign_calls += atomic_load(&st->f[i]->foreign_calls);
  }
  sb_adds(b, "\"state\":{\"metadata\":");
  md_json(b, &st->md);
  sb_adds(b, ",\"filterState\":{");
  for (size_t i = 0; i < st->fs.n; i++) {
    if (i) sb_addc(b, ',');
    sb_jstr(b, st->fs.e[i].k, st->fs.e[i].kn);
    sb_addc(b, ':');
    sb_jb64(b, st->fs.e[i].v, st->fs.e[i].vn);
  }
  sb_printf(b,
            "},\"worker\":%d,\"routeCacheClears\":%llu,\"clusterCacheClears\":%llu,\"hooks\":%llu,\"callbacks\":%llu,"
            "\"scheduledDelivered\":%llu,\"schedulerCommits\":%llu,\"foreignThreadCommits\":%llu,"
            "\"foreignThreadCalls\":%llu,\"localReplies\":%llu,\"completed\":%s,\"reset\":%s",
            st->w->index, (unsigned long long)st->route_cache_clears, (unsigned long long)st->cluster_cache_clears,
            (unsigned long long)st->hooks, (unsigned long long)st->callbacks,
            (unsigned long long)st->scheduled_delivered, (unsigned long long)commits, (unsigned long long)foreign,
            (unsigned long long)foreign_calls, (unsigned long long)st->local_replies,
            st->completed ? "true" : "false", st->reset ? "true" : "false");
  if (st->has_response_code) sb_printf(b, ",\"responseCode\":%u", st->response_code);
  sb_printf(b, ",\"attempts\":%d", st->nattempts);
  if (st->routed) {
    sb_adds(b, ",\"route\":");
    sb_jstr(b, st->routed->name, st->routed->namelen);
    sb_adds(b, ",\"cluster\":");
    sb_jstr(b, st->routed->cluster, strlen(st->routed->cluster));
  }
  if (st->details) {
    sb_adds(b, ",\"details\":");
    sb_jstr(b, st->details, strlen(st->details));
  }
  sb_adds(b, ",\"flags\":");
  sb_jstr(b, st->flags.p ? st->flags.p : "", st->flags.n);
  sb_adds(b, ",\"violations\":[");
  if (st->violations.n) sb_add(b, st->violations.p, st->violations.n);
  sb_adds(b, "]}");
}

// ----------------------------------------------------- protocol: commands

static bool parse_u64(const char *s, uint64_t *v) {
  char *end;
  errno = 0;
  *v = strtoull(s, &end, 10);
  return errno == 0 && end != s && *end == 0;
}

// Decodes "n k v k v ..." starting at tok[i] into m.
static bool parse_headers(task *t, int i, hmap *m) {
  uint64_t n;
  if (i >= t->ntok || !parse_u64(t->tok[i], &n) || (uint64_t)(t->ntok - i - 1) < 2 * n) return false;
  for (uint64_t k = 0; k < n; k++) {
    size_t kn, vn;
    unsigned char *key = b64_dup(t->tok[i + 1 + 2 * k], &kn);
    unsigned char *val = b64_dup(t->tok[i + 2 + 2 * k], &vn);
    if (!key || !val) {
      free(key);
      free(val);
      return false;
    }
    hm_add(m, (char *)key, kn, (char *)val, vn);
    free(key);
    free(val);
  }
  return true;
}

static void set_str(char **dst, const char *b64) {
  size_t n;
  unsigned char *v = b64_dup(b64, &n);
  if (!v) return;
  free(*dst);
  *dst = (char *)v;
}

static void handle_stream_cmd(task *t) {
  const char *cmd = t->tok[0];
  stream *st = stream_find(t->sid);
  if (!st) {
    reply_err(t->id, "%s: no stream %llu", cmd, (unsigned long long)t->sid);
    return;
  }
  if (strcmp(cmd, "open") == 0) {
    // open id sid worker [protocol source dest route] (base64, "-" keeps the default)
    if (t->ntok > 4 && strcmp(t->tok[4], "-")) set_str(&st->protocol, t->tok[4]);
    if (t->ntok > 5 && strcmp(t->tok[5], "-")) set_str(&st->source_addr, t->tok[5]);
    if (t->ntok > 6 && strcmp(t->tok[6], "-")) set_str(&st->dest_addr, t->tok[6]);
    if (t->ntok > 7 && strcmp(t->tok[7], "-")) set_str(&st->route_name, t->tok[7]);
    fm_open(st);
    char extra[64];
    snprintf(extra, sizeof extra, "\"worker\":%d", st->w->index);
    reply_ok(t->id, extra);
    return;
  }
  if (st->completed && strcmp(cmd, "state") != 0) {
    reply_err(t->id, "%s: stream %llu already ended", cmd, (unsigned long long)t->sid);
    return;
  }
  uint64_t eos = 0;
  if (strcmp(cmd, "reqh") == 0 || strcmp(cmd, "resh") == 0) {
    bool req = cmd[2] == 'q';
    if (t->ntok < 5 || !parse_u64(t->tok[3], &eos)) goto bad;
    if (req ? st->has_req_h : st->has_resp_h) {
      reply_err(t->id, "%s: %s headers already %s", cmd, req ? "request" : "response",
                req ? "sent" : "exist (a local reply answered this stream)");
      return;
    }
    hmap *m = req ? &st->req_h : &st->resp_h;
    hm_clear(m);
    if (!parse_headers(t, 4, m)) goto bad;
    if (req) {
      hcm_request_headers(st);
      st->has_req_h = true;
      st->remote_complete = eos != 0;
      fm_decode_headers(st, -1, eos != 0);
    } else {
      const char *v;
      size_t vn;
      if (hm_get(m, ":status", 7, 0, &v, &vn)) {
        st->response_code = (uint32_t)strtoul(v, NULL, 10);
        st->has_response_code = true;
      }
      st->has_resp_h = true;
      fm_encode_headers(st, -1, eos != 0);
    }
  } else if (strcmp(cmd, "reqd") == 0 || strcmp(cmd, "resd") == 0) {
    bool req = cmd[2] == 'q';
    if (t->ntok < 5 || !parse_u64(t->tok[3], &eos)) goto bad;
    size_t n;
    unsigned char *data = b64_dup(t->tok[4], &n);
    if (!data) goto bad;
    body *b = body_new();
    body_add(b, data, n);
    free(data);
    if (req) {
      if (eos) st->remote_complete = true;
      fm_decode_data(st, -1, b, eos != 0, false);
    } else {
      if (!st->has_resp_h) {
        body_free(b);
        reply_err(t->id, "resd before resh");
        return;
      }
      fm_encode_data(st, -1, b, eos != 0, false);
    }
    body_free(b);
  } else if (strcmp(cmd, "reqt") == 0 || strcmp(cmd, "rest") == 0) {
    bool req = cmd[2] == 'q';
    hmap *m = req ? &st->req_t : &st->resp_t;
    hm_clear(m);
    if (!parse_headers(t, 3, m)) goto bad;
    if (req) {
      st->has_req_t = true;
      st->remote_complete = true;
      fm_decode_trailers(st, -1);
    } else {
      st->has_resp_t = true;
      fm_encode_trailers(st, -1);
    }
  } else if (strcmp(cmd, "upstream") == 0) {
    if (t->ntok < 4) goto bad;
    set_str(&st->upstream_addr, t->tok[3]);
  } else if (strcmp(cmd, "metalist") == 0) {
    // metalist id sid ns key n v1..vn: a string list in the stream's dynamic
    // metadata, as a filter before ours (or a route's set_metadata) leaves it.
    uint64_t n;
    if (t->ntok < 6 || !parse_u64(t->tok[5], &n) || t->ntok < 6 + (int)n) goto bad;
    size_t nsn, kn;
    char *ns = (char *)b64_dup(t->tok[3], &nsn), *key = (char *)b64_dup(t->tok[4], &kn);
    if (!ns || !key) {
      free(ns);
      free(key);
      goto bad;
    }
    mval *v = md_put(&st->md, ns, nsn, key, kn);
    v->k = MV_LIST;
    v->nitems = v->cap = (size_t)n;
    v->items = n ? xcalloc(n, sizeof(mval)) : NULL;
    for (uint64_t i = 0; i < n; i++) {
      size_t vn;
      v->items[i].k = MV_STR;
      v->items[i].s = (char *)b64_dup(t->tok[6 + i], &vn);
      v->items[i].sn = v->items[i].s ? vn : 0;
    }
    free(ns);
    free(key);
  } else if (strcmp(cmd, "metastr") == 0) {
    // metastr id sid ns key value: a string in the stream's dynamic metadata,
    // as a filter before ours (or a route's set_metadata) leaves it.
    if (t->ntok < 6) goto bad;
    size_t nsn, kn, vn;
    char *ns = (char *)b64_dup(t->tok[3], &nsn), *key = (char *)b64_dup(t->tok[4], &kn);
    char *val = (char *)b64_dup(t->tok[5], &vn);
    if (!ns || !key || !val) {
      free(ns);
      free(key);
      free(val);
      goto bad;
    }
    mval *v = md_put(&st->md, ns, nsn, key, kn);
    v->k = MV_STR;
    v->s = val;
    v->sn = vn;
    free(ns);
    free(key);
  } else if (strcmp(cmd, "routerreply") == 0) {
    // routerreply id sid status body details: the router answers (no healthy
    // upstream, connect failure...) as Envoy's router does with sendLocalReply.
    uint64_t status;
    if (t->ntok < 6 || !parse_u64(t->tok[3], &status)) goto bad;
    local_reply r;
    memset(&r, 0, sizeof r);
    r.status = (uint32_t)status;
    hm_init(&r.headers);
    r.body = (char *)b64_dup(t->tok[4], &r.bodylen);
    size_t dn;
    r.details = (char *)b64_dup(t->tok[5], &dn);
    if (!r.body || !r.details) {
      free(r.body);
      free(r.details);
      goto bad;
    }
    fm_send_local_reply(st, &r);
  } else if (strcmp(cmd, "retrypolicy") == 0) {
    // retrypolicy id sid num_retries on_reset n code1..coden: the route's
    // retry policy for this stream (default: envoy.yaml's).
    uint64_t nr, onreset, n;
    if (t->ntok < 6 || !parse_u64(t->tok[3], &nr) || !parse_u64(t->tok[4], &onreset) || !parse_u64(t->tok[5], &n) ||
        n > 16 || t->ntok != 6 + (int)n)
      goto bad;
    st->retries_left = (int)nr;
    st->retry_on_reset = onreset != 0;
    st->nretry_codes = (int)n;
    for (uint64_t i = 0; i < n; i++) {
      uint64_t c;
      if (!parse_u64(t->tok[6 + i], &c)) goto bad;
      st->retry_codes[i] = (int)c;
    }
    st->retry_policy_set = true;
  } else if (strcmp(cmd, "uresh") == 0 || strcmp(cmd, "uresd") == 0 || strcmp(cmd, "urest") == 0 ||
             strcmp(cmd, "ureset") == 0) {
    // The current attempt's upstream answers (or resets): through the
    // attempt's upstream filters to the router.
    stream *a = st->attempt;
    if (!a || a->doomed) {
      reply_err(t->id, "%s: stream %llu has no live attempt", cmd, (unsigned long long)t->sid);
      return;
    }
    if (strcmp(cmd, "uresh") == 0) {
      if (t->ntok < 5 || !parse_u64(t->tok[3], &eos)) goto bad;
      hm_clear(&a->resp_h);
      if (!parse_headers(t, 4, &a->resp_h)) goto bad;
      fm_attempt_response_headers(st, eos != 0);
    } else if (strcmp(cmd, "uresd") == 0) {
      if (t->ntok < 5 || !parse_u64(t->tok[3], &eos)) goto bad;
      size_t n;
      unsigned char *data = b64_dup(t->tok[4], &n);
      if (!data) goto bad;
      body *b = body_new();
      body_add(b, data, n);
      free(data);
      fm_attempt_response_data(st, b, eos != 0);
      body_free(b);
    } else if (strcmp(cmd, "urest") == 0) {
      hm_clear(&a->resp_t);
      if (!parse_headers(t, 3, &a->resp_t)) goto bad;
      fm_attempt_response_trailers(st);
    } else {
      size_t n;
      char *reason = t->ntok > 3 ? (char *)b64_dup(t->tok[3], &n) : NULL;
      fm_attempt_reset(st, reason ? reason : "remote reset");
      free(reason);
    }
  } else if (strcmp(cmd, "state") == 0) {
    sbuf b;
    sb_init(&b);
    state_json(&b, st);
    reply_ok(t->id, b.p);
    sb_free(&b);
    return;
  } else if (strcmp(cmd, "end") == 0 || strcmp(cmd, "reset") == 0) {
    fm_complete(st, cmd[0] == 'r');
    sbuf b;
    sb_init(&b);
    state_json(&b, st);
    stream_remove(st->id);
    fm_free_stream(st);
    reply_ok(t->id, b.p);
    sb_free(&b);
    return;
  } else {
    reply_err(t->id, "unknown command %s", cmd);
    return;
  }
  fm_settle(st); // the router's deferred work: destroy a finished attempt, start a retry
  reply_ok(t->id, NULL);
  return;
bad:
  reply_err(t->id, "%s: malformed arguments", cmd);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  tls_worker = w;
  for (;;) {
    task *t = worker_pop(w, true);
    if (!t) break;
    if (t->kind == T_SCHEDULED) {
      fm_run_scheduled(t->f, t->event);
      hfilter_unref(t->f);
    } else {
      handle_stream_cmd(t);
    }
    free_task(t);
  }
  return NULL;
}

static void handle_main_cmd(task *t) {
  const char *cmd = t->tok[0];
  if (strcmp(cmd, "cluster") == 0) {
    handle_cluster_cmd(t);
    return;
  }
  if (strcmp(cmd, "chain") == 0) {
    uint64_t n;
    if (t->ntok < 3 || !parse_u64(t->tok[2], &n) || (uint64_t)(t->ntok - 3) < 2 * n || n == 0 || n > 64) {
      reply_err(t->id, "chain: malformed arguments");
      return;
    }
    char *names[64], *cfgs[64];
    size_t nl[64], cl[64];
    bool ok = true;
    for (uint64_t i = 0; i < n; i++) {
      names[i] = (char *)b64_dup(t->tok[3 + 2 * i], &nl[i]);
      cfgs[i] = (char *)b64_dup(t->tok[4 + 2 * i], &cl[i]);
      if (!names[i] || !cfgs[i]) ok = false;
    }
    if (!ok) {
      reply_err(t->id, "chain: bad base64");
    } else {
      sbuf err;
      sb_init(&err);
      chain *ch = build_chain((int)n, names, nl, cfgs, cl, &err);
      if (!ch) {
        reply_err(t->id, "%s", err.p);
      } else {
        sbuf b;
        sb_init(&b);
        metrics_json(&b, ch);
        pthread_mutex_lock(&g_chain_mu);
        chain *old = g_chain;
        g_chain = ch;
        pthread_mutex_unlock(&g_chain_mu);
        if (old) chain_unref(old);
        reply_ok(t->id, b.p);
        sb_free(&b);
      }
      sb_free(&err);
    }
    for (uint64_t i = 0; i < n; i++) {
      free(names[i]);
      free(cfgs[i]);
    }
  } else if (strcmp(cmd, "routes") == 0) {
    sbuf err;
    sb_init(&err);
    route_table *rt = build_routes(t, &err);
    if (!rt) {
      reply_err(t->id, "%s", err.p);
    } else {
      pthread_mutex_lock(&g_chain_mu);
      route_table *old = g_routes;
      g_routes = rt;
      pthread_mutex_unlock(&g_chain_mu);
      if (old) route_table_unref(old);
      reply_ok(t->id, NULL);
    }
    sb_free(&err);
  } else if (strcmp(cmd, "stats") == 0) {
    sbuf b;
    sb_init(&b);
    sb_adds(&b, "\"stats\":");
    stats_json(&b);
    sb_printf(&b,
              ",\"abi\":{\"violations\":%llu,\"foreignThreadCalls\":%llu,\"schedulerCommits\":%llu,"
              "\"foreignThreadCommits\":%llu,\"droppedScheduledEvents\":%llu,\"hooks\":{",
              (unsigned long long)atomic_load(&g_violations), (unsigned long long)atomic_load(&g_foreign_violations),
              (unsigned long long)atomic_load(&g_sched_commits), (unsigned long long)atomic_load(&g_sched_foreign_commits),
              (unsigned long long)atomic_load(&g_sched_dropped));
    for (int i = 0; i < HK__COUNT; i++)
      sb_printf(&b, "%s\"%s\":%llu", i ? "," : "", hk_names[i], (unsigned long long)atomic_load(&g_hk_count[i]));
    sb_adds(&b, "},\"callbacks\":{");
    for (int i = 0; i < CB__COUNT; i++)
      sb_printf(&b, "%s\"%s\":%llu", i ? "," : "", cb_names[i], (unsigned long long)atomic_load(&g_cb_count[i]));
    sb_adds(&b, "}}");
    reply_ok(t->id, b.p);
    sb_free(&b);
  } else if (strcmp(cmd, "logevents") == 0) {
    g_log_events = t->ntok > 2 && strcmp(t->tok[2], "1") == 0;
    reply_ok(t->id, NULL);
  } else if (strcmp(cmd, "loglevel") == 0) {
    uint64_t l;
    if (t->ntok < 3 || !parse_u64(t->tok[2], &l) || l > 6) {
      reply_err(t->id, "loglevel: want 0 (trace) .. 6 (off)");
      return;
    }
    g_log_level = (int)l;
    reply_ok(t->id, NULL);
  } else if (strcmp(cmd, "quit") == 0) {
    reply_ok(t->id, NULL);
    fflush(stderr);
    _exit(0);
  } else {
    reply_err(t->id, "unknown command %s", cmd);
  }
}

static void main_loop(void) {
  tls_worker = &g_main;
  for (;;) {
    task *t = worker_pop(&g_main, true);
    if (!t) continue;
    if (t->kind == T_CONFIG_SCHEDULED) {
      fconfig *c = t->cfg;
      if (!atomic_load(&c->destroyed) && c->mod) {
        count_hook(NULL, HK_config_scheduled);
        g_mod.config_scheduled(c, c->mod, t->event);
      }
      fconfig_unref(c);
    } else if (t->kind == T_DESTROY_ROUTES) {
      destroy_routes(t->ptr);
    } else if (t->kind == T_DESTROY_CHAIN) {
      chain *ch = t->ptr;
      for (int i = 0; i < ch->n; i++) destroy_config(ch->f[i]);
      free(ch->f);
      free(ch);
    } else {
      handle_main_cmd(t);
    }
    free_task(t);
  }
}

// parse_task splits one command line into a task (tokens: command, id,
// arguments), or replies err and returns NULL.
static task *parse_task(const char *line, size_t len) {
  task *t = xcalloc(1, sizeof *t);
  t->line = xmemdup(line, len);
  int tcap = 16;
  t->tok = xmalloc((size_t)tcap * sizeof(char *));
  char *save = NULL;
  for (char *tok = strtok_r(t->line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
    if (t->ntok == tcap) {
      tcap *= 2;
      t->tok = xrealloc(t->tok, (size_t)tcap * sizeof(char *));
    }
    t->tok[t->ntok++] = tok;
  }
  if (t->ntok < 2 || !parse_u64(t->tok[1], &t->id)) {
    reply_err(0, "malformed command: %.*s", (int)(len > 200 ? 200 : len), line);
    free_task(t);
    return NULL;
  }
  return t;
}

// Reads commands and routes them: stream commands to the stream's worker,
// the rest to the main thread.
static void *reader_main(void *arg) {
  (void)arg;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  uint64_t rr = 0;
  while ((len = getline(&line, &cap, stdin)) > 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    if (len == 0) continue;
    task *t = parse_task(line, (size_t)len);
    if (!t) continue;
    const char *cmd = t->tok[0];
    bool main_cmd = !strcmp(cmd, "chain") || !strcmp(cmd, "cluster") || !strcmp(cmd, "routes") || !strcmp(cmd, "stats") || !strcmp(cmd, "logevents") ||
                    !strcmp(cmd, "loglevel") || !strcmp(cmd, "quit");
    if (main_cmd) {
      worker_push(&g_main, t);
      continue;
    }
    if (t->ntok < 3 || !parse_u64(t->tok[2], &t->sid)) {
      reply_err(t->id, "%s: missing stream id", cmd);
      free_task(t);
      continue;
    }
    if (strcmp(cmd, "open") == 0) {
      int64_t wi = t->ntok > 3 ? strtoll(t->tok[3], NULL, 10) : -1;
      if (wi < 0 || wi >= g_nworkers) wi = (int64_t)(rr++ % (uint64_t)g_nworkers);
      pthread_mutex_lock(&g_chain_mu);
      chain *ch = g_chain;
      if (ch) atomic_fetch_add(&ch->refs, 1);
      route_table *rt = ch ? g_routes : NULL;
      if (rt) atomic_fetch_add(&rt->refs, 1);
      pthread_mutex_unlock(&g_chain_mu);
      if (!ch) {
        reply_err(t->id, "open: no chain configured");
        free_task(t);
        continue;
      }
      stream *st = stream_new(t->sid, g_workers[wi], ch);
      st->rt = rt;
      st->emit = proto_emit;
      if (!stream_insert(st)) {
        reply_err(t->id, "open: stream %llu exists", (unsigned long long)t->sid);
        fm_free_stream(st);
        free_task(t);
        continue;
      }
      worker_push(st->w, t);
      continue;
    }
    stream *st = stream_find(t->sid);
    if (!st) {
      reply_err(t->id, "%s: no stream %llu", cmd, (unsigned long long)t->sid);
      free_task(t);
      continue;
    }
    worker_push(st->w, t);
  }
  free(line);
  task *t = xcalloc(1, sizeof *t);
  t->line = xmemdup("quit 0", 6);
  t->tok = xmalloc(2 * sizeof(char *));
  t->tok[0] = t->line;
  t->line[4] = 0;
  t->tok[1] = t->line + 5;
  t->ntok = 2;
  worker_push(&g_main, t);
  return NULL;
}

// ------------------------------------------------------------------- bench

// per_request_json writes {"name":count/n,...} for the counters that moved
// since base, and returns how many calls they add up to.
static uint64_t per_request_json(sbuf *b, const char **names, _Atomic uint64_t *counts, const uint64_t *base,
                                 int k, uint64_t n) {
  uint64_t total = 0;
  bool first = true;
  sb_addc(b, '{');
  for (int i = 0; i < k; i++) {
    uint64_t d = atomic_load(&counts[i]) - base[i];
    total += d;
    if (!d) continue;
    sb_printf(b, "%s\"%s\":%.2f", first ? "" : ",", names[i], (double)d / (double)n);
    first = false;
  }
  sb_addc(b, '}');
  return total;
}


typedef struct {
  hmap h, t;
  bool has_t;
  char **chunks;
  size_t *lens;
  size_t nchunks;
} recorded;

static bool read_recorded(const char *path, recorded *r) {
  FILE *fp = fopen(path, "r");
  if (!fp) return false;
  memset(r, 0, sizeof *r);
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  bool ok = true;
  while ((len = getline(&line, &cap, fp)) > 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    if (len == 0 || line[0] == '#') continue;
    char *save = NULL;
    char *kind = strtok_r(line, " ", &save);
    char *a = strtok_r(NULL, " ", &save);
    char *b = strtok_r(NULL, " ", &save);
    if (!kind || !a) {
      ok = false;
      break;
    }
    size_t an, bn;
    unsigned char *av = b64_dup(a, &an);
    if (!av) {
      ok = false;
      break;
    }
    if (kind[0] == 'D') {
      r->chunks = xrealloc(r->chunks, (r->nchunks + 1) * sizeof(char *));
      r->lens = xrealloc(r->lens, (r->nchunks + 1) * sizeof(size_t));
      r->chunks[r->nchunks] = (char *)av;
      r->lens[r->nchunks++] = an;
      continue;
    }
    unsigned char *bv = b ? b64_dup(b, &bn) : NULL;
    if (!bv) {
      free(av);
      ok = false;
      break;
    }
    if (kind[0] == 'H') hm_add(&r->h, (char *)av, an, (char *)bv, bn);
    if (kind[0] == 'T') {
      hm_add(&r->t, (char *)av, an, (char *)bv, bn);
      r->has_t = true;
    }
    free(av);
    free(bv);
  }
  free(line);
  fclose(fp);
  return ok;
}

typedef struct {
  bool up_done, down_done, local_reply, reset, routed;
  bool ua_done; // the request reached an upstream attempt's codec (a cluster with upstream filters)
  uint32_t status;
  size_t up_bytes, down_bytes;
  bool verbose;
} bench_sink;

static void bench_emit(stream *st, const event *ev) {
  bench_sink *s = st->emit_ctx;
  switch (ev->k) {
  case EV_UP_HEADERS: {
    // Did the picker name a destination for the override_host policy?
    const char *v;
    size_t vn;
    if (hm_get(ev->h, "x-gateway-destination-endpoint", 30, 0, &v, &vn) && vn > 0) s->routed = true;
    if (ev->eos) s->up_done = true;
    break;
  }
  case EV_UP_TRAILERS:
    if (ev->eos) s->up_done = true;
    break;
  case EV_UA_HEADERS:
  case EV_UA_DATA:
  case EV_UA_TRAILERS:
    if (ev->eos) s->ua_done = true;
    break;
  case EV_UP_DATA:
    s->up_bytes += ev->len;
    if (ev->eos) s->up_done = true;
    break;
  case EV_DOWN_HEADERS: {
    const char *v;
    size_t vn;
    if (hm_get(ev->h, ":status", 7, 0, &v, &vn)) s->status = (uint32_t)strtoul(v, NULL, 10);
    if (ev->eos) s->down_done = true;
    break;
  }
  case EV_DOWN_DATA:
    s->down_bytes += ev->len;
    if (ev->eos) s->down_done = true;
    break;
  case EV_DOWN_TRAILERS:
    s->down_done = true;
    break;
  case EV_LOCAL_REPLY:
    s->local_reply = true;
    break;
  case EV_RESET:
    s->reset = true;
    break;
  default:
    break;
  }
  if (s->verbose) {
    if (ev->h) {
      fprintf(stderr, "bench: %s eos=%d\n", ev_names[ev->k], ev->eos);
      for (size_t i = 0; i < ev->h->n; i++)
        fprintf(stderr, "  %.*s: %.*s\n", (int)ev->h->e[i].kn, ev->h->e[i].k, (int)ev->h->e[i].vn, ev->h->e[i].v);
    } else {
      size_t n = 0;
      char *p = ev->b ? body_flatten(ev->b, &n) : NULL;
      const char *d = p ? p : ev->data ? (const char *)ev->data : "";
      if (!p) n = ev->len;
      fprintf(stderr, "bench: %s eos=%d %.*s\n", ev_names[ev->k], ev->eos, (int)(n > 300 ? 300 : n), d);
      free(p);
    }
  }
}

static void bench_drain(worker *w, bool (*done)(stream *), stream *st) {
  // Run queued scheduled events; wait for them while the stream is stuck.
  uint64_t deadline = now_ns() + 5000000000ull;
  for (;;) {
    task *t = done(st) ? worker_pop(w, false) : worker_pop_timeout(w, 10000000ull);
    if (!t) {
      if (done(st) || now_ns() > deadline) return;
      continue;
    }
    if (t->kind == T_SCHEDULED) {
      fm_run_scheduled(t->f, t->event);
      hfilter_unref(t->f);
    }
    free_task(t);
    fm_settle(st);
  }
}

static bool req_done(stream *st) {
  bench_sink *s = st->emit_ctx;
  // With upstream filters the request is done when the attempt's codec has it.
  return (st->cl ? s->ua_done : s->up_done) || s->local_reply || s->reset;
}
static bool resp_done(stream *st) {
  bench_sink *s = st->emit_ctx;
  return s->down_done || s->reset;
}

static void bench_one(chain *ch, route_table *rt, worker *w, uint64_t id, recorded *rq, recorded *rs,
                      bench_sink *sink) {
  stream *st = stream_new(id, w, ch);
  atomic_fetch_add(&ch->refs, 1);
  if (rt) atomic_fetch_add(&rt->refs, 1);
  st->rt = rt;
  st->emit = bench_emit;
  st->emit_ctx = sink;
  fm_open(st);
  hm_copy(&st->req_h, &rq->h);
  hcm_request_headers(st);
  st->has_req_h = true;
  bool hdr_eos = rq->nchunks == 0 && !rq->has_t;
  st->remote_complete = hdr_eos;
  fm_decode_headers(st, -1, hdr_eos);
  fm_settle(st);
  for (size_t i = 0; i < rq->nchunks; i++) {
    bool eos = i + 1 == rq->nchunks && !rq->has_t;
    if (eos) st->remote_complete = true;
    body *b = body_new();
    body_add(b, rq->chunks[i], rq->lens[i]);
    fm_decode_data(st, -1, b, eos, false);
    body_free(b);
    fm_settle(st);
  }
  if (rq->has_t) {
    hm_copy(&st->req_t, &rq->t);
    st->has_req_t = true;
    st->remote_complete = true;
    fm_decode_trailers(st, -1);
    fm_settle(st);
  }
  bench_drain(w, req_done, st);
  if (req_done(st) && !sink->local_reply && !st->reset) {
    // Through the cluster's upstream attempt (its filters, then the router)
    // when the route has one, else straight into the downstream chain.
    bool via_attempt = st->attempt != NULL;
    if (!via_attempt) {
      free(st->upstream_addr);
      st->upstream_addr = xmemdup("127.0.0.1:8001", 14);
    }
    stream *rh = via_attempt ? st->attempt : st;
    hm_copy(&rh->resp_h, &rs->h);
    const char *v;
    size_t vn;
    if (!via_attempt && hm_get(&st->resp_h, ":status", 7, 0, &v, &vn)) {
      st->response_code = (uint32_t)strtoul(v, NULL, 10);
      st->has_response_code = true;
    }
    bool h_eos = rs->nchunks == 0 && !rs->has_t;
    if (via_attempt) {
      fm_attempt_response_headers(st, h_eos);
    } else {
      st->has_resp_h = true;
      fm_encode_headers(st, -1, h_eos);
    }
    fm_settle(st);
    for (size_t i = 0; i < rs->nchunks; i++) {
      body *b = body_new();
      body_add(b, rs->chunks[i], rs->lens[i]);
      bool eos = i + 1 == rs->nchunks && !rs->has_t;
      if (via_attempt) {
        fm_attempt_response_data(st, b, eos);
      } else {
        fm_encode_data(st, -1, b, eos, false);
      }
      body_free(b);
      fm_settle(st);
    }
    if (rs->has_t) {
      stream *rt_ = via_attempt ? st->attempt : st;
      if (rt_) {
        hm_copy(&rt_->resp_t, &rs->t);
        if (via_attempt) {
          fm_attempt_response_trailers(st);
        } else {
          st->has_resp_t = true;
          fm_encode_trailers(st, -1);
        }
      }
      fm_settle(st);
    }
    bench_drain(w, resp_done, st);
  }
  fm_complete(st, false);
  if (st->nviolations) fprintf(stderr, "bench: stream %llu: violations: [%s]\n", (unsigned long long)id, st->violations.p);
  fm_free_stream(st);
}

static chain *bench_chain(const char *path) {
  FILE *fp = fopen(path, "r");
  if (!fp) {
    fprintf(stderr, "abihost: cannot open %s\n", path);
    return NULL;
  }
  char *names[64], *cfgs[64];
  size_t nl[64], cl[64];
  int n = 0;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, fp)) > 0 && n < 64) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    if (len == 0 || line[0] == '#') continue;
    char *save = NULL;
    char *a = strtok_r(line, " ", &save), *b = strtok_r(NULL, " ", &save);
    if (!a) continue;
    names[n] = xmemdup(a, strlen(a));
    nl[n] = strlen(a);
    cfgs[n] = (char *)b64_dup(b ? b : "-", &cl[n]);
    if (!cfgs[n]) {
      fprintf(stderr, "abihost: %s: bad base64 config for %s\n", path, a);
      return NULL;
    }
    n++;
  }
  free(line);
  fclose(fp);
  sbuf err;
  sb_init(&err);
  chain *ch = n ? build_chain(n, names, nl, cfgs, cl, &err) : NULL;
  if (!ch) fprintf(stderr, "abihost: %s\n", n ? err.p : "empty chain file");
  sb_free(&err);
  for (int i = 0; i < n; i++) {
    free(names[i]);
    free(cfgs[i]);
  }
  return ch;
}

// bench_setup runs a file of main-thread protocol commands (cluster,
// routes), one a line, as the protocol would: upstream clusters and the
// route table that sends the replayed stream to one. Replies go to stderr.
static bool bench_setup(const char *path) {
  FILE *fp = fopen(path, "r");
  if (!fp) {
    fprintf(stderr, "abihost: cannot open %s\n", path);
    return false;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  g_out_fd = 2;
  uint64_t errs = atomic_load(&g_reply_errs);
  while ((len = getline(&line, &cap, fp)) > 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    if (len == 0 || line[0] == '#') continue;
    task *t = parse_task(line, (size_t)len);
    if (!t) continue;
    if (strcmp(t->tok[0], "cluster") && strcmp(t->tok[0], "routes")) {
      reply_err(t->id, "bench setup: %s is not cluster or routes", t->tok[0]);
    } else {
      handle_main_cmd(t);
    }
    free_task(t);
  }
  free(line);
  fclose(fp);
  g_out_fd = 1;
  return atomic_load(&g_reply_errs) == errs;
}

static int run_bench(uint64_t n, uint64_t warmup, uint64_t settle_ms, const char *chainf, const char *setupf,
                     const char *reqf, const char *respf, bool verbose) {
  chain *ch = bench_chain(chainf);
  if (!ch) return 1;
  if (setupf && !bench_setup(setupf)) return 1;
  route_table *rt = g_routes; // the stream's table, as open takes it
  // Let the module's background work (the picker's first scrapes) settle.
  if (settle_ms) {
    struct timespec ts = {(time_t)(settle_ms / 1000), (long)(settle_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  recorded rq, rs;
  if (!read_recorded(reqf, &rq) || !read_recorded(respf, &rs)) {
    fprintf(stderr, "abihost: cannot read %s or %s\n", reqf, respf);
    return 1;
  }
  worker *w = xcalloc(1, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  tls_worker = w;
  uint64_t id = 1;
  bench_sink sink;
  for (uint64_t i = 0; i < warmup; i++) {
    memset(&sink, 0, sizeof sink);
    sink.verbose = verbose && i == 0;
    bench_one(ch, rt, w, id++, &rq, &rs, &sink);
  }
  uint64_t hk0[HK__COUNT], cb0[CB__COUNT];
  for (int i = 0; i < HK__COUNT; i++) hk0[i] = atomic_load(&g_hk_count[i]);
  for (int i = 0; i < CB__COUNT; i++) cb0[i] = atomic_load(&g_cb_count[i]);
  uint64_t local = 0, upstream_ok = 0, bad = 0, bytes_down = 0, routed = 0;
  uint64_t allocs0 = g_mod.heap_allocs ? g_mod.heap_allocs() : 0;
  uint64_t cgo0 = g_mod.cgo_calls ? g_mod.cgo_calls() : 0;
  struct timespec c0, p0;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &p0);
  CALLGRIND_ZERO_STATS;
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    memset(&sink, 0, sizeof sink);
    sink.verbose = verbose && warmup == 0 && i == 0;
    bench_one(ch, rt, w, id++, &rq, &rs, &sink);
    if (sink.local_reply) local++;
    if (sink.routed) routed++;
    if (sink.up_done && sink.down_done && !sink.local_reply) upstream_ok++;
    if (!sink.down_done) bad++;
    bytes_down += sink.down_bytes;
  }
  uint64_t el = now_ns() - t0;
  CALLGRIND_DUMP_STATS_AT("measured");
  // Go heap allocations of the whole process (background goroutines too);
  // -1 when the module does not say.
  double allocs = g_mod.heap_allocs ? (double)(g_mod.heap_allocs() - allocs0) / (double)n : -1;
  // Calls from Go into C (the callbacks' crossings, several callbacks in
  // one when the module batches them); -1 when the module does not say.
  double cgo = g_mod.cgo_calls ? (double)(g_mod.cgo_calls() - cgo0) / (double)n : -1;
  struct timespec c1, p1;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &p1);
  double thread_cpu = (double)(c1.tv_sec - c0.tv_sec) * 1e9 + (double)(c1.tv_nsec - c0.tv_nsec);
  double process_cpu = (double)(p1.tv_sec - p0.tv_sec) * 1e9 + (double)(p1.tv_nsec - p0.tv_nsec);
  sbuf b;
  sb_init(&b);
  sb_adds(&b, "\"hooks\":");
  uint64_t hooks = per_request_json(&b, hk_names, g_hk_count, hk0, HK__COUNT, n);
  sb_adds(&b, ",\"callbacks\":");
  uint64_t cbs = per_request_json(&b, cb_names, g_cb_count, cb0, CB__COUNT, n);
  printf("{\"n\":%llu,\"ns_per_req\":%.1f,\"thread_cpu_ns_per_req\":%.1f,\"process_cpu_ns_per_req\":%.1f,"
         "\"hooks_per_req\":%.2f,\"callbacks_per_req\":%.2f,\"abicalls_per_req\":%.2f,"
         "\"local_replies\":%llu,\"upstream_ok\":%llu,\"routed\":%llu,\"incomplete\":%llu,\"client_bytes_per_req\":%.1f,"
         "\"go_allocs_per_req\":%.2f,\"go_c_calls_per_req\":%.2f,%s}\n",
         (unsigned long long)n, (double)el / (double)n, thread_cpu / (double)n, process_cpu / (double)n,
         (double)hooks / (double)n, (double)cbs / (double)n,
         (double)(hooks + cbs) / (double)n, (unsigned long long)local, (unsigned long long)upstream_ok,
         (unsigned long long)routed, (unsigned long long)bad, (double)bytes_down / (double)n, allocs, cgo, b.p);
  fflush(stdout);
  sb_free(&b);
  return bad ? 2 : 0;
}

// ------------------------------------------------------------------- main

static void *sym(const char *name, bool required) {
  void *p = dlsym(g_mod.handle, name);
  if (!p && required) {
    fprintf(stderr, "abihost: the module does not export %s\n", name);
    printf("{\"t\":\"fatal\",\"msg\":\"the module does not export %s\"}\n", name);
    exit(1);
  }
  return p;
}

static void load_module(const char *path) {
  // As Envoy: RTLD_LAZY (a host implements only what is called), local
  // symbols, and do_not_close (a Go runtime cannot be unloaded).
  g_mod.handle = dlopen(path, RTLD_LAZY | RTLD_LOCAL | RTLD_NODELETE);
  if (!g_mod.handle) {
    const char *e = dlerror();
    fprintf(stderr, "abihost: dlopen %s: %s\n", path, e);
    sbuf b;
    sb_init(&b);
    sb_adds(&b, "{\"t\":\"fatal\",\"msg\":");
    sb_jstr(&b, e, strlen(e));
    sb_adds(&b, "}");
    out_line(&b);
    exit(1);
  }
  g_mod.program_init = sym("envoy_dynamic_module_on_program_init", true);
  g_mod.config_new = sym("envoy_dynamic_module_on_http_filter_config_new", true);
  g_mod.config_destroy = sym("envoy_dynamic_module_on_http_filter_config_destroy", true);
  g_mod.filter_new = sym("envoy_dynamic_module_on_http_filter_new", true);
  g_mod.request_headers = sym("envoy_dynamic_module_on_http_filter_request_headers", true);
  g_mod.request_body = sym("envoy_dynamic_module_on_http_filter_request_body", true);
  g_mod.request_trailers = sym("envoy_dynamic_module_on_http_filter_request_trailers", true);
  g_mod.response_headers = sym("envoy_dynamic_module_on_http_filter_response_headers", true);
  g_mod.response_body = sym("envoy_dynamic_module_on_http_filter_response_body", true);
  g_mod.response_trailers = sym("envoy_dynamic_module_on_http_filter_response_trailers", true);
  g_mod.stream_complete = sym("envoy_dynamic_module_on_http_filter_stream_complete", true);
  g_mod.filter_destroy = sym("envoy_dynamic_module_on_http_filter_destroy", true);
  g_mod.scheduled = sym("envoy_dynamic_module_on_http_filter_scheduled", true);
  g_mod.config_scheduled = sym("envoy_dynamic_module_on_http_filter_config_scheduled", true);
  g_mod.local_reply = sym("envoy_dynamic_module_on_http_filter_local_reply", false);
  g_mod.route_config_new = sym("envoy_dynamic_module_on_http_filter_per_route_config_new", false);
  g_mod.route_config_destroy = sym("envoy_dynamic_module_on_http_filter_per_route_config_destroy", false);
  g_mod.heap_allocs = sym("inferencepool_heap_allocs", false);
  g_mod.cgo_calls = sym("inferencepool_cgo_calls", false);
  count_hook(NULL, HK_program_init);
  const char *v = g_mod.program_init();
  if (!v) {
    fprintf(stderr, "abihost: envoy_dynamic_module_on_program_init returned NULL: Envoy unloads the module\n");
    printf("{\"t\":\"fatal\",\"msg\":\"on_program_init returned NULL\"}\n");
    exit(1);
  }
  if (strcmp(v, ENVOY_DYNAMIC_MODULES_ABI_VERSION) != 0) {
    fprintf(stderr, "abihost: ABI version mismatch: module %s, host (abi.h) %s\n", v, ENVOY_DYNAMIC_MODULES_ABI_VERSION);
    printf("{\"t\":\"fatal\",\"msg\":\"ABI version mismatch: module %s, host %s\"}\n", v,
           ENVOY_DYNAMIC_MODULES_ABI_VERSION);
    exit(1);
  }
}

static int parse_level(const char *s) {
  for (int i = 0; i < 7; i++)
    if (strcmp(s, lvl_names[i]) == 0) return i;
  if (strcmp(s, "warning") == 0) return 3;
  return -1;
}

static void usage(void) {
  fprintf(stderr,
          "usage: abihost [--lib PATH] [--workers N] [--log-level LEVEL] [--log-events] [--strict] [--no-retry-buffering]\n"
          "               [--buffer-limit BYTES]\n"
          "       abihost [--lib PATH] --bench N [--warmup W] [--settle-ms MS] --chain FILE [--setup FILE] --request FILE\n"
          "               --response FILE [--verbose]\n"
          "The library defaults to $ABIHOST_LIB, else dist/libinferencepool.so. The log level defaults to\n"
          "$ABIHOST_LOG_LEVEL, else info (warn in bench mode). Protocol: test/abihost/PROTOCOL.md.\n");
}

int main(int argc, char **argv) {
  const char *lib = getenv("ABIHOST_LIB");
  if (!lib) lib = "dist/libinferencepool.so";
  uint64_t bench = 0, warmup = 100, settle_ms = 0;
  bool bench_mode = false, verbose = false;
  const char *chainf = NULL, *setupf = NULL, *reqf = NULL, *respf = NULL;
  const char *lvl = getenv("ABIHOST_LOG_LEVEL");
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *next = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--lib") && next) {
      lib = next;
      i++;
    } else if (!strcmp(a, "--workers") && next) {
      g_nworkers = atoi(next);
      i++;
    } else if (!strcmp(a, "--log-level") && next) {
      lvl = next;
      i++;
    } else if (!strcmp(a, "--log-events")) {
      g_log_events = true;
    } else if (!strcmp(a, "--buffer-limit") && next) {
      g_buffer_limit = strtoull(next, NULL, 10);
      i++;
    } else if (!strcmp(a, "--no-retry-buffering")) {
      g_router_retry_buffering = false;
    } else if (!strcmp(a, "--strict")) {
      g_strict = true;
    } else if (!strcmp(a, "--bench") && next) {
      bench = strtoull(next, NULL, 10);
      bench_mode = true;
      i++;
    } else if (!strcmp(a, "--warmup") && next) {
      warmup = strtoull(next, NULL, 10);
      i++;
    } else if (!strcmp(a, "--settle-ms") && next) {
      settle_ms = strtoull(next, NULL, 10);
      i++;
    } else if (!strcmp(a, "--chain") && next) {
      chainf = next;
      i++;
    } else if (!strcmp(a, "--setup") && next) {
      setupf = next;
      i++;
    } else if (!strcmp(a, "--request") && next) {
      reqf = next;
      i++;
    } else if (!strcmp(a, "--response") && next) {
      respf = next;
      i++;
    } else if (!strcmp(a, "--verbose")) {
      verbose = true;
    } else {
      usage();
      return 2;
    }
  }
  g_log_level = bench_mode ? envoy_dynamic_module_type_log_level_Warn : envoy_dynamic_module_type_log_level_Info;
  if (lvl) {
    int l = parse_level(lvl);
    if (l < 0) {
      fprintf(stderr, "abihost: unknown log level %s\n", lvl);
      return 2;
    }
    g_log_level = l;
  }
  if (g_nworkers < 1 || g_nworkers > 64) {
    fprintf(stderr, "abihost: --workers must be 1..64\n");
    return 2;
  }
  const char *gd = getenv("GODEBUG");
  if (!gd || !strstr(gd, "cgocheck=0"))
    fprintf(stderr, "abihost: warning: GODEBUG=cgocheck=0 is not set; Envoy runs Go modules with it\n");
  g_log_sink = proto_log;
  pthread_mutex_init(&g_main.mu, NULL);
  pthread_cond_init(&g_main.cv, NULL);
  g_main.index = -1;
  tls_worker = &g_main;
  load_module(lib);

  if (bench_mode) {
    g_poison = false; // measure the module, not the host's debugging aids
    // Keep freed memory in the heap: glibc's default trims (and mmaps large
    // blocks) on every MiB-sized body, so each exchange page-faulted its
    // frames in again, which Envoy's allocator does not do.
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    if (!chainf || !reqf || !respf || bench == 0) {
      usage();
      return 2;
    }
    return run_bench(bench, warmup, settle_ms, chainf, setupf, reqf, respf, verbose);
  }

  g_workers = xcalloc((size_t)g_nworkers, sizeof(worker *));
  for (int i = 0; i < g_nworkers; i++) {
    worker *w = xcalloc(1, sizeof *w);
    w->index = i;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    g_workers[i] = w;
    pthread_create(&w->tid, NULL, worker_main, w);
  }
  sbuf b;
  sb_init(&b);
  sb_printf(&b, "{\"t\":\"ready\",\"abi\":\"%s\",\"workers\":%d,\"pid\":%d}", ENVOY_DYNAMIC_MODULES_ABI_VERSION,
            g_nworkers, (int)getpid());
  out_line(&b);
  sb_free(&b);
  pthread_t reader;
  pthread_create(&reader, NULL, reader_main, NULL);
  main_loop();
  return 0;
}
