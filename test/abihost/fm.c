// The filter manager: how Envoy v1.39 iterates an HTTP filter chain, ported
// from source/common/http/filter_manager.cc (decodeHeaders/Data/Trailers,
// encodeHeaders/Data/Trailers, commonContinue, commonHandleAfter*Callback,
// commonHandleBufferData, handleDataIfStopAll, sendLocalReply) and from the
// dynamic-module wrapper, source/extensions/filters/http/dynamic_modules/
// filter.cc (in_continue_, sent_local_reply_, the received body pointer, and
// the last frame joining the buffered body). DESIGN.md section 9 lists the
// behaviours that matter.
//
// Decoder entries are the module filters 0..n-1 and then the router (n).
// Encoder entries run in reverse: entry e is filter n-1-e; the codec (the
// client) comes after the last encoder entry.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abihost.h"

enum {
  CS_DH = 0x01,
  CS_DD = 0x02,
  CS_DT = 0x04,
  CS_EH = 0x08,
  CS_ED = 0x10,
  CS_ET = 0x20,
  CS_DEC = CS_DH | CS_DD | CS_DT,
  CS_ENC = CS_EH | CS_ED | CS_ET,
};

enum { ROUTER_STATUS = -1 };

static void send_via_chain(stream *st, local_reply *r);
static void router_upstream_headers(stream *ds, bool eos);
static void router_response_headers(stream *a, bool eos);
static void router_response_data(stream *a, body *data, bool eos);
static void router_response_trailers(stream *a);
static void reset_stream(stream *st, const char *reason);

// -------------------------------------------------------------- helpers

static afs *dafs(stream *st, int e) { return e < st->n ? &st->f[e]->dec : &st->router; }
static hfilter *enc_filter(stream *st, int e) { return st->f[st->n - 1 - e]; }
static afs *eafs(stream *st, int e) { return &enc_filter(st, e)->enc; }
static bool stopped_all(const afs *a) { return a->iter == IT_STOP_ALL_BUFFER || a->iter == IT_STOP_ALL_WATERMARK; }

static hook_ctx enter(stream *st, hfilter *f, bool scheduled) {
  hook_ctx saved = tls_hook;
  tls_hook.st = st;
  tls_hook.f = f;
  tls_hook.depth = saved.depth + 1;
  tls_hook.scheduled = scheduled;
  return saved;
}
static void leave(hook_ctx saved) { tls_hook = saved; }

static void emit(stream *st, event *ev) {
  if (st->emit) st->emit(st, ev);
}

static void emit_body(stream *st, evkind k, body *b, bool eos) {
  event ev = {.k = k, .b = b, .len = b->total, .eos = eos};
  emit(st, &ev);
  body_drain(b, b->total);
}

static void check_status(stream *st, hfilter *f, const char *hook, int s, int max) {
  if (s < 0 || s > max) violation(st, "%s returned status %d, not a value of its enum (filter %s)", hook, s, f->cfg->name);
}

// commonHandleBufferData: data joins the stream's buffered body unless it is
// that body already.
// Envoy's buffered bodies are watermark buffers limited to the connection's
// buffer limit (per_connection_buffer_limit_bytes, 1 MiB by default). Past
// it, a buffering (not streaming) filter chain gets a local reply: 413 on the
// request path (requestDataTooLarge), 500 or a reset on the response path.
void fm_check_buffer_limit(stream *st, bool dec) {
  body *buf = dec ? st->buf_req : st->buf_resp;
  if (!g_buffer_limit || !buf || buf->total <= g_buffer_limit) return;
  if (dec ? st->dec_streaming : st->enc_streaming) return; // watermark: flow control, no reply
  if (dec ? st->req_too_large : st->resp_too_large) return;
  if (dec)
    st->req_too_large = true;
  else
    st->resp_too_large = true;
  local_reply r;
  memset(&r, 0, sizeof r);
  hm_init(&r.headers);
  r.status = dec ? 413 : 500;
  const char *text = dec ? "Payload Too Large" : "Internal Server Error";
  r.body = xmemdup(text, strlen(text));
  r.bodylen = strlen(text);
  const char *det = dec ? "request_payload_too_large" : "response_payload_too_large";
  r.details = xmemdup(det, strlen(det));
  host_log(envoy_dynamic_module_type_log_level_Info, st, "%s buffered body over the buffer limit (%llu bytes): %s",
           dec ? "request" : "response", (unsigned long long)g_buffer_limit, det);
  fm_send_local_reply(st, &r);
}

static void handle_buffer_data(stream *st, bool dec, body *data) {
  body **buf = dec ? &st->buf_req : &st->buf_resp;
  if (*buf == data) return;
  if (!*buf) *buf = body_new();
  body_move(*buf, data);
  fm_check_buffer_limit(st, dec);
}

// addDecodedData / addEncodedData, as abi_impl.cc calls them when a module
// appends to a buffered body that does not exist: the data is buffered,
// unless the filter is in its trailers hook and can iterate; then
// FilterManager dispatches it at once to the next filters, as a frame
// without end of stream, before the trailers go on ("inline dispatch").
void fm_add_data(hfilter *f, bool dec, const void *p, size_t n) {
  stream *st = f->st;
  afs *a = dec ? &f->dec : &f->enc;
  if ((st->call_state & (dec ? CS_DT : CS_ET)) && a->iter == IT_CONTINUE) {
    body *b = body_new();
    body_add(b, p, n);
    if (dec)
      fm_decode_data(st, f->idx, b, false, false);
    else
      fm_encode_data(st, st->n - 1 - f->idx, b, false, false);
    body_free(b);
    return;
  }
  body **buf = dec ? &st->buf_req : &st->buf_resp;
  if (!*buf) *buf = body_new();
  body_add(*buf, p, n);
  fm_check_buffer_limit(st, dec);
}

