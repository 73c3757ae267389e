// abihost: a test host that plays Envoy v1.39's side of the dynamic-module
// HTTP filter ABI (abi.h) for one shared library, so that go test can drive
// the real libinferencepool.so through the real C ABI without an Envoy binary.
//
// Layout:
//   util.c       byte buffers, base64, JSON writer, header maps, bodies,
//                dynamic metadata, filter state
//   stats.c      counters, gauges and histograms with tags
//   fm.c         the filter manager: Envoy's decode/encode iteration,
//                buffering, continue, local replies (section 9 of DESIGN.md)
//   callbacks.c  every envoy_dynamic_module_callback_* the library references
//   main.c       loading, threads and queues, the stdin/stdout protocol, bench
#ifndef ABIHOST_H
#define ABIHOST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi.h"

// ---------------------------------------------------------------- utilities

typedef struct {
  char *p;
  size_t n, cap;
} sbuf;

void sb_init(sbuf *b);
void sb_free(sbuf *b);
void sb_reserve(sbuf *b, size_t extra);
void sb_add(sbuf *b, const void *p, size_t n);
void sb_addc(sbuf *b, char c);
void sb_adds(sbuf *b, const char *s);
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// JSON helpers: strings are escaped byte-wise (UTF-8 passes through).
void sb_jstr(sbuf *b, const char *p, size_t n);
void sb_jb64(sbuf *b, const void *p, size_t n); // a JSON string holding base64
void sb_jnum(sbuf *b, double d);

size_t b64_enc_len(size_t n);
void b64_encode(const unsigned char *in, size_t n, char *out); // out: b64_enc_len(n) bytes
// Decodes in place-safe into out (capacity >= n*3/4+3); "-" decodes to empty.
// Returns decoded length or -1.
long b64_decode(const char *in, size_t n, unsigned char *out);
unsigned char *b64_dup(const char *in, size_t *outlen); // malloc'd, NUL-terminated

extern bool g_poison; // poison freed header and body memory (stale views show up)

void *xmalloc(size_t n);
void *xcalloc(size_t a, size_t b);
void *xrealloc(void *p, size_t n);
char *xmemdup(const void *p, size_t n); // NUL-terminated copy

uint64_t now_ns(void);

// Header maps: ordered entries, lower-case keys, several values per key.
// Every value is its own allocation, freed (and poisoned) when replaced, so
// a view kept across a setter is a use-after-free that valgrind reports.
typedef struct {
  char *k;
  size_t kn;
  char *v;
  size_t vn;
} hentry;

typedef struct {
  hentry *e;
  size_t n, cap;
} hmap;

void hm_init(hmap *m);
void hm_free(hmap *m);
void hm_clear(hmap *m);
void hm_add(hmap *m, const char *k, size_t kn, const char *v, size_t vn);
void hm_remove(hmap *m, const char *k, size_t kn);
void hm_set(hmap *m, const char *k, size_t kn, const char *v, size_t vn);
// Returns the count of values for key; *val/*vn get the index-th (or NULL).
size_t hm_get(const hmap *m, const char *k, size_t kn, size_t index, const char **val, size_t *vn);
void hm_copy(hmap *dst, const hmap *src);

// Bodies: a list of slices, like Envoy's Buffer::Instance. Views into a
// slice stay valid until that slice is drained or the body is modified.
typedef struct {
  char *base; // malloc'd
  size_t off, len;
} slice;

typedef struct body {
  slice *s;
  size_t ns, cap;
  size_t total;
} body;

body *body_new(void);
void body_free(body *b);
void body_add(body *b, const void *p, size_t n);
void body_move(body *dst, body *src); // moves every slice of src to dst's end
void body_drain(body *b, size_t n);
char *body_flatten(const body *b, size_t *n); // malloc'd copy

// Dynamic metadata: namespace -> key -> value (string, number, bool, list).
typedef enum { MV_STR = 1, MV_NUM, MV_BOOL, MV_LIST } mvkind;

typedef struct mval {
  mvkind k;
  char *s;
  size_t sn;
  double num;
  bool b;
  struct mval *items;
  size_t nitems, cap;
} mval;

typedef struct {
  char *k;
  size_t kn;
  mval v;
} mkey;

typedef struct {
  char *ns;
  size_t nsn;
  mkey *keys;
  size_t nk, cap;
} mns;

