package main

import (
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"

	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"github.com/envoy-inferencepool/envoy-inferencepool/internal/handoff"
)

// requestFactsKey is the filter state key under which ai_router leaves, for
// endpoint_picker on the same stream, the token of its parse of the request
// body, so the body is parsed once. The facts themselves stay in this
// process (requestFactsTable): Envoy, its access logs and other filters see
// an opaque token, never a pointer (the SDK's SetData would print one in
// dynamic metadata), and a token opens nothing on another connection.
const requestFactsKey = "inferencepool.request_facts"

// requestFacts is what ai_router learned from the body. Prompt is a Go-owned
// copy: Envoy's buffer views die when the hook returns.
type requestFacts struct {
	Model  string
	Prompt []byte
	Stream bool
}

// requestFactsTable holds the facts of every live stream, all workers.
var requestFactsTable = handoff.New[requestFacts]()

// factsHandoff is ai_router's side of one stream: publish leaves the facts
// for endpoint_picker, release (at OnDestroy, which ends every stream: end,
// reset, local reply) removes them.
type factsHandoff struct {
	tok  handoff.Token
	live bool
	text [handoff.TokenLen]byte // the token as text (in the filter: no allocation)
}

func (p *factsHandoff) publish(h abi.Stream, f *requestFacts) {
	if p.live { // the token is in the filter state already (set once: Envoy keeps it read-only)
		requestFactsTable.Replace(p.tok, f)
		return
	}
	if _, taken := h.FilterState(requestFactsKey); taken {
		return // set before us, by someone else: endpoint_picker reads the body itself
	}
	p.tok = requestFactsTable.Put(connectionID(h), f)
	p.live = true
	h.Handle().SetFilterState(requestFactsKey, p.tok.AppendText(p.text[:0]))
}

func (p *factsHandoff) release() {
	if p.live {
		requestFactsTable.Delete(p.tok)
		p.live = false
	}
}

// receiveRequestFacts is endpoint_picker's side: ai_router's facts for this
// stream, or nil (no ai_router before it, or it handed nothing over).
func receiveRequestFacts(h abi.Stream) *requestFacts {
	v, ok := h.FilterState(requestFactsKey)
	if !ok {
		return nil
	}
	tok, ok := handoff.ParseToken(v.ToUnsafeBytes())
	if !ok {
		return nil
	}
	return requestFactsTable.Get(tok, connectionID(h))
}

// connectionID binds an entry to the downstream connection (0 where Envoy
// has none; both filters then read the same 0).
func connectionID(h abi.Stream) uint64 {
	id, _ := h.AttributeNumber(shared.AttributeIDConnectionId)
	return uint64(id)
}
