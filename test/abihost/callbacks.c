// Envoy's side of the ABI: every envoy_dynamic_module_callback_* that
// libinferencepool.so references (callbacks.def), with the semantics of
// abi.h and of Envoy v1.39's abi_impl.cc. Stream callbacks must come from the
// stream's worker thread while one of its hooks (or a scheduled callback)
// runs; anything else is recorded as a violation and refused.
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abihost.h"

const char *cb_names[CB__COUNT] = {
#define CB(name) #name,
#include "callbacks.def"
#undef CB
};
const char *hk_names[HK__COUNT] = {
    "program_init",  "http_filter_config_new", "http_filter_config_destroy", "http_filter_new",
    "request_headers", "request_body",         "request_trailers",           "response_headers",
    "response_body", "response_trailers",      "stream_complete",            "http_filter_destroy",
    "scheduled",     "config_scheduled",       "local_reply",
};
_Atomic uint64_t g_cb_count[CB__COUNT];
_Atomic uint64_t g_hk_count[HK__COUNT];
_Atomic uint64_t g_foreign_violations;

#define UNIMPLEMENTED(name)                                                                                  \
  do {                                                                                                       \
    fprintf(stderr, "abihost: unimplemented callback envoy_dynamic_module_callback_" #name "\n");           \
    fflush(stderr);                                                                                          \
    abort();                                                                                                 \
  } while (0)

static inline void count_cb(int cb) { atomic_fetch_add_explicit(&g_cb_count[cb], 1, memory_order_relaxed); }

// The filter behind filter_envoy_ptr, if the call is legal here.
static hfilter *filter_for(void *p, int cb) {
  count_cb(cb);
  hfilter *f = p;
  if (!f || f->magic != HFILTER_MAGIC) {
    fprintf(stderr, "abihost: envoy_dynamic_module_callback_%s: invalid filter_envoy_ptr %p\n", cb_names[cb], p);
    fflush(stderr);
    abort();
  }
  stream *st = tls_hook.st;
  if (!st) {
    atomic_fetch_add(&g_foreign_violations, 1);
    atomic_fetch_add(&f->foreign_calls, 1);
    violation(NULL,
              "envoy_dynamic_module_callback_%s called outside any hook or scheduled callback (from a goroutine or "
              "another thread?); refused",
              cb_names[cb]);
    return NULL;
  }
  if (f->st != st) {
    violation(st, "envoy_dynamic_module_callback_%s called for a filter of another stream or a destroyed one; refused",
              cb_names[cb]);
    return NULL;
  }
  st->callbacks++;
  return f;
}

static hmap *header_map(stream *st, envoy_dynamic_module_type_http_header_type t) {
  if (st->parent) {
    // An upstream filter edits the router's request headers and trailers
    // (shared by every try); its response headers and trailers are its own
    // until the router takes them.
    stream *ds = st->parent;
    switch (t) {
    case envoy_dynamic_module_type_http_header_type_RequestHeader:
      return ds->has_req_h ? &ds->req_h : NULL;
    case envoy_dynamic_module_type_http_header_type_RequestTrailer:
      return ds->has_req_t ? &ds->req_t : NULL;
    case envoy_dynamic_module_type_http_header_type_ResponseHeader:
      return st->has_resp_h && !st->resp_forwarded ? &st->resp_h : NULL;
    case envoy_dynamic_module_type_http_header_type_ResponseTrailer:
      return st->has_resp_t && !st->resp_t_forwarded ? &st->resp_t : NULL;
    }
    return NULL;
  }
  switch (t) {
  case envoy_dynamic_module_type_http_header_type_RequestHeader:
    return st->has_req_h ? &st->req_h : NULL;
  case envoy_dynamic_module_type_http_header_type_RequestTrailer:
    return st->has_req_t ? &st->req_t : NULL;
  case envoy_dynamic_module_type_http_header_type_ResponseHeader:
    return st->has_resp_h ? &st->resp_h : NULL;
  case envoy_dynamic_module_type_http_header_type_ResponseTrailer:
    return st->has_resp_t ? &st->resp_t : NULL;
  }
  return NULL;
}

static body *body_of(hfilter *f, envoy_dynamic_module_type_http_body_type t) {
  stream *st = f->st;
  switch (t) {
  case envoy_dynamic_module_type_http_body_type_ReceivedRequestBody:
    return f->cur_req_body;
  case envoy_dynamic_module_type_http_body_type_BufferedRequestBody:
    return st->buf_req;
  case envoy_dynamic_module_type_http_body_type_ReceivedResponseBody:
    return f->cur_resp_body;
  case envoy_dynamic_module_type_http_body_type_BufferedResponseBody:
    return st->buf_resp;
  }
  return NULL;
}

// ------------------------------------------------------------- logging

int g_log_level = envoy_dynamic_module_type_log_level_Info;
bool g_log_events;
void (*g_log_sink)(stream *st, int level, const char *msg, size_t n);

static const char *level_name(int l) {
  static const char *names[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  return l >= 0 && l <= 6 ? names[l] : "?";
}

bool envoy_dynamic_module_callback_log_enabled(envoy_dynamic_module_type_log_level level) {
  count_cb(CB_log_enabled);
  if (tls_creating && level >= envoy_dynamic_module_type_log_level_Warn) return true;
  return (int)level >= g_log_level && level < envoy_dynamic_module_type_log_level_Off;
}

void envoy_dynamic_module_callback_log(envoy_dynamic_module_type_log_level level,
                                       envoy_dynamic_module_type_module_buffer message) {
  count_cb(CB_log);
  if (tls_creating) { // config creation: keep what the module says for the rejection message
    fconfig *c = tls_creating;
    if (c->creation_logs.n) sb_adds(&c->creation_logs, "\n");
    sb_add(&c->creation_logs, message.ptr, message.length);
  }
  bool enabled = (int)level >= g_log_level && level < envoy_dynamic_module_type_log_level_Off;
  if (!enabled && !(tls_creating && level >= envoy_dynamic_module_type_log_level_Warn)) return;
  stream *st = tls_hook.st;
  if (st)
    fprintf(stderr, "abihost [%s][stream %llu] %.*s\n", level_name(level), (unsigned long long)st->id,
            (int)message.length, message.ptr);
  else
    fprintf(stderr, "abihost [%s] %.*s\n", level_name(level), (int)message.length, message.ptr);
  if (g_log_events && g_log_sink) g_log_sink(st, level, message.ptr, message.length);
}

// ------------------------------------------------------------- headers

bool envoy_dynamic_module_callback_http_get_header(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                   envoy_dynamic_module_type_http_header_type t,
                                                   envoy_dynamic_module_type_module_buffer key,
                                                   envoy_dynamic_module_type_envoy_buffer *result, size_t index,
                                                   size_t *optional_size) {
  hfilter *f = filter_for(p, CB_http_get_header);
  hmap *m = f ? header_map(f->st, t) : NULL;
  result->ptr = NULL;
  result->length = 0;
  if (!m) {
    if (optional_size) *optional_size = 0;
    return false;
  }
  const char *v;
  size_t vn;
  size_t count = hm_get(m, key.ptr, key.length, index, &v, &vn);
  if (optional_size) *optional_size = count;
  if (index >= count) return false;
  result->ptr = v;
  result->length = vn;
  return true;
}

size_t envoy_dynamic_module_callback_http_get_headers_size(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                           envoy_dynamic_module_type_http_header_type t) {
  hfilter *f = filter_for(p, CB_http_get_headers_size);
  hmap *m = f ? header_map(f->st, t) : NULL;
  return m ? m->n : 0;
}

bool envoy_dynamic_module_callback_http_get_headers(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                    envoy_dynamic_module_type_http_header_type t,
                                                    envoy_dynamic_module_type_envoy_http_header *out) {
  hfilter *f = filter_for(p, CB_http_get_headers);
  hmap *m = f ? header_map(f->st, t) : NULL;
  if (!m) return false;
  for (size_t i = 0; i < m->n; i++) {
    out[i].key_ptr = m->e[i].k;
    out[i].key_length = m->e[i].kn;
    out[i].value_ptr = m->e[i].v;
    out[i].value_length = m->e[i].vn;
  }
  return true;
}

bool envoy_dynamic_module_callback_http_set_header(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                   envoy_dynamic_module_type_http_header_type t,
                                                   envoy_dynamic_module_type_module_buffer key,
                                                   envoy_dynamic_module_type_module_buffer value) {
  hfilter *f = filter_for(p, CB_http_set_header);
  hmap *m = f ? header_map(f->st, t) : NULL;
  if (!m) return false;
  // A null value removes the header. So does an empty one: the Go SDK
  // cannot tell "" from nil, and DESIGN.md section 9 relies on it.
  if (value.ptr == NULL || value.length == 0)
    hm_remove(m, key.ptr, key.length);
  else
    hm_set(m, key.ptr, key.length, value.ptr, value.length);
  return true;
}

bool envoy_dynamic_module_callback_http_add_header(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                   envoy_dynamic_module_type_http_header_type t,
                                                   envoy_dynamic_module_type_module_buffer key,
                                                   envoy_dynamic_module_type_module_buffer value) {
  hfilter *f = filter_for(p, CB_http_add_header);
  hmap *m = f ? header_map(f->st, t) : NULL;
  if (!m || value.ptr == NULL) return false;
  hm_add(m, key.ptr, key.length, value.ptr, value.length);
  return true;
}

// --------------------------------------------------------------- bodies

size_t envoy_dynamic_module_callback_http_get_body_size(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                        envoy_dynamic_module_type_http_body_type t) {
  hfilter *f = filter_for(p, CB_http_get_body_size);
  body *b = f ? body_of(f, t) : NULL;
  return b ? b->total : 0;
}

size_t envoy_dynamic_module_callback_http_get_body_chunks_size(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                               envoy_dynamic_module_type_http_body_type t) {
  hfilter *f = filter_for(p, CB_http_get_body_chunks_size);
  body *b = f ? body_of(f, t) : NULL;
  return b ? b->ns : 0;
}

bool envoy_dynamic_module_callback_http_get_body_chunks(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                        envoy_dynamic_module_type_http_body_type t,
                                                        envoy_dynamic_module_type_envoy_buffer *out) {
  hfilter *f = filter_for(p, CB_http_get_body_chunks);
  body *b = f ? body_of(f, t) : NULL;
  if (!b) return false;
  for (size_t i = 0; i < b->ns; i++) {
    out[i].ptr = b->s[i].base + b->s[i].off;
    out[i].length = b->s[i].len;
  }
  return true;
}

bool envoy_dynamic_module_callback_http_append_body(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                    envoy_dynamic_module_type_http_body_type t,
                                                    envoy_dynamic_module_type_module_buffer data) {
  hfilter *f = filter_for(p, CB_http_append_body);
  if (!f) return false;
  body *b = body_of(f, t);
  if (!b) {
    if (t == envoy_dynamic_module_type_http_body_type_BufferedRequestBody ||
        t == envoy_dynamic_module_type_http_body_type_BufferedResponseBody) {
      // addDecodedData / addEncodedData: buffers it, or, from a trailers
      // hook, sends it on to the next filters.
      fm_add_data(f, t == envoy_dynamic_module_type_http_body_type_BufferedRequestBody, data.ptr, data.length);
      return true;
    }
    return false; // the received body exists only in the body hook
  }
  body_add(b, data.ptr, data.length);
  if (b == f->st->buf_req) fm_check_buffer_limit(f->st, true);
  if (b == f->st->buf_resp) fm_check_buffer_limit(f->st, false);
  return true;
}

bool envoy_dynamic_module_callback_http_drain_body(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                   envoy_dynamic_module_type_http_body_type t, size_t n) {
  hfilter *f = filter_for(p, CB_http_drain_body);
  body *b = f ? body_of(f, t) : NULL;
  if (!b) return false;
  body_drain(b, n < b->total ? n : b->total);
  return true;
}

bool envoy_dynamic_module_callback_http_received_buffered_request_body(
    envoy_dynamic_module_type_http_filter_envoy_ptr p) {
  hfilter *f = filter_for(p, CB_http_received_buffered_request_body);
  return f && f->cur_req_body && f->cur_req_body == f->st->buf_req;
}

bool envoy_dynamic_module_callback_http_received_buffered_response_body(
    envoy_dynamic_module_type_http_filter_envoy_ptr p) {
  hfilter *f = filter_for(p, CB_http_received_buffered_response_body);
  return f && f->cur_resp_body && f->cur_resp_body == f->st->buf_resp;
}

// -------------------------------------------------------------- metadata

// The metadata a source names: the stream's dynamic metadata (shared by the
// downstream chain and every try), or the Host / HostLocality metadata of
// the upstream host in stream info (the latest try's; none before the
// router's first try). Route and Cluster metadata: none here.
static meta *md_source(hfilter *f, envoy_dynamic_module_type_metadata_source src) {
  if (!f) return NULL;
  stream *st = si(f->st);
  switch (src) {
  case envoy_dynamic_module_type_metadata_source_Dynamic:
    return &st->md;
  case envoy_dynamic_module_type_metadata_source_Host:
    return st->host ? (meta *)&st->host->md : NULL;
  case envoy_dynamic_module_type_metadata_source_HostLocality:
    return st->host ? (meta *)&st->host->lmd : NULL;
  default:
    return NULL;
  }
}

static mval *dyn_get(hfilter *f, envoy_dynamic_module_type_metadata_source src,
                     envoy_dynamic_module_type_module_buffer ns, envoy_dynamic_module_type_module_buffer key) {
  meta *m = md_source(f, src);
  return m ? md_get(m, ns.ptr, ns.length, key.ptr, key.length) : NULL;
}

void envoy_dynamic_module_callback_http_set_dynamic_metadata_string(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                                    envoy_dynamic_module_type_module_buffer ns,
                                                                    envoy_dynamic_module_type_module_buffer key,
                                                                    envoy_dynamic_module_type_module_buffer value) {
  hfilter *f = filter_for(p, CB_http_set_dynamic_metadata_string);
  if (!f) return;
  mval *v = md_put(&si(f->st)->md, ns.ptr, ns.length, key.ptr, key.length);
  v->k = MV_STR;
  v->s = xmemdup(value.ptr, value.length);
  v->sn = value.length;
}

void envoy_dynamic_module_callback_http_set_dynamic_metadata_number(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                                    envoy_dynamic_module_type_module_buffer ns,
                                                                    envoy_dynamic_module_type_module_buffer key,
                                                                    double value) {
  hfilter *f = filter_for(p, CB_http_set_dynamic_metadata_number);
  if (!f) return;
  mval *v = md_put(&si(f->st)->md, ns.ptr, ns.length, key.ptr, key.length);
  v->k = MV_NUM;
  v->num = value;
}

void envoy_dynamic_module_callback_http_set_dynamic_metadata_bool(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                                  envoy_dynamic_module_type_module_buffer ns,
                                                                  envoy_dynamic_module_type_module_buffer key,
                                                                  bool value) {
  hfilter *f = filter_for(p, CB_http_set_dynamic_metadata_bool);
  if (!f) return;
  mval *v = md_put(&si(f->st)->md, ns.ptr, ns.length, key.ptr, key.length);
  v->k = MV_BOOL;
  v->b = value;
}

static mval *list_append(hfilter *f, envoy_dynamic_module_type_module_buffer ns,
                         envoy_dynamic_module_type_module_buffer key) {
  mval *v = md_get(&si(f->st)->md, ns.ptr, ns.length, key.ptr, key.length);
  if (v && v->k != MV_LIST) return NULL;
  if (!v) {
    v = md_put(&si(f->st)->md, ns.ptr, ns.length, key.ptr, key.length);
    v->k = MV_LIST;
  }
  if (v->nitems == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 4;
    v->items = xrealloc(v->items, v->cap * sizeof(mval));
  }
  mval *item = &v->items[v->nitems++];
  memset(item, 0, sizeof *item);
  return item;
}

bool envoy_dynamic_module_callback_http_add_dynamic_metadata_list_string(
    envoy_dynamic_module_type_http_filter_envoy_ptr p, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, envoy_dynamic_module_type_module_buffer value) {
  hfilter *f = filter_for(p, CB_http_add_dynamic_metadata_list_string);
  mval *item = f ? list_append(f, ns, key) : NULL;
  if (!item) return false;
  item->k = MV_STR;
  item->s = xmemdup(value.ptr, value.length);
  item->sn = value.length;
  return true;
}

bool envoy_dynamic_module_callback_http_add_dynamic_metadata_list_number(
    envoy_dynamic_module_type_http_filter_envoy_ptr p, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, double value) {
  hfilter *f = filter_for(p, CB_http_add_dynamic_metadata_list_number);
  mval *item = f ? list_append(f, ns, key) : NULL;
  if (!item) return false;
  item->k = MV_NUM;
  item->num = value;
  return true;
}

bool envoy_dynamic_module_callback_http_add_dynamic_metadata_list_bool(
    envoy_dynamic_module_type_http_filter_envoy_ptr p, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, bool value) {
  hfilter *f = filter_for(p, CB_http_add_dynamic_metadata_list_bool);
  mval *item = f ? list_append(f, ns, key) : NULL;
  if (!item) return false;
  item->k = MV_BOOL;
  item->b = value;
  return true;
}

bool envoy_dynamic_module_callback_http_get_metadata_string(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                            envoy_dynamic_module_type_metadata_source src,
                                                            envoy_dynamic_module_type_module_buffer ns,
                                                            envoy_dynamic_module_type_module_buffer key,
                                                            envoy_dynamic_module_type_envoy_buffer *result) {
  mval *v = dyn_get(filter_for(p, CB_http_get_metadata_string), src, ns, key);
  if (!v || v->k != MV_STR) return false;
  result->ptr = v->s;
  result->length = v->sn;
  return true;
}

bool envoy_dynamic_module_callback_http_get_metadata_number(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                            envoy_dynamic_module_type_metadata_source src,
                                                            envoy_dynamic_module_type_module_buffer ns,
                                                            envoy_dynamic_module_type_module_buffer key,
                                                            double *result) {
  mval *v = dyn_get(filter_for(p, CB_http_get_metadata_number), src, ns, key);
  if (!v || v->k != MV_NUM) return false;
  *result = v->num;
  return true;
}

bool envoy_dynamic_module_callback_http_get_metadata_bool(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                          envoy_dynamic_module_type_metadata_source src,
                                                          envoy_dynamic_module_type_module_buffer ns,
                                                          envoy_dynamic_module_type_module_buffer key, bool *result) {
  mval *v = dyn_get(filter_for(p, CB_http_get_metadata_bool), src, ns, key);
  if (!v || v->k != MV_BOOL) return false;
  *result = v->b;
  return true;
}

bool envoy_dynamic_module_callback_http_get_metadata_list_size(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                               envoy_dynamic_module_type_metadata_source src,
                                                               envoy_dynamic_module_type_module_buffer ns,
                                                               envoy_dynamic_module_type_module_buffer key,
                                                               size_t *result) {
  mval *v = dyn_get(filter_for(p, CB_http_get_metadata_list_size), src, ns, key);
  if (!v || v->k != MV_LIST) return false;
  *result = v->nitems;
  return true;
}

static mval *list_item(mval *v, size_t index, mvkind k) {
  if (!v || v->k != MV_LIST || index >= v->nitems || v->items[index].k != k) return NULL;
  return &v->items[index];
}

bool envoy_dynamic_module_callback_http_get_metadata_list_string(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                                 envoy_dynamic_module_type_metadata_source src,
                                                                 envoy_dynamic_module_type_module_buffer ns,
                                                                 envoy_dynamic_module_type_module_buffer key,
                                                                 size_t index,
                                                                 envoy_dynamic_module_type_envoy_buffer *result) {
  mval *it = list_item(dyn_get(filter_for(p, CB_http_get_metadata_list_string), src, ns, key), index, MV_STR);
  if (!it) return false;
  result->ptr = it->s;
  result->length = it->sn;
  return true;
}

bool envoy_dynamic_module_callback_http_get_metadata_list_number(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                                 envoy_dynamic_module_type_metadata_source src,
                                                                 envoy_dynamic_module_type_module_buffer ns,
                                                                 envoy_dynamic_module_type_module_buffer key,
                                                                 size_t index, double *result) {
  mval *it = list_item(dyn_get(filter_for(p, CB_http_get_metadata_list_number), src, ns, key), index, MV_NUM);
  if (!it) return false;
  *result = it->num;
  return true;
}

bool envoy_dynamic_module_callback_http_get_metadata_list_bool(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                               envoy_dynamic_module_type_metadata_source src,
                                                               envoy_dynamic_module_type_module_buffer ns,
                                                               envoy_dynamic_module_type_module_buffer key,
                                                               size_t index, bool *result) {
  mval *it = list_item(dyn_get(filter_for(p, CB_http_get_metadata_list_bool), src, ns, key), index, MV_BOOL);
  if (!it) return false;
  *result = it->b;
  return true;
}

size_t envoy_dynamic_module_callback_http_get_metadata_keys_count(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                                  envoy_dynamic_module_type_metadata_source src,
                                                                  envoy_dynamic_module_type_module_buffer ns) {
  hfilter *f = filter_for(p, CB_http_get_metadata_keys_count);
  meta *m = md_source(f, src);
  if (!m) return 0;
  mns *n = md_ns(m, ns.ptr, ns.length, false);
  return n ? n->nk : 0;
}

bool envoy_dynamic_module_callback_http_get_metadata_keys(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                          envoy_dynamic_module_type_metadata_source src,
                                                          envoy_dynamic_module_type_module_buffer ns,
                                                          envoy_dynamic_module_type_envoy_buffer *out) {
  hfilter *f = filter_for(p, CB_http_get_metadata_keys);
  meta *m = md_source(f, src);
  if (!m) return false;
  mns *n = md_ns(m, ns.ptr, ns.length, false);
  if (!n) return false;
  for (size_t i = 0; i < n->nk; i++) {
    out[i].ptr = n->keys[i].k;
    out[i].length = n->keys[i].kn;
  }
  return true;
}

size_t envoy_dynamic_module_callback_http_get_metadata_namespaces_count(
    envoy_dynamic_module_type_http_filter_envoy_ptr p, envoy_dynamic_module_type_metadata_source src) {
  hfilter *f = filter_for(p, CB_http_get_metadata_namespaces_count);
  meta *m = md_source(f, src);
  return m ? m->n : 0;
}

bool envoy_dynamic_module_callback_http_get_metadata_namespaces(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                                envoy_dynamic_module_type_metadata_source src,
                                                                envoy_dynamic_module_type_envoy_buffer *out) {
  hfilter *f = filter_for(p, CB_http_get_metadata_namespaces);
  meta *m = md_source(f, src);
  if (!m) return false;
  for (size_t i = 0; i < m->n; i++) {
    out[i].ptr = m->ns[i].ns;
    out[i].length = m->ns[i].nsn;
  }
  return true;
}

// ---------------------------------------------------------- filter state

bool envoy_dynamic_module_callback_http_set_filter_state_bytes(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                               envoy_dynamic_module_type_module_buffer key,
                                                               envoy_dynamic_module_type_module_buffer value) {
  hfilter *f = filter_for(p, CB_http_set_filter_state_bytes);
  if (!f) return false;
  fstate *fs = &si(f->st)->fs;
  for (size_t i = 0; i < fs->n; i++)
    if (fs->e[i].kn == key.length && memcmp(fs->e[i].k, key.ptr, key.length) == 0)
      return false; // Envoy stores it ReadOnly: a second set is refused
  if (fs->n == fs->cap) {
    fs->cap = fs->cap ? fs->cap * 2 : 4;
    fs->e = xrealloc(fs->e, fs->cap * sizeof(fsentry));
  }
  fs->e[fs->n].k = xmemdup(key.ptr, key.length);
  fs->e[fs->n].kn = key.length;
  fs->e[fs->n].v = xmemdup(value.ptr, value.length);
  fs->e[fs->n].vn = value.length;
  fs->n++;
  return true;
}

bool envoy_dynamic_module_callback_http_get_filter_state_bytes(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                               envoy_dynamic_module_type_module_buffer key,
                                                               envoy_dynamic_module_type_envoy_buffer *result) {
  hfilter *f = filter_for(p, CB_http_get_filter_state_bytes);
  if (!f) return false;
  fstate *fs = &si(f->st)->fs;
  for (size_t i = 0; i < fs->n; i++)
    if (fs->e[i].kn == key.length && memcmp(fs->e[i].k, key.ptr, key.length) == 0) {
      result->ptr = fs->e[i].v;
      result->length = fs->e[i].vn;
      return true;
    }
  return false;
}

// ------------------------------------------------------------- routing

void envoy_dynamic_module_callback_http_clear_route_cache(envoy_dynamic_module_type_http_filter_envoy_ptr p) {
  hfilter *f = filter_for(p, CB_http_clear_route_cache);
  if (!f || f->st->parent) return; // upstream: no downstream callbacks, a no-op
  f->st->route_cache_clears++;
  f->st->route_resolved = false; // the next lookup matches the headers as they are now
}

void envoy_dynamic_module_callback_http_clear_route_cluster_cache(envoy_dynamic_module_type_http_filter_envoy_ptr p) {
  hfilter *f = filter_for(p, CB_http_clear_route_cluster_cache);
  if (f && !f->st->parent) f->st->cluster_cache_clears++; // upstream: a no-op
}

envoy_dynamic_module_type_http_filter_per_route_config_module_ptr
envoy_dynamic_module_callback_get_most_specific_route_config(envoy_dynamic_module_type_http_filter_envoy_ptr p) {
  hfilter *f = filter_for(p, CB_get_most_specific_route_config);
  if (!f) return NULL;
  const route *r = fm_route(si(f->st));
  for (int i = 0; r && i < r->ncfgs; i++)
    if (r->cfgs[i].filterlen == f->cfg->namelen && memcmp(r->cfgs[i].filter, f->cfg->name, f->cfg->namelen) == 0)
      return r->cfgs[i].mod;
  return NULL;
}

void envoy_dynamic_module_callback_http_add_custom_flag(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                        envoy_dynamic_module_type_module_buffer flag) {
  hfilter *f = filter_for(p, CB_http_add_custom_flag);
  if (!f) return;
  for (size_t i = 0; i < flag.length; i++)
    if (isspace((unsigned char)flag.ptr[i]) || flag.ptr[i] == 0) {
      violation(f->st, "add_custom_flag with a blank or space character");
      return;
    }
  if (flag.length == 0) {
    violation(f->st, "add_custom_flag with an empty flag");
    return;
  }
  stream *st = si(f->st);
  if (st->flags.n) sb_addc(&st->flags, ',');
  sb_add(&st->flags, flag.ptr, flag.length);
}

// ---------------------------------------------------------- continuing

void envoy_dynamic_module_callback_http_filter_continue_decoding(envoy_dynamic_module_type_http_filter_envoy_ptr p) {
  hfilter *f = filter_for(p, CB_http_filter_continue_decoding);
  if (f) fm_continue(f->st, f, true);
}

void envoy_dynamic_module_callback_http_filter_continue_encoding(envoy_dynamic_module_type_http_filter_envoy_ptr p) {
  hfilter *f = filter_for(p, CB_http_filter_continue_encoding);
  if (f) fm_continue(f->st, f, false);
}

// -------------------------------------------------------- local replies

static void headers_from_module(hmap *m, envoy_dynamic_module_type_module_http_header *h, size_t n) {
  for (size_t i = 0; i < n; i++) hm_add(m, h[i].key_ptr, h[i].key_length, h[i].value_ptr, h[i].value_length);
}

void envoy_dynamic_module_callback_http_send_response(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                      uint32_t status,
                                                      envoy_dynamic_module_type_module_http_header *headers,
                                                      size_t nheaders, envoy_dynamic_module_type_module_buffer b,
                                                      envoy_dynamic_module_type_module_buffer details) {
  hfilter *f = filter_for(p, CB_http_send_response);
  if (!f) return;
  f->sent_local_reply = true;
  local_reply r;
  memset(&r, 0, sizeof r);
  r.status = status;
  hm_init(&r.headers);
  if (headers && nheaders) headers_from_module(&r.headers, headers, nheaders);
  if (b.ptr && b.length) {
    r.body = xmemdup(b.ptr, b.length);
    r.bodylen = b.length;
  }
  if (details.ptr && details.length)
    r.details = xmemdup(details.ptr, details.length);
  else
    r.details = xmemdup("dynamic_module", 14);
  r.sender = f;
  fm_send_local_reply(f->st, &r);
}

// A filter answering by itself: the response goes through every encoder
// filter, the sender included (decoder_callbacks_->encodeHeaders).
void envoy_dynamic_module_callback_http_send_response_headers(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                              envoy_dynamic_module_type_module_http_header *headers,
                                                              size_t nheaders, bool end_stream) {
  hfilter *f = filter_for(p, CB_http_send_response_headers);
  if (!f) return;
  if (f->st->parent) {
    violation(f->st, "send_response_headers from an upstream filter: abihost does not model a response made up by an upstream filter "
                     "(refused)");
    return;
  }
  stream *st = f->st;
  if (st->has_resp_h) {
    violation(st, "send_response_headers after response headers already exist");
    return;
  }
  hm_clear(&st->resp_h);
  headers_from_module(&st->resp_h, headers, nheaders);
  st->has_resp_h = true;
  const char *v;
  size_t vn;
  if (hm_get(&st->resp_h, ":status", 7, 0, &v, &vn)) {
    st->response_code = (uint32_t)strtoul(v, NULL, 10);
    st->has_response_code = true;
  } else {
    violation(st, "send_response_headers without :status");
  }
  st->local_replies++;
  event ev = {.k = EV_LOCAL_REPLY, .status = st->response_code, .data = "send_response_headers", .len = 21,
              .who = f->cfg->name};
  if (st->emit) st->emit(st, &ev);
  fm_encode_headers(st, -1, end_stream);
}

void envoy_dynamic_module_callback_http_send_response_data(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                           envoy_dynamic_module_type_module_buffer data,
                                                           bool end_stream) {
  hfilter *f = filter_for(p, CB_http_send_response_data);
  if (!f) return;
  if (f->st->parent) {
    violation(f->st, "send_response_data from an upstream filter: abihost does not model a response made up by an upstream filter "
                     "(refused)");
    return;
  }
  body *b = body_new();
  body_add(b, data.ptr, data.length);
  fm_encode_data(f->st, -1, b, end_stream, false);
  body_free(b);
}

void envoy_dynamic_module_callback_http_send_response_trailers(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                               envoy_dynamic_module_type_module_http_header *trailers,
                                                               size_t n) {
  hfilter *f = filter_for(p, CB_http_send_response_trailers);
  if (!f) return;
  if (f->st->parent) {
    violation(f->st, "send_response_trailers from an upstream filter: abihost does not model a response made up by an upstream filter "
                     "(refused)");
    return;
  }
  hm_clear(&f->st->resp_t);
  headers_from_module(&f->st->resp_t, trailers, n);
  f->st->has_resp_t = true;
  fm_encode_trailers(f->st, -1);
}

// ------------------------------------------------------------ attributes

static bool header_attr(stream *st, const char *k, envoy_dynamic_module_type_envoy_buffer *r) {
  if (!st->has_req_h) return false;
  const char *v;
  size_t vn;
  if (!hm_get(&st->req_h, k, strlen(k), 0, &v, &vn)) return false;
  r->ptr = v;
  r->length = vn;
  return true;
}

static bool str_attr(const char *s, envoy_dynamic_module_type_envoy_buffer *r) {
  if (!s) return false;
  r->ptr = s;
  r->length = strlen(s);
  return true;
}

static bool port_of(const char *addr, uint64_t *port) {
  if (!addr) return false;
  const char *c = strrchr(addr, ':');
  if (!c) return false;
  *port = strtoull(c + 1, NULL, 10);
  return true;
}

bool envoy_dynamic_module_callback_http_filter_get_attribute_string(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                                    envoy_dynamic_module_type_attribute_id id,
                                                                    envoy_dynamic_module_type_envoy_buffer *r) {
  hfilter *f = filter_for(p, CB_http_filter_get_attribute_string);
  if (!f) return false;
  stream *st = si(f->st);
  switch (id) {
  case envoy_dynamic_module_type_attribute_id_RequestPath:
    return header_attr(st, ":path", r);
  case envoy_dynamic_module_type_attribute_id_RequestHost:
    return header_attr(st, ":authority", r);
  case envoy_dynamic_module_type_attribute_id_RequestMethod:
    return header_attr(st, ":method", r);
  case envoy_dynamic_module_type_attribute_id_RequestScheme:
    return header_attr(st, ":scheme", r);
  case envoy_dynamic_module_type_attribute_id_RequestReferer:
    return header_attr(st, "referer", r);
  case envoy_dynamic_module_type_attribute_id_RequestUserAgent:
    return header_attr(st, "user-agent", r);
  case envoy_dynamic_module_type_attribute_id_RequestId:
    return header_attr(st, "x-request-id", r);
  case envoy_dynamic_module_type_attribute_id_RequestUrlPath:
  case envoy_dynamic_module_type_attribute_id_RequestQuery: {
    envoy_dynamic_module_type_envoy_buffer path;
    if (!header_attr(st, ":path", &path)) return false;
    const char *q = memchr(path.ptr, '?', path.length);
    if (id == envoy_dynamic_module_type_attribute_id_RequestUrlPath) {
      r->ptr = path.ptr;
      r->length = q ? (size_t)(q - path.ptr) : path.length;
      return true;
    }
    if (!q) return false;
    r->ptr = q + 1;
    const char *hash = memchr(q + 1, '#', path.length - (size_t)(q + 1 - path.ptr));
    r->length = hash ? (size_t)(hash - (q + 1)) : path.length - (size_t)(q + 1 - path.ptr);
    return true;
  }
  case envoy_dynamic_module_type_attribute_id_RequestProtocol:
    return str_attr(st->protocol, r);
  case envoy_dynamic_module_type_attribute_id_UpstreamAddress:
    return str_attr(st->upstream_addr, r);
  case envoy_dynamic_module_type_attribute_id_SourceAddress:
    return str_attr(st->source_addr, r);
  case envoy_dynamic_module_type_attribute_id_DestinationAddress:
    return str_attr(st->dest_addr, r);
  case envoy_dynamic_module_type_attribute_id_XdsRouteName:
    if (!st->route_name && fm_route(st)) return str_attr(fm_route(st)->name, r);
    return str_attr(st->route_name ? st->route_name : "", r);
  case envoy_dynamic_module_type_attribute_id_ResponseCodeDetails:
    return str_attr(st->details, r);
  default:
    host_log(envoy_dynamic_module_type_log_level_Error, st, "Unsupported attribute ID %d as string", (int)id);
    return false;
  }
}

bool envoy_dynamic_module_callback_http_filter_get_attribute_int(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                                 envoy_dynamic_module_type_attribute_id id,
                                                                 uint64_t *r) {
  hfilter *f = filter_for(p, CB_http_filter_get_attribute_int);
  if (!f) return false;
  stream *st = si(f->st);
  switch (id) {
  case envoy_dynamic_module_type_attribute_id_ResponseCode:
    if (!st->has_response_code) return false;
    *r = st->response_code;
    return true;
  case envoy_dynamic_module_type_attribute_id_UpstreamPort:
    return port_of(st->upstream_addr, r);
  case envoy_dynamic_module_type_attribute_id_SourcePort:
    return port_of(st->source_addr, r);
  case envoy_dynamic_module_type_attribute_id_DestinationPort:
    return port_of(st->dest_addr, r);
  case envoy_dynamic_module_type_attribute_id_ConnectionId:
    *r = st->id;
    return true;
  default:
    host_log(envoy_dynamic_module_type_log_level_Error, st, "Unsupported attribute ID %d as int", (int)id);
    return false;
  }
}

bool envoy_dynamic_module_callback_http_filter_get_attribute_bool(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                                  envoy_dynamic_module_type_attribute_id id,
                                                                  bool *r) {
  hfilter *f = filter_for(p, CB_http_filter_get_attribute_bool);
  if (!f) return false;
  (void)r;
  host_log(envoy_dynamic_module_type_log_level_Error, f->st, "Unsupported attribute ID %d as bool", (int)id);
  return false;
}

// ---------------------------------------------------------------- metrics

static envoy_dynamic_module_type_metrics_result define(fconfig *c, int kind, envoy_dynamic_module_type_module_buffer name,
                                                       envoy_dynamic_module_type_module_buffer *labels, size_t nlabels,
                                                       size_t *id) {
  if (!c || c->magic != FCONFIG_MAGIC) {
    fprintf(stderr, "abihost: metric definition with an invalid filter_config_envoy_ptr\n");
    abort();
  }
  if (c->frozen) return envoy_dynamic_module_type_metrics_result_Frozen;
  if (c->nmetrics[kind] == c->capmetrics[kind]) {
    c->capmetrics[kind] = c->capmetrics[kind] ? c->capmetrics[kind] * 2 : 8;
    c->metrics[kind] = xrealloc(c->metrics[kind], c->capmetrics[kind] * sizeof(metric_def));
  }
  metric_def *d = &c->metrics[kind][c->nmetrics[kind]];
  d->name = xmemdup(name.ptr, name.length);
  d->nlabels = nlabels;
  d->labels = xcalloc(nlabels, sizeof(char *));
  for (size_t i = 0; i < nlabels; i++) d->labels[i] = xmemdup(labels[i].ptr, labels[i].length);
  *id = c->nmetrics[kind]++;
  // Envoy creates a stat without labels when it is defined: it reads 0.
  if (nlabels == 0) stats_add(kind, d, NULL, 0, 4, 0);
  return envoy_dynamic_module_type_metrics_result_Success;
}

envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_config_define_counter(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr c, envoy_dynamic_module_type_module_buffer name,
    envoy_dynamic_module_type_module_buffer *labels, size_t nlabels, size_t *id) {
  count_cb(CB_http_filter_config_define_counter);
  return define(c, MK_COUNTER, name, labels, nlabels, id);
}

envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_config_define_gauge(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr c, envoy_dynamic_module_type_module_buffer name,
    envoy_dynamic_module_type_module_buffer *labels, size_t nlabels, size_t *id) {
  count_cb(CB_http_filter_config_define_gauge);
  return define(c, MK_GAUGE, name, labels, nlabels, id);
}

envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_config_define_histogram(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr c, envoy_dynamic_module_type_module_buffer name,
    envoy_dynamic_module_type_module_buffer *labels, size_t nlabels, size_t *id) {
  count_cb(CB_http_filter_config_define_histogram);
  return define(c, MK_HISTOGRAM, name, labels, nlabels, id);
}

static envoy_dynamic_module_type_metrics_result use_metric(hfilter *f, int kind, size_t id,
                                                           envoy_dynamic_module_type_module_buffer *vals, size_t nvals,
                                                           int op, uint64_t value) {
  if (!f) return envoy_dynamic_module_type_metrics_result_MetricNotFound;
  fconfig *c = f->cfg;
  if (id >= c->nmetrics[kind]) return envoy_dynamic_module_type_metrics_result_MetricNotFound;
  metric_def *d = &c->metrics[kind][id];
  if (nvals != d->nlabels) return envoy_dynamic_module_type_metrics_result_InvalidLabels;
  stats_add(kind, d, vals, nvals, op, value);
  return envoy_dynamic_module_type_metrics_result_Success;
}

envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_increment_counter(
    envoy_dynamic_module_type_http_filter_envoy_ptr p, size_t id, envoy_dynamic_module_type_module_buffer *vals,
    size_t nvals, uint64_t value) {
  return use_metric(filter_for(p, CB_http_filter_increment_counter), MK_COUNTER, id, vals, nvals, 0, value);
}

envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_increment_gauge(
    envoy_dynamic_module_type_http_filter_envoy_ptr p, size_t id, envoy_dynamic_module_type_module_buffer *vals,
    size_t nvals, uint64_t value) {
  return use_metric(filter_for(p, CB_http_filter_increment_gauge), MK_GAUGE, id, vals, nvals, 0, value);
}

envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_decrement_gauge(
    envoy_dynamic_module_type_http_filter_envoy_ptr p, size_t id, envoy_dynamic_module_type_module_buffer *vals,
    size_t nvals, uint64_t value) {
  return use_metric(filter_for(p, CB_http_filter_decrement_gauge), MK_GAUGE, id, vals, nvals, 1, value);
}

envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_set_gauge(
    envoy_dynamic_module_type_http_filter_envoy_ptr p, size_t id, envoy_dynamic_module_type_module_buffer *vals,
    size_t nvals, uint64_t value) {
  return use_metric(filter_for(p, CB_http_filter_set_gauge), MK_GAUGE, id, vals, nvals, 2, value);
}

envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_record_histogram_value(
    envoy_dynamic_module_type_http_filter_envoy_ptr p, size_t id, envoy_dynamic_module_type_module_buffer *vals,
    size_t nvals, uint64_t value) {
  return use_metric(filter_for(p, CB_http_filter_record_histogram_value), MK_HISTOGRAM, id, vals, nvals, 3, value);
}

// ------------------------------------------------------------- schedulers

typedef struct {
  uint32_t magic;
  hfilter *f;
  worker *w;
} fsched;

typedef struct {
  uint32_t magic;
  fconfig *c;
} csched;

#define FSCHED_MAGIC 0x46534348u
#define CSCHED_MAGIC 0x43534348u

_Atomic uint64_t g_sched_commits, g_sched_foreign_commits, g_sched_dropped;

envoy_dynamic_module_type_http_filter_scheduler_module_ptr
envoy_dynamic_module_callback_http_filter_scheduler_new(envoy_dynamic_module_type_http_filter_envoy_ptr p) {
  hfilter *f = filter_for(p, CB_http_filter_scheduler_new);
  if (!f) return NULL;
  fsched *s = xcalloc(1, sizeof *s);
  s->magic = FSCHED_MAGIC;
  s->f = f;
  s->w = f->st->w;
  atomic_fetch_add(&f->refs, 1);
  return s;
}

void envoy_dynamic_module_callback_http_filter_scheduler_commit(
    envoy_dynamic_module_type_http_filter_scheduler_module_ptr sp, uint64_t event_id) {
  count_cb(CB_http_filter_scheduler_commit);
  fsched *s = sp;
  if (!s || s->magic != FSCHED_MAGIC) {
    fprintf(stderr, "abihost: scheduler_commit with an invalid scheduler %p\n", sp);
    abort();
  }
  hfilter *f = s->f;
  atomic_fetch_add(&g_sched_commits, 1);
  atomic_fetch_add(&f->commits, 1);
  if (tls_worker != s->w) {
    atomic_fetch_add(&g_sched_foreign_commits, 1);
    atomic_fetch_add(&f->foreign_commits, 1);
  }
  pthread_mutex_lock(&f->mu);
  bool alive = !f->destroyed && f->st;
  if (alive) atomic_fetch_add(&f->refs, 1);
  pthread_mutex_unlock(&f->mu);
  if (!alive) { // Envoy's weak pointer is gone: the event is dropped
    atomic_fetch_add(&g_sched_dropped, 1);
    return;
  }
  task *t = xcalloc(1, sizeof *t);
  t->kind = 100; // TASK_SCHEDULED
  t->f = f;
  t->event = event_id;
  worker_push(s->w, t);
}

void envoy_dynamic_module_callback_http_filter_scheduler_delete(
    envoy_dynamic_module_type_http_filter_scheduler_module_ptr sp) {
  count_cb(CB_http_filter_scheduler_delete);
  fsched *s = sp;
  if (!s) return;
  if (s->magic != FSCHED_MAGIC) {
    fprintf(stderr, "abihost: scheduler_delete with an invalid scheduler %p\n", sp);
    abort();
  }
  s->magic = 0;
  hfilter_unref(s->f);
  free(s);
}

envoy_dynamic_module_type_http_filter_config_scheduler_module_ptr
envoy_dynamic_module_callback_http_filter_config_scheduler_new(envoy_dynamic_module_type_http_filter_config_envoy_ptr c) {
  count_cb(CB_http_filter_config_scheduler_new);
  fconfig *cfg = c;
  if (!cfg || cfg->magic != FCONFIG_MAGIC) {
    fprintf(stderr, "abihost: config_scheduler_new with an invalid config %p\n", c);
    abort();
  }
  csched *s = xcalloc(1, sizeof *s);
  s->magic = CSCHED_MAGIC;
  s->c = cfg;
  atomic_fetch_add(&cfg->refs, 1);
  return s;
}

void envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
    envoy_dynamic_module_type_http_filter_config_scheduler_module_ptr sp, uint64_t event_id) {
  count_cb(CB_http_filter_config_scheduler_commit);
  csched *s = sp;
  if (!s || s->magic != CSCHED_MAGIC) {
    fprintf(stderr, "abihost: config_scheduler_commit with an invalid scheduler %p\n", sp);
    abort();
  }
  if (atomic_load(&s->c->destroyed)) return;
  atomic_fetch_add(&s->c->refs, 1);
  task *t = xcalloc(1, sizeof *t);
  t->kind = 101; // TASK_CONFIG_SCHEDULED
  t->cfg = s->c;
  t->event = event_id;
  worker_push(&g_main, t);
}

void envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
    envoy_dynamic_module_type_http_filter_config_scheduler_module_ptr sp) {
  count_cb(CB_http_filter_config_scheduler_delete);
  csched *s = sp;
  if (!s) return;
  if (s->magic != CSCHED_MAGIC) {
    fprintf(stderr, "abihost: config_scheduler_delete with an invalid scheduler %p\n", sp);
    abort();
  }
  s->magic = 0;
  fconfig_unref(s->c);
  free(s);
}