static void reset_stream(stream *st, const char *reason) {
  if (st->reset) return;
  st->reset = true;
  st->local_complete = true;
  st->encoder_chain_complete = true;
  event ev = {.k = EV_RESET, .data = reason, .len = strlen(reason)};
  emit(st, &ev);
}

// ------------------------------------------------------------ the hooks

static int hook_request_headers(stream *st, int e, bool eos) {
  if (e == st->n && st->parent) { // an attempt's codec: the headers go on the wire now
    st->wire_sent = true;
    event ev = {.k = EV_UA_HEADERS, .eos = eos, .h = &st->parent->req_h, .attempt = st->nattempts};
    emit(st->parent, &ev);
    return ROUTER_STATUS;
  }
  if (e == st->n) { // the router starts the upstream request on the cached route
    st->router_started = true;
    st->routed = fm_route(st);
    if (eos) st->router_complete = true;
    event ev = {.k = EV_UP_HEADERS, .eos = eos, .h = &st->req_h, .route = st->routed};
    emit(st, &ev);
    router_upstream_headers(st, eos);
    return ROUTER_STATUS;
  }
  hfilter *f = st->f[e];
  hook_ctx s = enter(st, f, false);
  count_hook(st, HK_request_headers);
  int r = g_mod.request_headers(f, f->mod, eos);
  leave(s);
  check_status(st, f, "on_http_filter_request_headers", r, 4);
  f->in_continue = r == envoy_dynamic_module_type_on_http_filter_request_headers_status_Continue;
  return r;
}

static int hook_request_body(stream *st, int e, body *chunk, bool eos) {
  if (e == st->n && st->parent) { // an attempt's codec
    event ev = {.k = EV_UA_DATA, .b = chunk, .len = chunk->total, .eos = eos, .attempt = st->nattempts};
    emit(st->parent, &ev);
    body_drain(chunk, chunk->total);
    return ROUTER_STATUS;
  }
  if (e == st->n) {
    if (eos) st->router_complete = true;
    event ev = {.k = EV_UP_DATA, .b = chunk, .len = chunk->total, .eos = eos};
    emit(st, &ev);
    stream *a = st->attempt;
    if (a && !a->doomed) {
      // router.cc decodeData: the current attempt gets a copy of the frame
      // (the original stays in the retry buffer).
      size_t n;
      char *p = body_flatten(chunk, &n);
      body *c = body_new();
      body_add(c, p, n);
      free(p);
      if (eos) a->remote_complete = true;
      fm_decode_data(a, -1, c, eos, false);
      body_free(c);
    }
    if (st->cl && g_buffer_limit && chunk != st->buf_req &&
        (st->buf_req ? st->buf_req->total : 0) + chunk->total > g_buffer_limit)
      st->retry_overflow = true; // over the retry buffer limit: retries are abandoned
    if (g_router_retry_buffering) {
      // A route with a retry policy: the router copies the data upstream and
      // keeps it for retries in the stream's buffered body (addDecodedData,
      // streaming: over the limit it stops buffering rather than replying).
      if (chunk != st->buf_req) {
        if (!st->buf_req) st->buf_req = body_new();
        if (!g_buffer_limit || st->buf_req->total + chunk->total <= g_buffer_limit)
          body_move(st->buf_req, chunk);
        else
          body_drain(chunk, chunk->total);
      }
    } else {
      body_drain(chunk, chunk->total);
    }
    return ROUTER_STATUS;
  }
  hfilter *f = st->f[e];
  // filter.cc: with buffering on, the last frame joins the buffered body
  // (addDecodedData) so that the filter sees the whole body there.
  if (eos && st->buf_req) {
    st->dec_streaming = false;
    handle_buffer_data(st, true, chunk);
  }
  f->cur_req_body = chunk;
  hook_ctx s = enter(st, f, false);
  count_hook(st, HK_request_body);
  int r = g_mod.request_body(f, f->mod, eos);
  leave(s);
  f->cur_req_body = NULL;
  check_status(st, f, "on_http_filter_request_body", r, 3);
  f->in_continue = r == envoy_dynamic_module_type_on_http_filter_request_body_status_Continue;
  return r;
}

static int hook_request_trailers(stream *st, int e) {
  if (e == st->n && st->parent) { // an attempt's codec
    event ev = {.k = EV_UA_TRAILERS, .eos = true, .h = &st->parent->req_t, .attempt = st->nattempts};
    emit(st->parent, &ev);
    return ROUTER_STATUS;
  }
  if (e == st->n) {
    st->router_complete = true;
    event ev = {.k = EV_UP_TRAILERS, .eos = true, .h = &st->req_t};
    emit(st, &ev);
    stream *a = st->attempt;
    if (a && !a->doomed) {
      a->has_req_t = true;
      a->remote_complete = true;
      fm_decode_trailers(a, -1);
    }
    return ROUTER_STATUS;
  }
  hfilter *f = st->f[e];
  hook_ctx s = enter(st, f, false);
  count_hook(st, HK_request_trailers);
  int r = g_mod.request_trailers(f, f->mod);
  leave(s);
  check_status(st, f, "on_http_filter_request_trailers", r, 1);
  f->in_continue = r == envoy_dynamic_module_type_on_http_filter_request_trailers_status_Continue;
  return r;
}

static int hook_response_headers(stream *st, int e, bool eos) {
  hfilter *f = enc_filter(st, e);
  if (f->sent_local_reply) return 0; // filter.cc: the sender does not see its own reply
  hook_ctx s = enter(st, f, false);
  count_hook(st, HK_response_headers);
  int r = g_mod.response_headers(f, f->mod, eos);
  leave(s);
  check_status(st, f, "on_http_filter_response_headers", r, 4);
  f->in_continue = r == envoy_dynamic_module_type_on_http_filter_response_headers_status_Continue;
  return r;
}