typedef struct {
  mns *ns;
  size_t n, cap;
} meta;

void md_free(meta *m);
mns *md_ns(meta *m, const char *ns, size_t nsn, bool create);
mval *md_get(meta *m, const char *ns, size_t nsn, const char *k, size_t kn);
mval *md_put(meta *m, const char *ns, size_t nsn, const char *k, size_t kn); // cleared value
void mv_free(mval *v);
void md_json(sbuf *b, const meta *m);

// Filter state: key -> bytes, each key set once (read-only, as Envoy).
typedef struct {
  char *k;
  size_t kn;
  char *v;
  size_t vn;
} fsentry;

typedef struct {
  fsentry *e;
  size_t n, cap;
} fstate;

// ------------------------------------------------------------------- stats

enum { MK_COUNTER = 0, MK_GAUGE = 1, MK_HISTOGRAM = 2 };

typedef struct {
  char *name;
  size_t nlabels;
  char **labels;
} metric_def;

void stats_add(int kind, const metric_def *d, envoy_dynamic_module_type_module_buffer *vals, size_t nvals,
               int op, uint64_t value); // op: 0 add, 1 sub, 2 set, 3 record, 4 define
void stats_json(sbuf *b);

// ---------------------------------------------------------- module & hooks

typedef struct {
  void *handle;
  envoy_dynamic_module_type_abi_version_module_ptr (*program_init)(void);
  envoy_dynamic_module_type_http_filter_config_module_ptr (*config_new)(
      envoy_dynamic_module_type_http_filter_config_envoy_ptr, envoy_dynamic_module_type_envoy_buffer,
      envoy_dynamic_module_type_envoy_buffer);
  void (*config_destroy)(envoy_dynamic_module_type_http_filter_config_module_ptr);
  // Per-route configs; optional (NULL when the module has none).
  envoy_dynamic_module_type_http_filter_per_route_config_module_ptr (*route_config_new)(
      envoy_dynamic_module_type_envoy_buffer, envoy_dynamic_module_type_envoy_buffer);
  void (*route_config_destroy)(envoy_dynamic_module_type_http_filter_per_route_config_module_ptr);
  envoy_dynamic_module_type_http_filter_module_ptr (*filter_new)(envoy_dynamic_module_type_http_filter_config_module_ptr,
                                                                 envoy_dynamic_module_type_http_filter_envoy_ptr);
  envoy_dynamic_module_type_on_http_filter_request_headers_status (*request_headers)(
      envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr, bool);
  envoy_dynamic_module_type_on_http_filter_request_body_status (*request_body)(
      envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr, bool);
  envoy_dynamic_module_type_on_http_filter_request_trailers_status (*request_trailers)(
      envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr);
  envoy_dynamic_module_type_on_http_filter_response_headers_status (*response_headers)(
      envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr, bool);
  envoy_dynamic_module_type_on_http_filter_response_body_status (*response_body)(
      envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr, bool);
  envoy_dynamic_module_type_on_http_filter_response_trailers_status (*response_trailers)(
      envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr);
  void (*stream_complete)(envoy_dynamic_module_type_http_filter_envoy_ptr,
                          envoy_dynamic_module_type_http_filter_module_ptr);
  void (*filter_destroy)(envoy_dynamic_module_type_http_filter_module_ptr);
  void (*scheduled)(envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr,
                    uint64_t);
  void (*config_scheduled)(envoy_dynamic_module_type_http_filter_config_envoy_ptr,
                           envoy_dynamic_module_type_http_filter_config_module_ptr, uint64_t);
  envoy_dynamic_module_type_on_http_filter_local_reply_status (*local_reply)(
      envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr, uint32_t,
      envoy_dynamic_module_type_envoy_buffer, bool);
  uint64_t (*heap_allocs)(void); // inferencepool_heap_allocs, optional: Go heap allocations so far (bench mode)
  uint64_t (*cgo_calls)(void);   // inferencepool_cgo_calls, optional: calls from Go into C so far (bench mode)
} module_t;

extern module_t g_mod;

// ------------------------------------------------------------ ABI counting

