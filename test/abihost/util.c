// Byte buffers, base64, JSON output, header maps, bodies, metadata.
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abihost.h"

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "abihost: out of memory\n");
    abort();
  }
  return p;
}

void *xcalloc(size_t a, size_t b) {
  void *p = calloc(a ? a : 1, b ? b : 1);
  if (!p) {
    fprintf(stderr, "abihost: out of memory\n");
    abort();
  }
  return p;
}

void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) {
    fprintf(stderr, "abihost: out of memory\n");
    abort();
  }
  return p;
}

char *xmemdup(const void *p, size_t n) {
  char *d = xmalloc(n + 1);
  if (n) memcpy(d, p, n);
  d[n] = 0;
  return d;
}

uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// ------------------------------------------------------------------- sbuf

void sb_init(sbuf *b) { b->p = NULL, b->n = 0, b->cap = 0; }
void sb_free(sbuf *b) {
  free(b->p);
  sb_init(b);
}
void sb_reserve(sbuf *b, size_t extra) {
  if (b->n + extra + 1 <= b->cap) return;
  size_t c = b->cap ? b->cap : 64;
  while (c < b->n + extra + 1) c *= 2;
  b->p = xrealloc(b->p, c);
  b->cap = c;
}
void sb_add(sbuf *b, const void *p, size_t n) {
  sb_reserve(b, n);
  if (n) memcpy(b->p + b->n, p, n);
  b->n += n;
  b->p[b->n] = 0;
}
void sb_addc(sbuf *b, char c) { sb_add(b, &c, 1); }
void sb_adds(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }
void sb_printf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[256];
  int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (k < 0) return;
  if ((size_t)k < sizeof tmp) {
    sb_add(b, tmp, (size_t)k);
    return;
  }
  sb_reserve(b, (size_t)k);
  va_start(ap, fmt);
  vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)k;
}