static int hook_response_body(stream *st, int e, body *chunk, bool eos) {
  hfilter *f = enc_filter(st, e);
  if (f->sent_local_reply) return 0;
  if (eos && st->buf_resp) {
    st->enc_streaming = false;
    handle_buffer_data(st, false, chunk);
  }
  f->cur_resp_body = chunk;
  hook_ctx s = enter(st, f, false);
  count_hook(st, HK_response_body);
  int r = g_mod.response_body(f, f->mod, eos);
  leave(s);
  f->cur_resp_body = NULL;
  check_status(st, f, "on_http_filter_response_body", r, 3);
  f->in_continue = r == envoy_dynamic_module_type_on_http_filter_response_body_status_Continue;
  return r;
}

static int hook_response_trailers(stream *st, int e) {
  hfilter *f = enc_filter(st, e);
  if (f->sent_local_reply) return 0;
  hook_ctx s = enter(st, f, false);
  count_hook(st, HK_response_trailers);
  int r = g_mod.response_trailers(f, f->mod);
  leave(s);
  check_status(st, f, "on_http_filter_response_trailers", r, 1);
  f->in_continue = r == envoy_dynamic_module_type_on_http_filter_response_trailers_status_Continue;
  return r;
}

// ------------------------------------------- commonHandleAfter*Callback

// Header statuses share values between request and response enums.
static bool after_headers(afs *a, int status, bool *end_stream) {
  switch (status) {
  case envoy_dynamic_module_type_on_http_filter_request_headers_status_StopIteration:
    a->iter = IT_STOP_SINGLE;
    break;
  case envoy_dynamic_module_type_on_http_filter_request_headers_status_StopAllIterationAndBuffer:
    a->iter = IT_STOP_ALL_BUFFER;
    break;
  case envoy_dynamic_module_type_on_http_filter_request_headers_status_StopAllIterationAndWatermark:
    a->iter = IT_STOP_ALL_WATERMARK;
    break;
  case envoy_dynamic_module_type_on_http_filter_request_headers_status_ContinueAndDontEndStream:
    *end_stream = false;
    a->headers_continued = true;
    break;
  default: // Continue
    a->headers_continued = true;
    break;
  }
  return !(stopped_all(a) || a->iter == IT_STOP_SINGLE);
}

static void common_continue(stream *st, bool dec, int e);

static bool after_data(stream *st, bool dec, int e, afs *a, int status, body *data) {
  if (status == 0) { // Continue
    if (a->iter == IT_STOP_SINGLE) {
      handle_buffer_data(st, dec, data);
      common_continue(st, dec, e);
      return false;
    }
    return true;
  }
  a->iter = IT_STOP_SINGLE;
  bool complete = dec ? st->remote_complete : st->local_complete;
  bool trailers = dec ? st->has_req_t : st->has_resp_t;
  body **buf = dec ? &st->buf_req : &st->buf_resp;
  if (status == 1 || status == 2) { // StopIterationAndBuffer / AndWatermark
    if (dec)
      st->dec_streaming = status == 2;
    else
      st->enc_streaming = status == 2;
    handle_buffer_data(st, dec, data);
  } else if (complete && !trailers && !*buf) {
    // StopIterationNoBuffer on the last frame: an empty buffer makes the
    // continue resume with an end-of-stream frame.
    *buf = body_new();
  }
  return false;
}

static bool after_trailers(stream *st, bool dec, int e, afs *a, int status) {
  if (status == 0) {
    if (a->iter == IT_STOP_SINGLE) {
      common_continue(st, dec, e);
      return false;
    }
    return true;
  }
  if (a->iter == IT_CONTINUE) a->iter = IT_STOP_SINGLE;
  return false;
}

static bool handle_data_if_stop_all(stream *st, bool dec, afs *a, body *data) {
  if (!stopped_all(a)) return false;
  if (dec)
    st->dec_streaming = a->iter == IT_STOP_ALL_WATERMARK;
  else
    st->enc_streaming = a->iter == IT_STOP_ALL_WATERMARK;
  handle_buffer_data(st, dec, data);
  return true;
}

// -------------------------------------------------------------- decoding

static void execute_local_reply_if_prepared(stream *st) {
  if (!st->has_prepared_reply) return;
  st->has_prepared_reply = false;
  local_reply r = st->prepared;
  memset(&st->prepared, 0, sizeof st->prepared);
  send_via_chain(st, &r);
}

static void maybe_continue_decoding(stream *st, int cde) {
  if (cde < 0) return;
  dafs(st, cde)->iter = IT_STOP_SINGLE; // continueDecoding expects a stopped filter
  common_continue(st, true, cde);
}

void fm_decode_headers(stream *st, int from, bool end_stream) {
  // ActiveStream::decodeHeaders: the connection manager picks the route from
  // the request headers before the first filter runs.
  if (from < 0 && !st->parent) fm_refresh_route(st);
  int e = from < 0 ? 0 : from + 1;
  int cde = -1;
  for (; e <= st->n; e++) {
    afs *a = dafs(st, e);
    st->call_state |= CS_DH;
    a->end_stream = end_stream && cde < 0;
    int status = hook_request_headers(st, e, a->end_stream);
    st->call_state &= ~CS_DH;
    if (e == st->n) {
      // An upstream filter's local reply while the router ran goes out now.
      if (st->dec_aborted) execute_local_reply_if_prepared(st);
      break;
    }
    if (st->dec_aborted) {
      execute_local_reply_if_prepared(st);
      status = envoy_dynamic_module_type_on_http_filter_request_headers_status_StopIteration;
    }
    bool cont = after_headers(a, status, &end_stream);
    if (st->local_complete) {
      maybe_continue_decoding(st, cde);
      return;
    }
    if (!cont) {
      maybe_continue_decoding(st, cde);
      return;
    }
    // A header-only request whose body a filter added: later filters get
    // the headers without end of stream, then the body.
    if (end_stream && st->buf_req && cde < 0) cde = e;
  }
  maybe_continue_decoding(st, cde);
}