// Every hook the host calls and every callback the module makes is counted,
// per stream (when the stream is known) and per process.
enum {
#define CB(name) CB_##name,
#include "callbacks.def"
#undef CB
  CB__COUNT
};
enum {
  HK_program_init,
  HK_config_new,
  HK_config_destroy,
  HK_filter_new,
  HK_request_headers,
  HK_request_body,
  HK_request_trailers,
  HK_response_headers,
  HK_response_body,
  HK_response_trailers,
  HK_stream_complete,
  HK_filter_destroy,
  HK_scheduled,
  HK_config_scheduled,
  HK_local_reply,
  HK__COUNT
};
extern const char *cb_names[CB__COUNT];
extern const char *hk_names[HK__COUNT];
extern _Atomic uint64_t g_cb_count[CB__COUNT];
extern _Atomic uint64_t g_hk_count[HK__COUNT];

// ----------------------------------------------------------------- objects

struct worker;
struct stream;
struct event;

typedef struct fconfig { // Envoy's DynamicModuleHttpFilterConfig
  uint32_t magic;
  char *name;
  size_t namelen;
  char *config;
  size_t configlen;
  envoy_dynamic_module_type_http_filter_config_module_ptr mod;
  bool frozen;        // stat creation frozen once config_new returned
  bool creating;      // inside config_new (logs captured)
  sbuf creation_logs; // what the module logged while config_new ran
  metric_def *metrics[3];
  size_t nmetrics[3], capmetrics[3];
  _Atomic int refs; // chain + config schedulers + pending config events
  _Atomic bool destroyed;
} fconfig;

typedef struct chain {
  int n;
  fconfig **f;
  _Atomic int refs; // current chain + streams using it
} chain;

// Routes: what Envoy's route table gives a stream's filters. A route matches
// every request, or those whose request header hkey equals hval; the first
// match wins. Its per-filter configs (typed_per_filter_config) are keyed by
// the chain entry they are for: abihost names a chain entry by its
// filter_name, standing in for the HCM filter name Envoy keys them by.
typedef struct {
  char *filter;
  size_t filterlen;
  envoy_dynamic_module_type_http_filter_per_route_config_module_ptr mod;
} route_filter_cfg;

typedef struct {
  char *name;
  size_t namelen;
  char *hkey, *hval; // hkey NULL: matches every request
  size_t hkeylen, hvallen;
  char *cluster; // the route's cluster ("" for none)
  route_filter_cfg *cfgs;
  int ncfgs;
} route;

// A cluster with an upstream HTTP filter chain (HttpProtocolOptions
// http_filters, before the upstream codec) and its hosts, each with Host and
// HostLocality metadata. A stream whose cached route names such a cluster is
// forwarded by abihost's router itself: one attempt (a filter manager of its
// own) per try, see fm.c's "upstream attempts".
typedef struct uhost {
  char *addr; // "ip:port"
  meta md;    // Host (LbEndpoint) metadata
  meta lmd;   // HostLocality (LocalityLbEndpoints) metadata
} uhost;

typedef struct cluster {
  char *name;
  int nh;
  uhost *h;
  struct chain *uch; // the upstream filters (may be empty)
  _Atomic uint64_t rr; // round robin: the override_host policy's fallback
  _Atomic int refs;    // the table + streams routed to it
} cluster;

cluster *cluster_ref(const char *name, size_t n); // NULL: no such cluster
void cluster_unref(cluster *c);

typedef struct route_table {
  int n;
  route *r;
  _Atomic int refs; // current table + streams using it
} route_table;

// Envoy's ActiveStreamFilterBase, one per direction per filter.
enum { IT_CONTINUE = 0, IT_STOP_SINGLE, IT_STOP_ALL_BUFFER, IT_STOP_ALL_WATERMARK };
typedef struct {
  int iter;
  bool headers_continued;
  bool end_stream;
  bool iterate_from_current;
} afs;

typedef struct hfilter { // Envoy's DynamicModuleHttpFilter (the filter_envoy_ptr)
  uint32_t magic;
  struct stream *st; // NULL once destroyed
  int idx;           // position in the chain
  fconfig *cfg;
  envoy_dynamic_module_type_http_filter_module_ptr mod;
  bool in_continue; // the last hook returned Continue (or continue_* ran)
  bool sent_local_reply;
  body *cur_req_body; // the received body, only during the body hook
  body *cur_resp_body;
  afs dec, enc;
  _Atomic int refs;  // stream + schedulers + queued events
  bool destroyed;    // on_http_filter_destroy called (worker thread only)
  _Atomic uint64_t commits, foreign_commits; // scheduler commits, and those from other threads
  _Atomic uint64_t foreign_calls;            // stream callbacks made outside its hooks
  pthread_mutex_t mu; // guards st/destroyed against scheduler commits
} hfilter;