// ------------------------------------- callouts: not emulated (abort)

envoy_dynamic_module_type_http_callout_init_result envoy_dynamic_module_callback_http_filter_http_callout(
    envoy_dynamic_module_type_http_filter_envoy_ptr p, uint64_t *id, envoy_dynamic_module_type_module_buffer cluster,
    envoy_dynamic_module_type_module_http_header *h, size_t nh, envoy_dynamic_module_type_module_buffer b,
    uint64_t timeout) {
  (void)p, (void)id, (void)cluster, (void)h, (void)nh, (void)b, (void)timeout;
  UNIMPLEMENTED(http_filter_http_callout);
}

envoy_dynamic_module_type_http_callout_init_result envoy_dynamic_module_callback_http_filter_start_http_stream(
    envoy_dynamic_module_type_http_filter_envoy_ptr p, uint64_t *id, envoy_dynamic_module_type_module_buffer cluster,
    envoy_dynamic_module_type_module_http_header *h, size_t nh, envoy_dynamic_module_type_module_buffer b, bool eos,
    uint64_t timeout) {
  (void)p, (void)id, (void)cluster, (void)h, (void)nh, (void)b, (void)eos, (void)timeout;
  UNIMPLEMENTED(http_filter_start_http_stream);
}

void envoy_dynamic_module_callback_http_filter_reset_http_stream(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                                 uint64_t id) {
  (void)p, (void)id;
  UNIMPLEMENTED(http_filter_reset_http_stream);
}