void fm_decode_data(stream *st, int from, body *data, bool end_stream, bool can_start_from_current) {
  if (st->local_complete) return; // a response already ended: drop request data
  int e = from < 0 ? 0 : (can_start_from_current && dafs(st, from)->iterate_from_current ? from : from + 1);
  for (; e <= st->n; e++) {
    afs *a = dafs(st, e);
    if (e < st->n && handle_data_if_stop_all(st, true, a, data)) return;
    if (a->end_stream) return;
    st->call_state |= CS_DD;
    a->end_stream = end_stream && !st->has_req_t;
    int status = hook_request_body(st, e, data, a->end_stream);
    st->call_state &= ~CS_DD;
    if (e == st->n) {
      if (st->dec_aborted) execute_local_reply_if_prepared(st);
      break;
    }
    if (st->dec_aborted) {
      execute_local_reply_if_prepared(st);
      return;
    }
    if (!after_data(st, true, e, a, status, data)) break;
  }
}

void fm_decode_trailers(stream *st, int from) {
  if (st->local_complete) return;
  int e = from < 0 ? 0 : (dafs(st, from)->iterate_from_current ? from : from + 1);
  for (; e <= st->n; e++) {
    afs *a = dafs(st, e);
    if (e < st->n && stopped_all(a)) return;
    st->call_state |= CS_DT;
    int status = hook_request_trailers(st, e);
    a->end_stream = true;
    st->call_state &= ~CS_DT;
    if (e == st->n) {
      if (st->dec_aborted) execute_local_reply_if_prepared(st);
      break;
    }
    if (st->dec_aborted) {
      execute_local_reply_if_prepared(st);
      return;
    }
    if (!after_trailers(st, true, e, a, status)) return;
  }
}

// -------------------------------------------------------------- encoding

static void maybe_continue_encoding(stream *st, int cde) {
  if (cde < 0) return;
  eafs(st, cde)->iter = IT_STOP_SINGLE;
  common_continue(st, false, cde);
}

static void codec_headers(stream *st, bool eos) {
  if (st->parent) { // an attempt: the router gets the response headers
    if (eos) st->encoder_chain_complete = true;
    router_response_headers(st, eos);
    return;
  }
  st->non100_encoded = true;
  if (eos) st->encoder_chain_complete = true;
  event ev = {.k = EV_DOWN_HEADERS, .eos = eos, .h = &st->resp_h};
  emit(st, &ev);
}

void fm_encode_headers(stream *st, int from, bool end_stream) {
  if (st->reset) return;
  if (from < 0) st->local_complete = end_stream;
  int e = from < 0 ? 0 : from + 1;
  int cde = -1;
  for (; e < st->n; e++) {
    afs *a = eafs(st, e);
    st->call_state |= CS_EH;
    a->end_stream = end_stream && cde < 0;
    int status = hook_response_headers(st, e, a->end_stream);
    st->call_state &= ~CS_EH;
    if (st->enc_aborted) status = envoy_dynamic_module_type_on_http_filter_response_headers_status_StopIteration;
    bool cont = after_headers(a, status, &end_stream);
    if (!cont) {
      if (!a->end_stream) maybe_continue_encoding(st, cde);
      return;
    }
    if (end_stream && st->buf_resp && cde < 0) cde = e;
  }
  bool eos = end_stream && cde < 0;
  codec_headers(st, eos);
  if (!eos) maybe_continue_encoding(st, cde);
}

void fm_encode_data(stream *st, int from, body *data, bool end_stream, bool can_start_from_current) {
  if (st->reset || st->encoder_chain_complete) return;
  if (from < 0) st->local_complete = end_stream;
  int e = from < 0 ? 0 : (can_start_from_current && eafs(st, from)->iterate_from_current ? from : from + 1);
  for (; e < st->n; e++) {
    afs *a = eafs(st, e);
    if (handle_data_if_stop_all(st, false, a, data)) return;
    if (a->end_stream) return;
    st->call_state |= CS_ED;
    a->end_stream = end_stream && !st->has_resp_t;
    int status = hook_response_body(st, e, data, a->end_stream);
    st->call_state &= ~CS_ED;
    if (st->enc_aborted) return;
    if (!after_data(st, false, e, a, status, data)) return;
  }
  if (end_stream) st->encoder_chain_complete = true;
  if (st->parent)
    router_response_data(st, data, end_stream);
  else
    emit_body(st, EV_DOWN_DATA, data, end_stream);
}

void fm_encode_trailers(stream *st, int from) {
  if (st->reset || st->encoder_chain_complete) return;
  if (from < 0) st->local_complete = true;
  int e = from < 0 ? 0 : (eafs(st, from)->iterate_from_current ? from : from + 1);
  for (; e < st->n; e++) {
    afs *a = eafs(st, e);
    if (stopped_all(a)) return;
    st->call_state |= CS_ET;
    int status = hook_response_trailers(st, e);
    a->end_stream = true;
    st->call_state &= ~CS_ET;
    if (st->enc_aborted) return;
    if (!after_trailers(st, false, e, a, status)) return;
  }
  st->encoder_chain_complete = true;
  if (st->parent) {
    router_response_trailers(st);
    return;
  }
  event ev = {.k = EV_DOWN_TRAILERS, .eos = true, .h = &st->resp_t};
  emit(st, &ev);
}

// -------------------------------------------------------- commonContinue

static void common_continue(stream *st, bool dec, int e) {
  // canContinue: nothing continues once the response is complete.
  if (dec ? st->local_complete : (st->encoder_chain_complete || st->reset)) return;
  afs *a = dec ? dafs(st, e) : eafs(st, e);
  if (stopped_all(a)) a->iterate_from_current = true;
  a->iter = IT_CONTINUE;
  if (!a->headers_continued) {
    a->headers_continued = true;
    if (dec)
      fm_decode_headers(st, e, st->remote_complete && !st->buf_req && !st->has_req_t);
    else
      fm_encode_headers(st, e, st->local_complete && !st->buf_resp && !st->has_resp_t);
  }
  bool had_trailers = dec ? st->has_req_t : st->has_resp_t;
  body *buf = dec ? st->buf_req : st->buf_resp;
  if (buf) {
    if (dec)
      fm_decode_data(st, e, buf, st->remote_complete && !had_trailers, true);
    else
      fm_encode_data(st, e, buf, st->local_complete && !had_trailers, true);
  }
  if (had_trailers) {
    if (dec)
      fm_decode_trailers(st, e);
    else
      fm_encode_trailers(st, e);
  }
  a->iterate_from_current = false;
}

