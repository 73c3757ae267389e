package abi

/*
#cgo darwin LDFLAGS: -Wl,-undefined,dynamic_lookup
#cgo linux LDFLAGS: -Wl,--unresolved-symbols=ignore-all
#include "envoy_callbacks.h"

// ipb_ref is a byte string in the batch's arena; off UINT32_MAX is none
// (a NULL buffer: what the SDK passes to remove a header).
typedef struct {
  uint32_t off;
  uint32_t len;
} ipb_ref;

enum {
  IPB_SET_HEADER = 1,
  IPB_SET_METADATA_STRING,
  IPB_SET_METADATA_NUMBER,
  IPB_SET_FILTER_STATE,
  IPB_CLEAR_ROUTE_CACHE,
  IPB_INCREMENT_COUNTER,
  IPB_RECORD_HISTOGRAM,
  IPB_GET_HEADER,
  IPB_GET_METADATA_STRING,
  IPB_GET_METADATA_NUMBER,
  IPB_GET_METADATA_LIST_SIZE,
  IPB_GET_FILTER_STATE,
  IPB_GET_ATTRIBUTE_STRING,
  IPB_GET_ATTRIBUTE_INT,
  IPB_HAS_ROUTE_CONFIG,
  IPB_GET_HEADERS,
};

#define IPB_MAX_LABELS 16

// ipb_op is one callback: its arguments (arena strings, a header type,
// metadata source or attribute id in arg, a metric id, a number) and, once
// run, its result.
typedef struct {
  uint32_t kind;
  uint32_t arg; // a metric op: whether c is one more tag value
  ipb_ref a, b, c;
  uint32_t labels, nlabels; // into the label refs
  size_t id;
  uint64_t num;  // a metric value; a list size or integer attribute read
  double dnum;   // a metadata number, written or read
  ip_buf view;  // a string read
  uint32_t result; // a metric's result
  bool ok;
} ipb_op;

static inline ip_buf ipb_at(const char* arena, ipb_ref r) {
  ip_buf b = {NULL, 0};
  if (r.off != UINT32_MAX) {
    b.ptr = arena + r.off;
    b.length = r.len;
  }
  return b;
}

// ipb_run makes the n callbacks of ops in order, each as the SDK's method
// of the same name makes it, and writes each one's result into its op. A
// header map read (at most one per run) writes its entries into hdrs when
// they fit in hcap, else only its count.
static void ipb_run(void* f, ipb_op* ops, size_t n, const char* arena, const ipb_ref* refs, ip_header* hdrs,
                    size_t hcap) {
  for (size_t i = 0; i < n; i++) {
    ipb_op* o = &ops[i];
    switch (o->kind) {
    case IPB_SET_HEADER:
      o->ok = envoy_dynamic_module_callback_http_set_header(f, o->arg, ipb_at(arena, o->a), ipb_at(arena, o->b));
      break;
    case IPB_SET_METADATA_STRING:
      envoy_dynamic_module_callback_http_set_dynamic_metadata_string(f, ipb_at(arena, o->a), ipb_at(arena, o->b),
                                                                     ipb_at(arena, o->c));
      o->ok = true;
      break;
    case IPB_SET_METADATA_NUMBER:
      envoy_dynamic_module_callback_http_set_dynamic_metadata_number(f, ipb_at(arena, o->a), ipb_at(arena, o->b), o->dnum);
      o->ok = true;
      break;
    case IPB_SET_FILTER_STATE:
      o->ok = envoy_dynamic_module_callback_http_set_filter_state_bytes(f, ipb_at(arena, o->a), ipb_at(arena, o->b));
      break;
    case IPB_CLEAR_ROUTE_CACHE:
      envoy_dynamic_module_callback_http_clear_route_cache(f);
      o->ok = true;
      break;
    case IPB_INCREMENT_COUNTER:
    case IPB_RECORD_HISTOGRAM: {
      ip_buf l[IPB_MAX_LABELS];
      uint32_t n = 0;
      for (; n < o->nlabels; n++) l[n] = ipb_at(arena, refs[o->labels + n]);
      if (o->arg) l[n++] = ipb_at(arena, o->c); // one more tag value after them
      if (o->kind == IPB_INCREMENT_COUNTER)
        o->result = envoy_dynamic_module_callback_http_filter_increment_counter(f, o->id, l, n, o->num);
      else
        o->result = envoy_dynamic_module_callback_http_filter_record_histogram_value(f, o->id, l, n, o->num);
      break;
    }
    case IPB_GET_HEADER:
      o->ok = envoy_dynamic_module_callback_http_get_header(f, o->arg, ipb_at(arena, o->a), &o->view, 0, NULL);
      break;
    case IPB_GET_METADATA_STRING:
      o->ok = envoy_dynamic_module_callback_http_get_metadata_string(f, o->arg, ipb_at(arena, o->a), ipb_at(arena, o->b),
                                                                     &o->view);
      break;
    case IPB_GET_METADATA_NUMBER:
      o->ok = envoy_dynamic_module_callback_http_get_metadata_number(f, o->arg, ipb_at(arena, o->a), ipb_at(arena, o->b),
                                                                     &o->dnum);
      break;
    case IPB_GET_METADATA_LIST_SIZE: {
      size_t s = 0;
      o->ok = envoy_dynamic_module_callback_http_get_metadata_list_size(f, o->arg, ipb_at(arena, o->a),
                                                                        ipb_at(arena, o->b), &s);
      o->num = s;
      break;
    }
    case IPB_GET_FILTER_STATE:
      o->ok = envoy_dynamic_module_callback_http_get_filter_state_bytes(f, ipb_at(arena, o->a), &o->view);
      break;
    case IPB_GET_ATTRIBUTE_STRING:
      o->ok = envoy_dynamic_module_callback_http_filter_get_attribute_string(f, o->arg, &o->view);
      break;
    case IPB_HAS_ROUTE_CONFIG:
      o->ok = envoy_dynamic_module_callback_get_most_specific_route_config(f) != NULL;
      break;
    case IPB_GET_ATTRIBUTE_INT: {
      uint64_t v = 0;
      o->ok = envoy_dynamic_module_callback_http_filter_get_attribute_int(f, o->arg, &v);
      o->num = v;
      break;
    }
    case IPB_GET_HEADERS: {
      size_t c = envoy_dynamic_module_callback_http_get_headers_size(f, o->arg);
      o->num = c;
      o->ok = c <= hcap; // written (or none to write); else read from Go
      if (c > 0 && c <= hcap) envoy_dynamic_module_callback_http_get_headers(f, o->arg, hdrs);
      break;
    }
    }
  }
}
*/
import "C"