bool envoy_dynamic_module_callback_http_stream_send_data(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                         uint64_t id, envoy_dynamic_module_type_module_buffer d,
                                                         bool eos) {
  (void)p, (void)id, (void)d, (void)eos;
  UNIMPLEMENTED(http_stream_send_data);
}

bool envoy_dynamic_module_callback_http_stream_send_trailers(envoy_dynamic_module_type_http_filter_envoy_ptr p,
                                                             uint64_t id,
                                                             envoy_dynamic_module_type_module_http_header *t,
                                                             size_t n) {
  (void)p, (void)id, (void)t, (void)n;
  UNIMPLEMENTED(http_stream_send_trailers);
}

envoy_dynamic_module_type_http_callout_init_result envoy_dynamic_module_callback_http_filter_config_http_callout(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr c, uint64_t *id,
    envoy_dynamic_module_type_module_buffer cluster, envoy_dynamic_module_type_module_http_header *h, size_t nh,
    envoy_dynamic_module_type_module_buffer b, uint64_t timeout) {
  (void)c, (void)id, (void)cluster, (void)h, (void)nh, (void)b, (void)timeout;
  UNIMPLEMENTED(http_filter_config_http_callout);
}

envoy_dynamic_module_type_http_callout_init_result envoy_dynamic_module_callback_http_filter_config_start_http_stream(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr c, uint64_t *id,
    envoy_dynamic_module_type_module_buffer cluster, envoy_dynamic_module_type_module_http_header *h, size_t nh,
    envoy_dynamic_module_type_module_buffer b, bool eos, uint64_t timeout) {
  (void)c, (void)id, (void)cluster, (void)h, (void)nh, (void)b, (void)eos, (void)timeout;
  UNIMPLEMENTED(http_filter_config_start_http_stream);
}

void envoy_dynamic_module_callback_http_filter_config_reset_http_stream(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr c, uint64_t id) {
  (void)c, (void)id;
  UNIMPLEMENTED(http_filter_config_reset_http_stream);
}

bool envoy_dynamic_module_callback_http_filter_config_stream_send_data(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr c, uint64_t id, envoy_dynamic_module_type_module_buffer d,
    bool eos) {
  (void)c, (void)id, (void)d, (void)eos;
  UNIMPLEMENTED(http_filter_config_stream_send_data);
}

bool envoy_dynamic_module_callback_http_filter_config_stream_send_trailers(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr c, uint64_t id,
    envoy_dynamic_module_type_module_http_header *t, size_t n) {
  (void)c, (void)id, (void)t, (void)n;
  UNIMPLEMENTED(http_filter_config_stream_send_trailers);
}