// DynamicModuleHttpFilter::continueDecoding / continueEncoding.
void fm_continue(stream *st, hfilter *f, bool dec) {
  if (f->in_continue) return; // the filter's last hook returned Continue: ignored
  if (tls_hook.f == f && !tls_hook.scheduled) {
    violation(st, "continue_%s called inside %s's own hook; Envoy resumes the chain re-entrantly there (ignored)",
              dec ? "decoding" : "encoding", f->cfg->name);
    return;
  }
  int e = dec ? f->idx : st->n - 1 - f->idx;
  afs *a = dec ? dafs(st, e) : eafs(st, e);
  if (a->iter == IT_CONTINUE) {
    // Envoy asserts !canIterate() in debug builds; in release it would
    // replay the buffered body. A filter must not get here.
    violation(st,
              "continue_%s from %s while its %s iteration is not stopped (the filter's last hook was another "
              "direction's Stop); Envoy debug builds assert (ignored)",
              dec ? "decoding" : "encoding", f->cfg->name, dec ? "request" : "response");
    return;
  }
  common_continue(st, dec, e);
  f->in_continue = true;
}

// ------------------------------------------------------------ local reply

static void build_reply_headers(stream *st, local_reply *r) {
  hm_clear(&st->resp_h);
  char code[16];
  int k = snprintf(code, sizeof code, "%u", r->status);
  hm_add(&st->resp_h, ":status", 7, code, (size_t)k);
  for (size_t i = 0; i < r->headers.n; i++)
    hm_add(&st->resp_h, r->headers.e[i].k, r->headers.e[i].kn, r->headers.e[i].v, r->headers.e[i].vn);
  if (r->bodylen) {
    char len[32];
    k = snprintf(len, sizeof len, "%zu", r->bodylen);
    hm_set(&st->resp_h, "content-length", 14, len, (size_t)k);
    const char *v;
    size_t vn;
    if (hm_get(&st->resp_h, "content-type", 12, 0, &v, &vn) == 0) hm_add(&st->resp_h, "content-type", 12, "text/plain", 10);
  }
  st->has_resp_h = true;
}

// onLocalReply for every filter; true if one asks for a reset instead.
static bool local_reply_hooks(stream *st, local_reply *r) {
  bool reset = false;
  const char *d = r->details ? r->details : "";
  for (int i = 0; i < st->n; i++) {
    hfilter *f = st->f[i];
    if (!f->mod || !g_mod.local_reply) continue;
    hook_ctx s = enter(st, f, false);
    count_hook(st, HK_local_reply);
    envoy_dynamic_module_type_envoy_buffer det = {d, strlen(d)};
    int res = g_mod.local_reply(f, f->mod, r->status, det, false);
    leave(s);
    if (res == envoy_dynamic_module_type_on_http_filter_local_reply_status_ContinueAndResetStream) reset = true;
  }
  return reset;
}

static void free_reply(local_reply *r) {
  hm_free(&r->headers);
  free(r->body);
  free(r->details);
  memset(r, 0, sizeof *r);
}

static void note_reply(stream *st, local_reply *r) {
  st->local_replies++;
  event ev = {.k = EV_LOCAL_REPLY,
              .status = r->status,
              .data = r->details,
              .len = r->details ? strlen(r->details) : 0,
              .who = r->sender ? r->sender->cfg->name : "router"};
  emit(st, &ev);
}

static void send_via_chain(stream *st, local_reply *r) {
  if (local_reply_hooks(st, r)) {
    reset_stream(st, "local reply: a filter asked for a reset (ContinueAndResetStream)");
    free_reply(r);
    return;
  }
  build_reply_headers(st, r);
  note_reply(st, r);
  bool has_body = r->bodylen > 0;
  fm_encode_headers(st, -1, !has_body);
  if (has_body && !st->reset) {
    body *b = body_new();
    body_add(b, r->body, r->bodylen);
    fm_encode_data(st, -1, b, true, false);
    body_free(b);
  }
  free_reply(r);
}

static void send_direct(stream *st, local_reply *r) {
  if (local_reply_hooks(st, r)) {
    reset_stream(st, "local reply: a filter asked for a reset (ContinueAndResetStream)");
    free_reply(r);
    return;
  }
  build_reply_headers(st, r);
  note_reply(st, r);
  st->local_complete = true;
  bool has_body = r->bodylen > 0;
  codec_headers(st, !has_body);
  if (has_body) {
    st->encoder_chain_complete = true;
    event ev = {.k = EV_DOWN_DATA, .data = r->body, .len = r->bodylen, .eos = true};
    emit(st, &ev);
  }
  free_reply(r);
}

