// Package abi holds what touches Envoy's dynamic-module C ABI beyond the Go
// SDK: the panic barrier every hook goes through, the runtime guard that
// refuses to run without GODEBUG=cgocheck=0, and direct calls of the ABI's
// callbacks for what a filter reads on every request, where the pinned
// SDK's wrappers allocate:
//
//   - Stream: metadata, attributes, filter state and stats with tags, each
//     through a small C wrapper that keeps the out-parameter (or the tag
//     views) on the C stack, where the SDK's Go variable escapes to the
//     heap because its address goes to C;
//   - Batch: a hook's callbacks (header sets and removes, dynamic metadata,
//     filter state, the route cache, counters and histograms, reads of
//     header values, whole header maps (Headers), metadata, filter state
//     and attributes) in one call from Go:
//     a C loop (ipb_run) calls Envoy's callbacks C to C over an op array,
//     their strings in a per-stream arena (a []byte without Go pointers),
//     each op's result written back into its entry; no allocation once the
//     filter's batch has room. The filters batch every hook: the 4 KiB
//     exchange crosses from Go into C 11 times instead of 26 (9 when
//     ai_router picks too; HasRouteConfig spares endpoint_picker the SDK's
//     route-config call on a route without a per-route config), and an
//     ai_upstream attempt 5 times instead of 9. An op whose bytes would
//     pass what the arena's 32-bit offsets address is not made and reads
//     as failed (unreachable under Envoy's limits);
//   - Headers, HeaderValue and HeaderValues: a header map read into the
//     caller's slice in one call from Go (get_headers_size and
//     get_headers), one value, or up to 8 values in one call;
//   - BodyChunks: a body's chunks read into the caller's slice in one call
//     from Go (get_body_chunks_size and get_body_chunks); RequestBodyChunks,
//     a request body hook's received frame and buffered body (and whether
//     they are one) in one call.
//
// The callbacks they make are declared once, in envoy_callbacks.h, as in
// the pinned SDK's abi.h.
//
// Each needs Envoy's filter pointer, which the SDK keeps in unexported
// fields (its handle, header maps and body buffers): their layouts are
// checked through reflection on the first value seen, and a value of any
// other type or layout (another SDK version, tests' fakes) makes the call go
// through the SDK's own method, as does INFERENCEPOOL_ABI_DIRECT=off in the
// environment (a Batch then runs each op through the SDK as it is added).
// Both paths make the same callbacks and return the same values
// (TestDirectABIMatchesTheSDK and TestBatchMatchesTheSDK in ./test). C never keeps a pointer to
// Go memory: keys, values and tags are read during the call, and Envoy
// writes views of its own memory into the caller's slice, which the filters
// clear when the hook returns. The filter pointer is used only inside the
// filter's hooks, between Envoy's on_http_filter_new and
// on_http_filter_destroy, as the SDK uses it.
//
// A profiling build (-tags inferencepool_profile, profile.go) writes the
// CPU and allocation profiles of what abihost --bench measures.
package abi