void sb_jstr(sbuf *b, const char *p, size_t n) {
  sb_reserve(b, n + 2);
  sb_addc(b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    switch (c) {
    case '"':
      sb_add(b, "\\\"", 2);
      break;
    case '\\':
      sb_add(b, "\\\\", 2);
      break;
    case '\n':
      sb_add(b, "\\n", 2);
      break;
    case '\r':
      sb_add(b, "\\r", 2);
      break;
    case '\t':
      sb_add(b, "\\t", 2);
      break;
    default:
      if (c < 0x20 || c == 0x7f)
        sb_printf(b, "\\u%04x", c);
      else
        sb_addc(b, (char)c);
    }
  }
  sb_addc(b, '"');
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t b64_enc_len(size_t n) { return (n + 2) / 3 * 4; }

void b64_encode(const unsigned char *in, size_t n, char *out) {
  size_t i = 0, o = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = B64[v >> 18];
    out[o++] = B64[(v >> 12) & 63];
    out[o++] = B64[(v >> 6) & 63];
    out[o++] = B64[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
    out[o++] = B64[v >> 18];
    out[o++] = B64[(v >> 12) & 63];
    out[o++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
}

void sb_jb64(sbuf *b, const void *p, size_t n) {
  size_t k = b64_enc_len(n);
  sb_reserve(b, k + 2);
  b->p[b->n++] = '"';
  b64_encode(p, n, b->p + b->n);
  b->n += k;
  b->p[b->n++] = '"';
  b->p[b->n] = 0;
}

void sb_jnum(sbuf *b, double d) {
  if (isnan(d) || isinf(d)) {
    sb_adds(b, "null");
    return;
  }
  if (d == (double)(int64_t)d && fabs(d) < 9e15)
    sb_printf(b, "%lld", (long long)(int64_t)d);
  else
    sb_printf(b, "%.17g", d);
}

static int b64val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

long b64_decode(const char *in, size_t n, unsigned char *out) {
  if (n == 1 && in[0] == '-') return 0;
  uint32_t acc = 0;
  int bits = 0;
  long o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == '=') break;
    int v = b64val(c);
    if (v < 0) return -1;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  return o;
}

unsigned char *b64_dup(const char *in, size_t *outlen) {
  size_t n = strlen(in);
  unsigned char *out = xmalloc(n * 3 / 4 + 4);
  long k = b64_decode(in, n, out);
  if (k < 0) {
    free(out);
    return NULL;
  }
  out[k] = 0;
  *outlen = (size_t)k;
  return out;
}

// ------------------------------------------------------------ header maps

void hm_init(hmap *m) { m->e = NULL, m->n = 0, m->cap = 0; }

bool g_poison = true;

static void poison_free(char *p, size_t n) {
  if (g_poison && p && n) memset(p, 0xdd, n);
  free(p);
}

// An entry's key and value share one allocation: k, NUL, v, NUL.
static void entry_free(hentry *e) { poison_free(e->k, e->kn + e->vn + 2); }

void hm_clear(hmap *m) {
  for (size_t i = 0; i < m->n; i++) entry_free(&m->e[i]);
  m->n = 0;
}

void hm_free(hmap *m) {
  hm_clear(m);
  free(m->e);
  hm_init(m);
}

static bool key_eq(const hentry *e, const char *k, size_t kn) {
  if (e->kn != kn) return false;
  for (size_t i = 0; i < kn; i++)
    if (e->k[i] != (char)tolower((unsigned char)k[i])) return false;
  return true;
}

void hm_add(hmap *m, const char *k, size_t kn, const char *v, size_t vn) {
  if (m->n == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 16;
    m->e = xrealloc(m->e, m->cap * sizeof(hentry));
  }
  hentry e;
  e.k = xmalloc(kn + vn + 2);
  for (size_t i = 0; i < kn; i++) e.k[i] = (char)tolower((unsigned char)k[i]);
  e.k[kn] = 0;
  e.kn = kn;
  e.v = e.k + kn + 1;
  if (vn) memcpy(e.v, v, vn);
  e.v[vn] = 0;
  e.vn = vn;
  // Envoy keeps pseudo-headers ahead of the others.
  size_t pos = m->n;
  if (kn > 0 && k[0] == ':') {
    pos = 0;
    while (pos < m->n && m->e[pos].kn > 0 && m->e[pos].k[0] == ':') pos++;
    memmove(&m->e[pos + 1], &m->e[pos], (m->n - pos) * sizeof(hentry));
  }
  m->e[pos] = e;
  m->n++;
}

void hm_remove(hmap *m, const char *k, size_t kn) {
  size_t o = 0;
  for (size_t i = 0; i < m->n; i++) {
    if (key_eq(&m->e[i], k, kn)) {
      entry_free(&m->e[i]);
    } else {
      m->e[o++] = m->e[i];
    }
  }
  m->n = o;
}

void hm_set(hmap *m, const char *k, size_t kn, const char *v, size_t vn) {
  hm_remove(m, k, kn);
  hm_add(m, k, kn, v, vn);
}

size_t hm_get(const hmap *m, const char *k, size_t kn, size_t index, const char **val, size_t *vn) {
  size_t count = 0;
  *val = NULL;
  *vn = 0;
  for (size_t i = 0; i < m->n; i++) {
    if (key_eq(&m->e[i], k, kn)) {
      if (count == index) {
        *val = m->e[i].v;
        *vn = m->e[i].vn;
      }
      count++;
    }
  }
  return count;
}

void hm_copy(hmap *dst, const hmap *src) {
  for (size_t i = 0; i < src->n; i++) hm_add(dst, src->e[i].k, src->e[i].kn, src->e[i].v, src->e[i].vn);
}

// ------------------------------------------------------------------ bodies

body *body_new(void) { return xcalloc(1, sizeof(body)); }

void body_free(body *b) {
  if (!b) return;
  for (size_t i = 0; i < b->ns; i++) poison_free(b->s[i].base, b->s[i].off + b->s[i].len);
  free(b->s);
  free(b);
}

static void body_push(body *b, slice s) {
  if (b->ns == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 4;
    b->s = xrealloc(b->s, b->cap * sizeof(slice));
  }
  b->s[b->ns++] = s;
  b->total += s.len;
}

void body_add(body *b, const void *p, size_t n) {
  if (!n) return;
  slice s = {xmemdup(p, n), 0, n};
  body_push(b, s);
}

void body_move(body *dst, body *src) {
  if (dst == src) return;
  for (size_t i = 0; i < src->ns; i++) body_push(dst, src->s[i]);
  src->ns = 0;
  src->total = 0;
}

void body_drain(body *b, size_t n) {
  size_t i = 0;
  while (n > 0 && i < b->ns) {
    slice *s = &b->s[i];
    if (n >= s->len) {
      n -= s->len;
      b->total -= s->len;
      poison_free(s->base, s->off + s->len);
      i++;
    } else {
      s->off += n;
      s->len -= n;
      b->total -= n;
      n = 0;
    }
  }
  if (i) {
    memmove(b->s, b->s + i, (b->ns - i) * sizeof(slice));
    b->ns -= i;
  }
}

char *body_flatten(const body *b, size_t *n) {
  char *p = xmalloc(b->total + 1);
  size_t o = 0;
  for (size_t i = 0; i < b->ns; i++) {
    memcpy(p + o, b->s[i].base + b->s[i].off, b->s[i].len);
    o += b->s[i].len;
  }
  p[o] = 0;
  *n = o;
  return p;
}

// --------------------------------------------------------------- metadata

void mv_free(mval *v) {
  free(v->s);
  for (size_t i = 0; i < v->nitems; i++) mv_free(&v->items[i]);
  free(v->items);
  memset(v, 0, sizeof *v);
}

void md_free(meta *m) {
  for (size_t i = 0; i < m->n; i++) {
    for (size_t j = 0; j < m->ns[i].nk; j++) {
      free(m->ns[i].keys[j].k);
      mv_free(&m->ns[i].keys[j].v);
    }
    free(m->ns[i].keys);
    free(m->ns[i].ns);
  }
  free(m->ns);
  memset(m, 0, sizeof *m);
}

mns *md_ns(meta *m, const char *ns, size_t nsn, bool create) {
  for (size_t i = 0; i < m->n; i++)
    if (m->ns[i].nsn == nsn && memcmp(m->ns[i].ns, ns, nsn) == 0) return &m->ns[i];
  if (!create) return NULL;
  if (m->n == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 4;
    m->ns = xrealloc(m->ns, m->cap * sizeof(mns));
  }
  mns *n = &m->ns[m->n++];
  memset(n, 0, sizeof *n);
  n->ns = xmemdup(ns, nsn);
  n->nsn = nsn;
  return n;
}

mval *md_get(meta *m, const char *ns, size_t nsn, const char *k, size_t kn) {
  mns *n = md_ns(m, ns, nsn, false);
  if (!n) return NULL;
  for (size_t i = 0; i < n->nk; i++)
    if (n->keys[i].kn == kn && memcmp(n->keys[i].k, k, kn) == 0) return &n->keys[i].v;
  return NULL;
}

mval *md_put(meta *m, const char *ns, size_t nsn, const char *k, size_t kn) {
  mval *v = md_get(m, ns, nsn, k, kn);
  if (v) {
    mv_free(v);
    return v;
  }
  mns *n = md_ns(m, ns, nsn, true);
  if (n->nk == n->cap) {
    n->cap = n->cap ? n->cap * 2 : 4;
    n->keys = xrealloc(n->keys, n->cap * sizeof(mkey));
  }
  mkey *e = &n->keys[n->nk++];
  memset(e, 0, sizeof *e);
  e->k = xmemdup(k, kn);
  e->kn = kn;
  return &e->v;
}

static void mv_json(sbuf *b, const mval *v) {
  switch (v->k) {
  case MV_STR:
    sb_jstr(b, v->s, v->sn);
    break;
  case MV_NUM:
    sb_jnum(b, v->num);
    break;
  case MV_BOOL:
    sb_adds(b, v->b ? "true" : "false");
    break;
  case MV_LIST:
    sb_addc(b, '[');
    for (size_t i = 0; i < v->nitems; i++) {
      if (i) sb_addc(b, ',');
      mv_json(b, &v->items[i]);
    }
    sb_addc(b, ']');
    break;
  default:
    sb_adds(b, "null");
  }
}

void md_json(sbuf *b, const meta *m) {
  sb_addc(b, '{');
  for (size_t i = 0; i < m->n; i++) {
    if (i) sb_addc(b, ',');
    sb_jstr(b, m->ns[i].ns, m->ns[i].nsn);
    sb_add(b, ":{", 2);
    for (size_t j = 0; j < m->ns[i].nk; j++) {
      if (j) sb_addc(b, ',');
      sb_jstr(b, m->ns[i].keys[j].k, m->ns[i].keys[j].kn);
      sb_addc(b, ':');
      mv_json(b, &m->ns[i].keys[j].v);
    }
    sb_addc(b, '}');
  }
  sb_addc(b, '}');
}