void fm_send_local_reply(stream *st, local_reply *r) {
  if (st->parent) {
    // UpstreamFilterManager::sendLocalReply: the attempt's chains stop and
    // the reply goes through the downstream filter manager (upstream filters
    // never see it); the router does not retry it.
    st->dec_aborted = st->enc_aborted = true;
    st->encoder_chain_complete = st->local_complete = true;
    st->doomed = true;
    fm_send_local_reply(st->parent, r);
    return;
  }
  if (st->call_state & CS_DEC)
    st->dec_aborted = true;
  else if (st->call_state & CS_ENC)
    st->enc_aborted = true;
  st->response_code = r->status;
  st->has_response_code = true;
  free(st->details);
  st->details = xmemdup(r->details ? r->details : "", r->details ? strlen(r->details) : 0);
  if (!st->has_resp_h && !st->encoder_chain_complete) {
    if (st->call_state & CS_DEC) {
      // Sent from a request hook: the reply goes out once the hook returns.
      if (st->has_prepared_reply) free_reply(&st->prepared);
      st->prepared = *r;
      st->has_prepared_reply = true;
      memset(r, 0, sizeof *r);
    } else {
      send_via_chain(st, r);
    }
  } else if (!st->non100_encoded) {
    // The response started through the filters but nothing reached the
    // client: Envoy bypasses the filters and answers directly.
    send_direct(st, r);
  } else {
    free_reply(r);
    reset_stream(st, "local reply after response headers were sent to the client");
  }
}

// ---------------------------------------------------------- lifecycle

void fm_open(stream *st) {
  st->n = st->ch->n;
  st->f = xcalloc((size_t)st->n, sizeof(hfilter *));
  for (int i = 0; i < st->n; i++) {
    hfilter *f = xcalloc(1, sizeof *f);
    f->magic = HFILTER_MAGIC;
    f->st = st;
    f->idx = i;
    f->cfg = st->ch->f[i];
    atomic_store(&f->refs, 1);
    pthread_mutex_init(&f->mu, NULL);
    st->f[i] = f;
  }
  for (int i = 0; i < st->n; i++) {
    hfilter *f = st->f[i];
    hook_ctx s = enter(st, f, false);
    count_hook(st, HK_filter_new);
    f->mod = g_mod.filter_new(f->cfg->mod, f);
    leave(s);
    if (!f->mod) {
      violation(st, "on_http_filter_new returned NULL for %s: Envoy closes the stream", f->cfg->name);
      reset_stream(st, "on_http_filter_new returned NULL");
    }
  }
  st->opened = true;
}

// Calls every filter's destroy hook and marks the filter dead, so a late
// scheduler commit or callback finds it gone. Shared by a stream's end and
// an attempt's end.
static void destroy_filters(stream *st) {
  for (int i = 0; i < st->n; i++) {
    hfilter *f = st->f[i];
    if (f->mod) {
      hook_ctx s = enter(st, f, false);
      count_hook(st, HK_filter_destroy);
      g_mod.filter_destroy(f->mod);
      leave(s);
    }
    pthread_mutex_lock(&f->mu);
    f->destroyed = true;
    f->st = NULL;
    pthread_mutex_unlock(&f->mu);
  }
}

void fm_complete(stream *st, bool reset) {
  if (st->completed) return;
  st->completed = true;
  if (reset) reset_stream(st, "stream reset by the harness");
  for (int i = 0; i < st->n; i++) {
    hfilter *f = st->f[i];
    if (!f->mod) continue;
    hook_ctx s = enter(st, f, false);
    count_hook(st, HK_stream_complete);
    g_mod.stream_complete(f, f->mod);
    leave(s);
  }
  destroy_filters(st);
  // The router is the last filter destroyed; its attempt goes with it.
  if (st->attempt) fm_destroy_attempt(st);
  st->pending_retry = false;
  st->destroyed = true;
}

// A scheduled event reached the stream's worker thread.
void fm_run_scheduled(hfilter *f, uint64_t event) {
  pthread_mutex_lock(&f->mu);
  stream *st = f->destroyed ? NULL : f->st;
  pthread_mutex_unlock(&f->mu);
  if (!st) { // dropped: the filter was destroyed before the event ran
    return;
  }
  if (tls_worker != st->w) {
    violation(st, "scheduled event for stream %llu ran on the wrong thread", (unsigned long long)st->id);
    return;
  }
  hook_ctx s = enter(st, f, true);
  count_hook(st, HK_scheduled);
  g_mod.scheduled(f, f->mod, event);
  leave(s);
  st->scheduled_delivered++;
  fm_settle(si(st));
}

void hfilter_unref(hfilter *f) {
  if (atomic_fetch_sub(&f->refs, 1) == 1) {
    pthread_mutex_destroy(&f->mu);
    f->magic = 0;
    free(f);
  }
}

void fm_refresh_route(stream *st) {
  st->route_resolved = true;
  st->route = NULL;
  for (int i = 0; st->rt && i < st->rt->n; i++) {
    const route *r = &st->rt->r[i];
    const char *v;
    size_t vn;
    if (!r->hkey ||
        (hm_get(&st->req_h, r->hkey, r->hkeylen, 0, &v, &vn) && vn == r->hvallen && memcmp(v, r->hval, vn) == 0)) {
      st->route = r;
      break;
    }
  }
}

// Envoy's route(): the cached route, recomputed from the headers as they are
// now only after clear_route_cache.
const route *fm_route(stream *st) {
  if (!st->route_resolved) fm_refresh_route(st);
  return st->route;
}

void fm_free_stream(stream *st) {
  for (int i = 0; i < st->n; i++) hfilter_unref(st->f[i]);
  free(st->f);
  hm_free(&st->req_h);
  hm_free(&st->req_t);
  hm_free(&st->resp_h);
  hm_free(&st->resp_t);
  body_free(st->buf_req);
  body_free(st->buf_resp);
  if (st->has_prepared_reply) free_reply(&st->prepared);
  md_free(&st->md);
  for (size_t i = 0; i < st->fs.n; i++) {
    free(st->fs.e[i].k);
    free(st->fs.e[i].v);
  }
  free(st->fs.e);
  free(st->details);
  free(st->protocol);
  free(st->upstream_addr);
  free(st->source_addr);
  free(st->dest_addr);
  free(st->route_name);
  sb_free(&st->flags);
  sb_free(&st->violations);
  if (st->ch) chain_unref(st->ch);
  if (st->rt) route_table_unref(st->rt);
  if (st->cl) cluster_unref(st->cl);
  for (int i = 0; i < st->novr; i++) free(st->ovr[i]);
  free(st->ovr);
  free(st);
}