typedef struct {
  uint32_t status;
  hmap headers;
  char *body;
  size_t bodylen;
  char *details;
  hfilter *sender; // NULL for the router
} local_reply;

// Events leaving the filter chain: toward the upstream (router) and toward
// the client (codec); plus informational ones.
typedef enum {
  EV_UP_HEADERS,
  EV_UP_DATA,
  EV_UP_TRAILERS,
  EV_DOWN_HEADERS,
  EV_DOWN_DATA,
  EV_DOWN_TRAILERS,
  EV_LOCAL_REPLY,
  EV_RESET,
  EV_LOG,
  EV_VIOLATION,
  EV_ATTEMPT,     // the router started an attempt on a host
  EV_UA_HEADERS,  // an attempt's request headers reached the upstream codec (the wire)
  EV_UA_DATA,
  EV_UA_TRAILERS,
  EV_RETRY,       // the router gave up an attempt and retries
} evkind;

typedef struct event {
  evkind k;
  const void *data; // body bytes (when b is NULL), details, log message
  size_t len;
  const body *b; // body frames: the body (use event_bytes)
  bool eos;
  const hmap *h; // headers or trailers
  uint32_t status;
  int level;
  const char *who; // local reply sender: filter name or "router"
  const void *route; // up_headers: the route the router forwards on (a const route *, NULL: none)
  int attempt;       // attempt events: the attempt's number (1: first try)
  const char *endpoint, *source; // EV_ATTEMPT
} event;

typedef struct stream {
  uint64_t id;
  struct worker *w;
  chain *ch;
  int n;
  hfilter **f;
  afs router; // the router: last decoder filter
  bool opened, completed, destroyed;

  hmap req_h, req_t, resp_h, resp_t;
  bool has_req_h, has_req_t, has_resp_h, has_resp_t;
  body *buf_req, *buf_resp; // the shared buffered bodies (NULL until created)
  bool remote_complete;     // client sent end of stream
  bool local_complete;      // the response entered the encoder chain with end of stream
  bool dec_aborted, enc_aborted;
  bool dec_streaming, enc_streaming;
  unsigned call_state;
  bool non100_encoded;
  bool encoder_chain_complete; // the codec got end of stream
  bool reset;
  bool has_prepared_reply;
  bool req_too_large, resp_too_large;
  local_reply prepared;
  bool router_started; // up_headers emitted
  bool router_complete;

  // stream info
  meta md;
  fstate fs;
  uint32_t response_code;
  bool has_response_code;
  char *details;
  char *protocol;
  char *upstream_addr; // "ip:port" of the served endpoint
  char *source_addr, *dest_addr;
  char *route_name;
  sbuf flags; // custom flags, comma separated

  // The route cache: resolved from the request headers as they arrive,
  // before the first filter (ActiveStream::decodeHeaders); cleared by
  // clear_route_cache and then resolved again when next asked.
  route_table *rt;
  const route *route;
  bool route_resolved;
  const route *routed; // the route the router forwarded on

  // accounting
  uint64_t route_cache_clears, cluster_cache_clears;
  uint64_t hooks, callbacks;
  uint64_t scheduled_delivered, scheduled_dropped, foreign_commits;
  uint64_t local_replies;
  sbuf violations; // JSON array body of strings
  uint64_t nviolations;

  void (*emit)(struct stream *st, const struct event *ev);
  void *emit_ctx;

  // Upstream attempts. On the downstream stream: the routed cluster (when it
  // has an upstream configuration), the current attempt, the retry policy
  // and the override_host list (computed once, consumed per attempt). An
  // attempt is a stream of its own (filters, buffered bodies, iteration
  // state) whose parent is the downstream stream: request headers, trailers
  // and stream info are the parent's.
  struct stream *parent;  // an attempt: the downstream stream
  struct stream *attempt; // the current attempt (NULL: none)
  cluster *cl;
  const uhost *host; // this attempt's host (downstream: the latest attempt's)
  int nattempts;
  int retries_left;
  int retry_codes[16];
  int nretry_codes;
  bool retry_on_reset;
  bool retry_policy_set;
  bool retry_overflow; // the body outgrew the retry buffer: no retries
  char **ovr;          // override_host entries
  int novr, ovr_pos;
  bool ovr_done;
  bool pending_retry;  // start the next attempt once the current call returns
  // On an attempt:
  bool doomed;         // destroy once the current call returns (retry, reset, end, local reply)
  bool resp_forwarded; // the router took the response headers (they left the chain)
  bool resp_t_forwarded;
  bool wire_sent;      // headers reached the codec
  int status_seen;     // the status the chain handed the router
} stream;