import (
	"math"
	"slices"
	"unsafe"

	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

// Batch is a list of a hook's callbacks (header sets and removes, dynamic
// metadata, filter state, the route cache, counters and histograms, and
// reads of headers, metadata, filter state and attributes) that Run makes
// in one call from Go: a small C loop calls Envoy's callbacks one by one,
// C to C, in the order they were added, where each SDK method is a
// crossing of its own (about 90 ns each here). A read sees the writes
// added before it.
//
// The keys, values and tags are copied into the batch's arena, a []byte
// holding no Go pointers (cgo's rules allow C to read it during the call;
// C keeps nothing), and each op's result is written into its own entry:
// a filter that keeps its Batch across hooks and streams (Start empties it,
// keeping its room) makes no allocation. Ops with no room in the arena
// grow it (an append).
//
// Without a direct Stream (INFERENCEPOOL_ABI_DIRECT=off, another SDK
// layout, tests' fakes) each op runs through the SDK's method of the same
// name as it is added, with the same result: the callbacks, their order
// and their arguments are the same both ways (TestDirectABIMatchesTheSDK,
// TestBatchMatchesTheSDK in ./test).
//
// Results (View, Number, OK, Result) are read after Run, with the Op that
// adding returned; views into Envoy's memory are valid until the hook
// returns or a setter runs (a later op of the same batch included), as
// the SDK's. Start (or Clear) drops them.
type Batch struct {
	s     Stream
	ops   []C.ipb_op
	arena []byte
	refs  []C.ipb_ref // tag values of the metric ops
	ran   int         // ops[:ran] have run
	// The refs of the last metric op's tags (lastTags -1: none), shared
	// by the next one with the same tags.
	lastTags, lastTagsN int
	calls               int  // C calls made by Run, for tests
	overflow            bool // the op being built did not fit the arena (arenaLimit)
	// The header map read (Headers) of the pending ops, if any: its
	// index + 1 (0: none); its entries go into hdrs's room, after its
	// length.
	hdrsAt   int
	hdrsLast int // the last Headers op's index + 1: hdrs holds its entries
	hdrs     [][2]shared.UnsafeEnvoyBuffer
	hdrsType uint32
}

// Op names one op of a Batch, to read its result after Run.
type Op int

// MaxBatchTags is how many tag values a metric op passes to C; one with
// more runs through the SDK's method as it is added.
const MaxBatchTags = C.IPB_MAX_LABELS

// Start empties b (keeping its room) for ops on s.
func (b *Batch) Start(s Stream) {
	b.Clear()
	b.s = s
}

// Keep is an empty batch for s with b's room, unless b grew past what a
// filter should keep for its next streams (a long value once: the room
// goes with it).
func (b *Batch) Keep(s Stream) Batch {
	b.Clear()
	k := Batch{s: s, calls: b.calls}
	if cap(b.ops) <= 64 && cap(b.arena) <= 4096 && cap(b.refs) <= 128 {
		k.ops, k.arena, k.refs = b.ops, b.arena, b.refs
	}
	return k
}

// Clear drops b's ops and their results (no view into Envoy's memory stays
// in Go memory).
func (b *Batch) Clear() {
	clear(b.ops)
	b.ops, b.arena, b.refs, b.ran = b.ops[:0], b.arena[:0], b.refs[:0], 0
	b.lastTags, b.lastTagsN = -1, 0
	b.hdrsAt, b.hdrsLast, b.hdrs = 0, 0, nil
}

// Stream is the stream b's ops go to.
func (b *Batch) Stream() Stream { return b.s }

// Len is how many ops b holds.
func (b *Batch) Len() int { return len(b.ops) }

// Pending is how many ops have not run yet.
func (b *Batch) Pending() int { return len(b.ops) - b.ran }

// Calls is how many calls from Go into C b's Runs made since it was made.
func (b *Batch) Calls() int { return b.calls }

// Run makes the pending callbacks, in one call from Go; none pending, no
// call at all.
func (b *Batch) Run() {
	if b.ran == len(b.ops) {
		return
	}
	var arena *C.char
	if len(b.arena) > 0 {
		arena = (*C.char)(unsafe.Pointer(unsafe.SliceData(b.arena)))
	}
	var refs *C.ipb_ref
	if len(b.refs) > 0 {
		refs = unsafe.SliceData(b.refs)
	}
	var hdrs *C.ip_header
	free := 0
	if b.hdrsAt > b.ran {
		room := b.hdrs[len(b.hdrs):cap(b.hdrs)]
		hdrs, free = (*C.ip_header)(unsafe.Pointer(unsafe.SliceData(room))), len(room)
	}
	pending := b.ops[b.ran:]
	C.ipb_run(b.s.raw, unsafe.SliceData(pending), C.size_t(len(pending)), arena, refs, hdrs, C.size_t(free))
	b.calls++
	b.ran = len(b.ops)
	if b.hdrsAt > 0 {
		b.readHeaders()
	}
}

// readHeaders appends the entries the header map read wrote, or, when they
// did not fit, reads them into more room: no op after it changed the map
// (a header write after it runs the batch first).
func (b *Batch) readHeaders() {
	o := &b.ops[b.hdrsAt-1]
	n := int(o.num)
	if !bool(o.ok) {
		b.hdrs = slices.Grow(b.hdrs, n)
		C.envoy_dynamic_module_callback_http_get_headers(b.s.raw, C.uint32_t(b.hdrsType),
			(*C.ip_header)(unsafe.Pointer(unsafe.SliceData(b.hdrs[len(b.hdrs):cap(b.hdrs)]))))
		b.calls++
		o.ok = true
	}
	b.hdrs = b.hdrs[:len(b.hdrs)+n]
	b.hdrsAt = 0
}

var noRef = C.ipb_ref{off: math.MaxUint32}

// arenaLimit is the most bytes the arena's 32-bit refs address, below
// the none marker. Envoy's own limits (uint32 buffer limits, headers of
// at most 8 MiB) keep a hook's values far below it; an op whose bytes
// would pass it is not made (add). A variable: tests lower it.
var arenaLimit = math.MaxUint32 - 1

func (b *Batch) str(s string) C.ipb_ref {
	off := len(b.arena)
	if off+len(s) > arenaLimit {
		b.overflow = true
		return C.ipb_ref{}
	}
	b.arena = append(b.arena, s...)
	return C.ipb_ref{off: C.uint32_t(off), len: C.uint32_t(len(s))}
}

func (b *Batch) bytes(v []byte) C.ipb_ref {
	off := len(b.arena)
	if off+len(v) > arenaLimit {
		b.overflow = true
		return C.ipb_ref{}
	}
	b.arena = append(b.arena, v...)
	return C.ipb_ref{off: C.uint32_t(off), len: C.uint32_t(len(v))}
}

// add appends op, to run at the next Run. An op whose bytes did not fit
// the arena is added with no kind: C skips it, and it reads as failed
// (OK false, Result MetricsInvalidTags); its tag refs are not shared.
func (b *Batch) add(o C.ipb_op) (Op, *C.ipb_op) {
	if b.overflow {
		b.overflow = false
		o = C.ipb_op{result: C.uint32_t(shared.MetricsInvalidTags)}
		b.lastTags = -1
	}
	b.ops = append(b.ops, o)
	return Op(len(b.ops) - 1), &b.ops[len(b.ops)-1]
}

// viaSDK makes a write op through the SDK's method (sdk) and appends it,
// run and OK (the SDK's writes report nothing).
func (b *Batch) viaSDK(kind C.uint32_t, sdk func()) Op {
	op, o := b.done(kind)
	sdk()
	o.ok = true
	return op
}

// done appends an op made through the SDK: it has run.
func (b *Batch) done(kind C.uint32_t) (Op, *C.ipb_op) {
	b.Run() // the ops before it first, in order
	op, o := b.add(C.ipb_op{kind: kind})
	b.ran = len(b.ops)
	return op, o
}

// headers returns the header type of m when its callbacks can go into
// the batch (m is the SDK's map of b's filter).
func (b *Batch) headers(m shared.HeaderMap) (uint32, bool) {
	if b.s.raw == nil {
		return 0, false
	}
	raw := sdkHeadersOf(m)
	if raw == nil || raw.filter != b.s.raw {
		return 0, false
	}
	return raw.headerType, true
}

// SetHeader is HeaderMap.Set: Envoy replaces every value of key in m.
func (b *Batch) SetHeader(m shared.HeaderMap, key, value string) Op {
	b.readHeadersFirst()
	t, ok := b.headers(m)
	if !ok {
		return b.viaSDK(C.IPB_SET_HEADER, func() { m.Set(key, value) })
	}
	// An empty value is passed as an empty buffer, not NULL (NULL removes
	// the header in Envoy's abi_impl.cc; the SDK's "" may be either).
	k := b.str(key)
	op, _ := b.add(C.ipb_op{kind: C.IPB_SET_HEADER, arg: C.uint32_t(t), a: k, b: b.str(value)})
	return op
}

// RemoveHeader is HeaderMap.Remove.
func (b *Batch) RemoveHeader(m shared.HeaderMap, key string) Op {
	b.readHeadersFirst()
	t, ok := b.headers(m)
	if !ok {
		return b.viaSDK(C.IPB_SET_HEADER, func() { m.Remove(key) })
	}
	op, _ := b.add(C.ipb_op{kind: C.IPB_SET_HEADER, arg: C.uint32_t(t), a: b.str(key), b: noRef})
	return op
}

// readHeadersFirst runs the pending ops when they hold a header map read:
// a header write after it would change what it reads if it did not fit.
func (b *Batch) readHeadersFirst() {
	if b.hdrsAt > b.ran {
		b.Run()
	}
}

// Headers is abi.Headers(m, dst) as an op: every entry of m, in Envoy's
// order, appended to dst, both callbacks (size and entries) in Run's call
// when they fit in dst's room (a dst kept by the filter), else the entries
// in one more call right after. Read them with HeaderEntries after Run.
// One read per Run: a second one, or a header write after it, runs the
// ops before it first.
func (b *Batch) Headers(m shared.HeaderMap, dst [][2]shared.UnsafeEnvoyBuffer) Op {
	t, ok := b.headers(m)
	if !ok {
		op, o := b.done(C.IPB_GET_HEADERS)
		b.hdrs, b.hdrsLast = Headers(m, dst), int(op)+1
		o.num, o.ok = C.uint64_t(len(b.hdrs)-len(dst)), true
		return op
	}
	b.readHeadersFirst()
	op, _ := b.add(C.ipb_op{kind: C.IPB_GET_HEADERS, arg: C.uint32_t(t)})
	b.hdrsAt, b.hdrsLast, b.hdrs, b.hdrsType = int(op)+1, int(op)+1, dst, t
	return op
}

// HeaderEntries is the dst the batch's last Headers op appended m's
// entries to, once run (the views are valid as View's); nil before, or
// for an earlier Headers op.
func (b *Batch) HeaderEntries(op Op) [][2]shared.UnsafeEnvoyBuffer {
	if int(op)+1 != b.hdrsLast || int(op) >= b.ran {
		return nil
	}
	return b.hdrs
}

// HeaderValue is abi.HeaderValue(m, key): its first value, empty when
// there is none; read it with View.
func (b *Batch) HeaderValue(m shared.HeaderMap, key string) Op {
	t, ok := b.headers(m)
	if !ok {
		op, o := b.done(C.IPB_GET_HEADER)
		v := m.GetOne(key)
		o.view, o.ok = C.ip_buf{ptr: (*C.char)(unsafe.Pointer(v.Ptr)), length: C.size_t(v.Len)}, true
		return op
	}
	op, _ := b.add(C.ipb_op{kind: C.IPB_GET_HEADER, arg: C.uint32_t(t), a: b.str(key)})
	return op
}

// SetMetadataString is HttpFilterHandle.SetMetadata(ns, key, value) with a
// string value.
func (b *Batch) SetMetadataString(ns, key, value string) Op {
	if b.s.raw == nil {
		return b.viaSDK(C.IPB_SET_METADATA_STRING, func() { b.s.h.SetMetadata(ns, key, value) })
	}
	op, _ := b.add(C.ipb_op{kind: C.IPB_SET_METADATA_STRING, a: b.str(ns), b: b.str(key), c: b.str(value)})
	return op
}

// SetMetadataNumber is HttpFilterHandle.SetMetadata(ns, key, value) with a
// float64 value.
func (b *Batch) SetMetadataNumber(ns, key string, value float64) Op {
	if b.s.raw == nil {
		return b.viaSDK(C.IPB_SET_METADATA_NUMBER, func() { b.s.h.SetMetadata(ns, key, value) })
	}
	op, _ := b.add(C.ipb_op{kind: C.IPB_SET_METADATA_NUMBER, a: b.str(ns), b: b.str(key), dnum: C.double(value)})
	return op
}

// SetMetadataUint is HttpFilterHandle.SetMetadata(ns, key, value) with a
// uint64 value: a metadata number, as the SDK converts it.
func (b *Batch) SetMetadataUint(ns, key string, value uint64) Op {
	if b.s.raw == nil {
		return b.viaSDK(C.IPB_SET_METADATA_NUMBER, func() { b.s.h.SetMetadata(ns, key, value) })
	}
	op, _ := b.add(C.ipb_op{kind: C.IPB_SET_METADATA_NUMBER, a: b.str(ns), b: b.str(key), dnum: C.double(float64(value))})
	return op
}

// SetMetadata is HttpFilterHandle.SetMetadata(ns, key, value) with a value
// the caller boxed once (a config's string, float64 or uint64): through the
// SDK too it costs no allocation, where the typed methods box their value
// there. Other types go through the SDK's method.
func (b *Batch) SetMetadata(ns, key string, value any) Op {
	kind := C.uint32_t(C.IPB_SET_METADATA_NUMBER)
	switch v := value.(type) {
	case string:
		if b.s.raw != nil {
			return b.SetMetadataString(ns, key, v)
		}
		kind = C.IPB_SET_METADATA_STRING
	case float64:
		if b.s.raw != nil {
			return b.SetMetadataNumber(ns, key, v)
		}
	case uint64:
		if b.s.raw != nil {
			return b.SetMetadataUint(ns, key, v)
		}
	}
	return b.viaSDK(kind, func() { b.s.h.SetMetadata(ns, key, value) })
}

// SetFilterState is HttpFilterHandle.SetFilterState; OK reports Envoy's
// answer (the SDK's method drops it: true there).
func (b *Batch) SetFilterState(key string, value []byte) Op {
	if b.s.raw == nil {
		return b.viaSDK(C.IPB_SET_FILTER_STATE, func() { b.s.h.SetFilterState(key, value) })
	}
	op, _ := b.add(C.ipb_op{kind: C.IPB_SET_FILTER_STATE, a: b.str(key), b: b.bytes(value)})
	return op
}

// ClearRouteCache is HttpFilterHandle.ClearRouteCache.
func (b *Batch) ClearRouteCache() Op {
	if b.s.raw == nil {
		return b.viaSDK(C.IPB_CLEAR_ROUTE_CACHE, b.s.h.ClearRouteCache)
	}
	op, _ := b.add(C.ipb_op{kind: C.IPB_CLEAR_ROUTE_CACHE})
	return op
}

// metric adds a counter or histogram op; Result reads Envoy's answer.
func (b *Batch) metric(kind C.uint32_t, id shared.MetricID, value uint64, tags []string) Op {
	if b.s.raw == nil || len(tags) > MaxBatchTags {
		op, o := b.done(kind)
		var r shared.MetricsResult
		if kind == C.IPB_INCREMENT_COUNTER {
			r = b.s.h.IncrementCounterValue(id, value, tags...)
		} else {
			r = b.s.h.RecordHistogramValue(id, value, tags...)
		}
		o.result = C.uint32_t(r)
		return op
	}
	op, _ := b.add(C.ipb_op{kind: kind, id: C.size_t(id), num: C.uint64_t(value),
		labels: C.uint32_t(b.tagRefs(tags)), nlabels: C.uint32_t(len(tags))})
	return op
}

// tagRefs returns where tags' refs start in b.refs: those of the previous
// metric op when its tags were the same (a hook's stats share theirs),
// else new ones.
func (b *Batch) tagRefs(tags []string) int {
	if b.lastTags >= 0 && b.lastTagsN == len(tags) {
		same := true
		for i, t := range tags {
			r := b.refs[b.lastTags+i]
			if int(r.len) != len(t) || string(b.arena[r.off:r.off+r.len]) != t {
				same = false
				break
			}
		}
		if same {
			return b.lastTags
		}
	}
	first := len(b.refs)
	for _, t := range tags {
		b.refs = append(b.refs, b.str(t))
	}
	b.lastTags, b.lastTagsN = first, len(tags)
	return first
}

// IncrementCounter is HttpFilterHandle.IncrementCounterValue.
func (b *Batch) IncrementCounter(id shared.MetricID, value uint64, tags ...string) Op {
	return b.metric(C.IPB_INCREMENT_COUNTER, id, value, tags)
}

// RecordHistogram is HttpFilterHandle.RecordHistogramValue.
func (b *Batch) RecordHistogram(id shared.MetricID, value uint64, tags ...string) Op {
	return b.metric(C.IPB_RECORD_HISTOGRAM, id, value, tags)
}

// RecordHistogramTagged is RecordHistogram with one more tag value after
// tags, without building the joined list.
func (b *Batch) RecordHistogramTagged(id shared.MetricID, value uint64, tags []string, last string) Op {
	if b.s.raw == nil || len(tags)+1 > MaxBatchTags {
		all := make([]string, len(tags)+1) // the SDK path only
		copy(all, tags)
		all[len(tags)] = last
		return b.metric(C.IPB_RECORD_HISTOGRAM, id, value, all)
	}
	op := b.metric(C.IPB_RECORD_HISTOGRAM, id, value, tags)
	b.ops[op].arg, b.ops[op].c = 1, b.str(last)
	return op
}

// MetadataString is Stream.MetadataString; read it with View.
func (b *Batch) MetadataString(source shared.MetadataSourceType, ns, key string) Op {
	if b.s.raw == nil {
		op, o := b.done(C.IPB_GET_METADATA_STRING)
		v, ok := b.s.h.GetMetadataString(source, ns, key)
		o.view, o.ok = cBuf(v), C.bool(ok)
		return op
	}
	op, _ := b.add(C.ipb_op{kind: C.IPB_GET_METADATA_STRING, arg: C.uint32_t(source), a: b.str(ns), b: b.str(key)})
	return op
}

// MetadataNumber is Stream.MetadataNumber; read it with Number.
func (b *Batch) MetadataNumber(source shared.MetadataSourceType, ns, key string) Op {
	if b.s.raw == nil {
		op, o := b.done(C.IPB_GET_METADATA_NUMBER)
		v, ok := b.s.h.GetMetadataNumber(source, ns, key)
		o.dnum, o.ok = C.double(v), C.bool(ok)
		return op
	}
	op, _ := b.add(C.ipb_op{kind: C.IPB_GET_METADATA_NUMBER, arg: C.uint32_t(source), a: b.str(ns), b: b.str(key)})
	return op
}

// MetadataListSize is Stream.MetadataListSize; read it with Number.
func (b *Batch) MetadataListSize(source shared.MetadataSourceType, ns, key string) Op {
	if b.s.raw == nil {
		op, o := b.done(C.IPB_GET_METADATA_LIST_SIZE)
		n, ok := b.s.h.GetMetadataListSize(source, ns, key)
		o.num, o.ok = C.uint64_t(n), C.bool(ok)
		return op
	}
	op, _ := b.add(C.ipb_op{kind: C.IPB_GET_METADATA_LIST_SIZE, arg: C.uint32_t(source), a: b.str(ns), b: b.str(key)})
	return op
}

// FilterState is Stream.FilterState; read it with View.
func (b *Batch) FilterState(key string) Op {
	if b.s.raw == nil {
		op, o := b.done(C.IPB_GET_FILTER_STATE)
		v, ok := b.s.h.GetFilterState(key)
		o.view, o.ok = cBuf(v), C.bool(ok)
		return op
	}
	op, _ := b.add(C.ipb_op{kind: C.IPB_GET_FILTER_STATE, a: b.str(key)})
	return op
}

// AttributeString is Stream.AttributeString; read it with View.
func (b *Batch) AttributeString(id shared.AttributeID) Op {
	if b.s.raw == nil {
		op, o := b.done(C.IPB_GET_ATTRIBUTE_STRING)
		v, ok := b.s.h.GetAttributeString(id)
		o.view, o.ok = cBuf(v), C.bool(ok)
		return op
	}
	op, _ := b.add(C.ipb_op{kind: C.IPB_GET_ATTRIBUTE_STRING, arg: C.uint32_t(id)})
	return op
}

// AttributeNumber is Stream.AttributeNumber; read it with Number.
func (b *Batch) AttributeNumber(id shared.AttributeID) Op {
	if b.s.raw == nil {
		// Recorded as a number read: the SDK's answer is a float64 already.
		op, o := b.done(C.IPB_GET_METADATA_NUMBER)
		v, ok := b.s.h.GetAttributeNumber(id)
		o.dnum, o.ok = C.double(v), C.bool(ok)
		return op
	}
	op, _ := b.add(C.ipb_op{kind: C.IPB_GET_ATTRIBUTE_INT, arg: C.uint32_t(id)})
	return op
}

// HasRouteConfig asks whether the stream's route has a per-route config for
// this filter (get_most_specific_route_config answers non-NULL); read it
// with OK. The config itself is HttpFilterHandle.GetMostSpecificConfig's
// (the SDK maps Envoy's pointer to it), for a filter to call only when
// there is one: a route without one costs no crossing of its own.
func (b *Batch) HasRouteConfig() Op {
	if b.s.raw == nil {
		op, o := b.done(C.IPB_HAS_ROUTE_CONFIG)
		o.ok = C.bool(b.s.h.GetMostSpecificConfig() != nil)
		return op
	}
	op, _ := b.add(C.ipb_op{kind: C.IPB_HAS_ROUTE_CONFIG})
	return op
}

func cBuf(v shared.UnsafeEnvoyBuffer) C.ip_buf {
	return C.ip_buf{ptr: (*C.char)(unsafe.Pointer(v.Ptr)), length: C.size_t(v.Len)}
}

// View is the string op read: what the SDK's method returns (for
// HeaderValue, the view alone, empty when there is none).
func (b *Batch) View(op Op) (shared.UnsafeEnvoyBuffer, bool) {
	o := &b.ops[op]
	if !bool(o.ok) || o.view.ptr == nil || o.view.length == 0 {
		return shared.UnsafeEnvoyBuffer{}, false
	}
	return shared.UnsafeEnvoyBuffer{Ptr: (*byte)(unsafe.Pointer(o.view.ptr)), Len: uint64(o.view.length)}, true
}

// Number is the number op read (a metadata number, a list size, an
// integer attribute as a float64), and whether Envoy had one.
func (b *Batch) Number(op Op) (float64, bool) {
	o := &b.ops[op]
	if !bool(o.ok) {
		return 0, false
	}
	if o.kind == C.IPB_GET_METADATA_NUMBER {
		return float64(o.dnum), true
	}
	return float64(uint64(o.num)), true
}

// OK reports whether Envoy accepted a set_header or set_filter_state op,
// or HasRouteConfig's answer (the other writes: true once run).
func (b *Batch) OK(op Op) bool { return bool(b.ops[op].ok) }

// Result is a metric op's answer from Envoy.
func (b *Batch) Result(op Op) shared.MetricsResult { return shared.MetricsResult(b.ops[op].result) }