// ------------------------------------------------------ upstream attempts
//
// Envoy's router with a cluster that has upstream HTTP filters
// (source/common/router/router.cc, upstream_request.cc): every try is an
// UpstreamRequest with a filter manager of its own, created after the host is
// chosen. Its request headers and trailers are the router's (the downstream
// maps, shared by every try), its body is what the router hands it: frames as
// they pass the router on the first try, a copy of the whole retry buffer as
// one frame on a retry. Its decoder chain ends in the upstream codec (events
// ua_*, the harness's HTTP client); the response comes back through its
// encoder chain (reverse order) to the router, which retries or forwards it
// to the downstream encoder chain. Work that Envoy defers (deleting an
// attempt, the retry after its backoff) runs in fm_settle once the current
// command or scheduled event has returned.

static local_reply router_reply(uint32_t status, const char *body, const char *details) {
  local_reply r;
  memset(&r, 0, sizeof r);
  r.status = status;
  hm_init(&r.headers);
  r.body = xmemdup(body, strlen(body));
  r.bodylen = strlen(body);
  r.details = xmemdup(details, strlen(details));
  return r;
}

// The override_host policy (load_balancer.cc): its sources concatenated in
// the configured order (envoy.yaml: the x-gateway-destination-endpoint
// header, then the envoy.lb metadata string), computed once per request;
// each try consumes entries until one is a host of the cluster, else the
// fallback policy (round robin) picks.
static void override_list(stream *ds) {
  ds->ovr_done = true;
  const char *srcs[2] = {NULL, NULL};
  size_t lens[2] = {0, 0};
  const char *v;
  size_t vn;
  if (hm_get(&ds->req_h, "x-gateway-destination-endpoint", 30, 0, &v, &vn)) srcs[0] = v, lens[0] = vn;
  mval *m = md_get(&ds->md, "envoy.lb", 8, "x-gateway-destination-endpoint", 30);
  if (m && m->k == MV_STR) srcs[1] = m->s, lens[1] = m->sn;
  for (int k = 0; k < 2; k++) {
    const char *p = srcs[k], *end = p + lens[k];
    while (p && p < end) {
      const char *c = memchr(p, ',', (size_t)(end - p));
      const char *e = c ? c : end;
      const char *a = p, *b = e;
      while (a < b && (*a == ' ' || *a == '\t')) a++;
      while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
      if (b > a) {
        ds->ovr = xrealloc(ds->ovr, (size_t)(ds->novr + 1) * sizeof(char *));
        ds->ovr[ds->novr++] = xmemdup(a, (size_t)(b - a));
      }
      p = c ? c + 1 : end;
    }
  }
}

static const uhost *choose_host(stream *ds, const char **source) {
  if (!ds->ovr_done) override_list(ds);
  while (ds->ovr_pos < ds->novr) {
    const char *e = ds->ovr[ds->ovr_pos++];
    for (int i = 0; i < ds->cl->nh; i++)
      if (strcmp(ds->cl->h[i].addr, e) == 0) {
        *source = "override";
        return &ds->cl->h[i];
      }
  }
  if (ds->cl->nh == 0) return NULL;
  *source = "fallback";
  return &ds->cl->h[atomic_fetch_add(&ds->cl->rr, 1) % (uint64_t)ds->cl->nh];
}

// A new UpstreamRequest: host chosen, new filter instances, then the
// router's request: on a retry (replay) headers, the whole retry buffer as
// one frame, trailers (Filter::doRetry).
static void start_attempt(stream *ds, bool replay, bool headers_eos) {
  const char *source = "";
  const uhost *h = choose_host(ds, &source);
  if (!h) {
    local_reply r = router_reply(503, "no healthy upstream", "no_healthy_upstream");
    fm_send_local_reply(ds, &r);
    return;
  }
  stream *a = xcalloc(1, sizeof *a);
  a->id = ds->id;
  a->w = ds->w;
  a->parent = ds;
  a->ch = ds->cl->uch;
  atomic_fetch_add(&a->ch->refs, 1);
  a->has_req_h = true;
  a->host = h;
  a->nattempts = ++ds->nattempts;
  ds->host = h; // the downstream stream info's upstream host is this try's
  free(ds->upstream_addr);
  ds->upstream_addr = xmemdup(h->addr, strlen(h->addr));
  ds->attempt = a;
  event ev = {.k = EV_ATTEMPT, .attempt = a->nattempts, .endpoint = h->addr, .source = source};
  emit(ds, &ev);
  fm_open(a);
  if (a->reset) { // on_http_filter_new refused: the try fails like a reset
    a->doomed = true;
    return;
  }
  if (!replay) {
    a->remote_complete = headers_eos;
    fm_decode_headers(a, -1, headers_eos);
    return;
  }
  a->has_req_t = ds->has_req_t;
  bool eos = !ds->buf_req && !ds->has_req_t && ds->router_complete;
  a->remote_complete = eos;
  fm_decode_headers(a, -1, eos);
  if (ds->buf_req && !a->doomed && ds->attempt == a) {
    size_t n;
    char *p = body_flatten(ds->buf_req, &n);
    body *c = body_new();
    body_add(c, p, n);
    free(p);
    a->remote_complete = !ds->has_req_t && ds->router_complete;
    fm_decode_data(a, -1, c, a->remote_complete, false);
    body_free(c);
  }
  if (ds->has_req_t && !a->doomed && ds->attempt == a) {
    a->remote_complete = true;
    fm_decode_trailers(a, -1);
  }
}