typedef struct task {
  struct task *next;
  int kind;
  uint64_t id, sid;
  char *line; // owned command line (tokens point into it)
  char **tok;
  int ntok;
  hfilter *f; // scheduled event target (ref held)
  fconfig *cfg;
  uint64_t event;
  void *ptr;
} task;

typedef struct worker {
  int index;
  pthread_t tid;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  task *head, *tail;
  bool stop;
} worker;

extern worker **g_workers;
extern int g_nworkers;
extern worker g_main; // Envoy's main thread (config events)

void worker_push(worker *w, task *t);
task *worker_pop(worker *w, bool wait);

// Per-thread context: which worker this thread is, which stream and filter
// a hook is running for (a stack: hooks nest through continue and replies).
typedef struct {
  stream *st;
  hfilter *f;
  int depth;
  bool scheduled; // inside on_http_filter_scheduled rather than a stream hook
} hook_ctx;
extern __thread worker *tls_worker;
extern __thread hook_ctx tls_hook;

// ------------------------------------------------------ filter manager API

void fm_open(stream *st);
void fm_decode_headers(stream *st, int from, bool end_stream);
void fm_decode_data(stream *st, int from, body *data, bool end_stream, bool can_start_from_current);
void fm_decode_trailers(stream *st, int from);
void fm_encode_headers(stream *st, int from, bool end_stream);
void fm_encode_data(stream *st, int from, body *data, bool end_stream, bool can_start_from_current);
void fm_encode_trailers(stream *st, int from);
void fm_continue(stream *st, hfilter *f, bool decoder);
void fm_check_buffer_limit(stream *st, bool dec);
void fm_add_data(hfilter *f, bool dec, const void *p, size_t n); // append to a buffered body that does not exist
void fm_send_local_reply(stream *st, local_reply *r); // takes ownership of r's contents
void fm_complete(stream *st, bool reset);            // stream_complete + destroy of every filter
void fm_run_scheduled(hfilter *f, uint64_t event);
// Upstream attempts (fm.c): the harness's answers for the current attempt,
// and the router's work deferred to the end of a call (retry, destruction).
void fm_attempt_response_headers(stream *ds, bool end_stream);
void fm_attempt_response_data(stream *ds, body *data, bool end_stream);
void fm_attempt_response_trailers(stream *ds);
void fm_attempt_reset(stream *ds, const char *reason);
void fm_settle(stream *ds);
void fm_destroy_attempt(stream *ds);
// The stream whose stream info a filter of st sees (an attempt's parent).
static inline stream *si(stream *st) { return st->parent ? st->parent : st; }
void fm_free_stream(stream *st);
void hfilter_unref(hfilter *f);
void fconfig_unref(fconfig *c);
void chain_unref(chain *c);
void route_table_unref(route_table *t);
// The stream's route as Envoy's route cache has it (NULL: no route matches).
const route *fm_route(stream *st);
// Matches the route table against the request headers now (fills the cache).
void fm_refresh_route(stream *st);

void violation(stream *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void host_log(int level, stream *st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

extern int g_log_level;     // envoy_dynamic_module_type_log_level
extern bool g_log_events;   // forward module logs as protocol events
extern bool g_strict;       // abort on violations (bench/debug)
extern bool g_router_retry_buffering; // the route has a retry policy (envoy.yaml's does)
extern uint64_t g_buffer_limit;       // per_connection_buffer_limit_bytes (0: none)
extern __thread fconfig *tls_creating; // config being created on this thread

static inline void count_hook(stream *st, int h) {
  atomic_fetch_add_explicit(&g_hk_count[h], 1, memory_order_relaxed);
  if (st) st->hooks++;
}

#define HFILTER_MAGIC 0x48464c54u
#define FCONFIG_MAGIC 0x46434647u

#endif