// The router got the request headers on a route whose cluster has an
// upstream configuration: the first try starts now.
static void router_upstream_headers(stream *ds, bool eos) {
  if (ds->cl || !ds->routed || !ds->routed->cluster[0]) return;
  ds->cl = cluster_ref(ds->routed->cluster, strlen(ds->routed->cluster));
  if (!ds->cl) return; // no such cluster: the harness forwards (legacy)
  if (!ds->retry_policy_set) { // envoy.yaml's route retry policy
    ds->retries_left = 2;
    int codes[] = {500, 502, 503, 504};
    memcpy(ds->retry_codes, codes, sizeof codes);
    ds->nretry_codes = 4;
    ds->retry_on_reset = true;
  }
  if (!g_router_retry_buffering) ds->retries_left = 0; // no retry policy
  start_attempt(ds, false, eos);
}

static bool retriable_status(stream *ds, int status) {
  if (ds->retries_left <= 0 || ds->retry_overflow) return false;
  for (int i = 0; i < ds->nretry_codes; i++)
    if (ds->retry_codes[i] == status) return true;
  return false;
}

static void retry(stream *ds, stream *a, int status, const char *reason) {
  ds->retries_left--;
  a->doomed = true;
  ds->pending_retry = true;
  event ev = {.k = EV_RETRY, .attempt = a->nattempts, .status = (uint32_t)status, .data = reason, .len = strlen(reason)};
  emit(ds, &ev);
}

// Router::onUpstreamHeaders: the status the upstream chain hands over
// decides; a retried try's response never reaches the downstream chain.
// Forwarded headers leave the attempt (UpstreamRequestFilterManagerCallbacks
// moves them), so its filters' getters and setters fail from then on.
static void router_response_headers(stream *a, bool eos) {
  stream *ds = a->parent;
  if (a->doomed || ds->attempt != a) return;
  const char *v;
  size_t vn;
  int status = 0;
  if (hm_get(&a->resp_h, ":status", 7, 0, &v, &vn)) status = atoi(v);
  a->status_seen = status;
  if (ds->has_resp_h || ds->local_complete || ds->reset) { // answered meanwhile
    a->doomed = true;
    return;
  }
  if (retriable_status(ds, status)) {
    retry(ds, a, status, "retriable status");
    return;
  }
  a->resp_forwarded = true;
  hm_clear(&ds->resp_h);
  hm_copy(&ds->resp_h, &a->resp_h);
  hm_clear(&a->resp_h);
  a->has_resp_h = false;
  ds->has_resp_h = true;
  ds->response_code = (uint32_t)status;
  ds->has_response_code = true;
  free(ds->details);
  ds->details = xmemdup("via_upstream", 12);
  if (eos) a->doomed = true; // onUpstreamComplete: deferred delete
  fm_encode_headers(ds, -1, eos);
}

static void router_response_data(stream *a, body *data, bool eos) {
  stream *ds = a->parent;
  if (!a->resp_forwarded || ds->attempt != a || ds->reset) {
    body_drain(data, data->total);
    return;
  }
  if (eos) a->doomed = true;
  fm_encode_data(ds, -1, data, eos, false);
}

static void router_response_trailers(stream *a) {
  stream *ds = a->parent;
  if (!a->resp_forwarded || ds->attempt != a || ds->reset) return;
  hm_clear(&ds->resp_t);
  hm_copy(&ds->resp_t, &a->resp_t);
  hm_clear(&a->resp_t);
  a->has_resp_t = false;
  a->resp_t_forwarded = true;
  ds->has_resp_t = true;
  a->doomed = true;
  fm_encode_trailers(ds, -1);
}

// The harness's HTTP client answers for the current attempt.
void fm_attempt_response_headers(stream *ds, bool end_stream) {
  stream *a = ds->attempt;
  if (!a || a->doomed) return;
  a->has_resp_h = true;
  a->local_complete = end_stream;
  fm_encode_headers(a, -1, end_stream);
}

void fm_attempt_response_data(stream *ds, body *data, bool end_stream) {
  stream *a = ds->attempt;
  if (!a || a->doomed) return;
  if (end_stream) a->local_complete = true;
  fm_encode_data(a, -1, data, end_stream, false);
}

void fm_attempt_response_trailers(stream *ds) {
  stream *a = ds->attempt;
  if (!a || a->doomed) return;
  a->has_resp_t = true;
  a->local_complete = true;
  fm_encode_trailers(a, -1);
}

// Router::onUpstreamReset: a reset (or connect failure) counts for
// retry_on reset/connect-failure; out of retries the router answers 503
// before the response started, else resets the downstream stream.
void fm_attempt_reset(stream *ds, const char *reason) {
  stream *a = ds->attempt;
  if (!a || a->doomed) return;
  a->doomed = true;
  if (a->resp_forwarded) {
    reset_stream(ds, "upstream reset after the response started");
    return;
  }
  if (ds->retry_on_reset && ds->retries_left > 0 && !ds->retry_overflow) {
    a->doomed = false;
    retry(ds, a, 0, reason);
    return;
  }
  char body[512], details[512];
  snprintf(body, sizeof body, "upstream connect error or disconnect/reset before headers. reset reason: %s", reason);
  snprintf(details, sizeof details, "upstream_reset_before_response_started{%s}", reason);
  local_reply r = router_reply(503, body, details);
  fm_send_local_reply(ds, &r);
}

// Destroys the current attempt's filters (no stream_complete: only the
// connection manager calls it) and the attempt.
void fm_destroy_attempt(stream *ds) {
  stream *a = ds->attempt;
  if (!a) return;
  ds->attempt = NULL;
  destroy_filters(a);
  ds->hooks += a->hooks;
  ds->callbacks += a->callbacks;
  ds->scheduled_delivered += a->scheduled_delivered;
  fm_free_stream(a);
}

void fm_settle(stream *ds) {
  if (!ds || ds->parent) return;
  for (int guard = 0; guard < 64; guard++) {
    if (ds->attempt && ds->attempt->doomed) fm_destroy_attempt(ds);
    if (!ds->pending_retry || ds->attempt) return;
    ds->pending_retry = false;
    if (ds->completed || ds->local_complete || ds->reset) return;
    start_attempt(ds, true, false);
  }
}
