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

// publish runs b (the hook's writes so far) with the reads it needs, and
// sets the token if it is new: at most two calls from Go.
func (p *factsHandoff) publish(b *abi.Batch, f *requestFacts) {
	if p.live { // the token is in the filter state already (set once: Envoy keeps it read-only)
		b.Run()
		requestFactsTable.Replace(p.tok, f)
		return
	}
	r := receiveRequestFacts(b)
	b.Run()
	if _, taken := b.View(r.token); taken {
		return // set before us, by someone else: endpoint_picker reads the body itself
	}
	id, _ := b.Number(r.conn)
	p.tok = requestFactsTable.Put(uint64(id), f)
	p.live = true
	b.SetFilterState(requestFactsKey, p.tok.AppendText(p.text[:0]))
	b.Run()
}

func (p *factsHandoff) release() {
	if p.live {
		requestFactsTable.Delete(p.tok)
		p.live = false
	}
}

// factsReads are endpoint_picker's batched reads of the handoff: the token
// and the connection (both read: one call from Go either way).
type factsReads struct{ token, conn abi.Op }

// receiveRequestFacts is endpoint_picker's side: it adds the reads to b;
// get, once b ran, returns ai_router's facts for this stream, or nil (no
// ai_router before it, or it handed nothing over).
func receiveRequestFacts(b *abi.Batch) factsReads {
	return factsReads{token: b.FilterState(requestFactsKey), conn: b.AttributeNumber(shared.AttributeIDConnectionId)}
}

func (r factsReads) get(b *abi.Batch) *requestFacts {
	v, ok := b.View(r.token)
	if !ok {
		return nil
	}
	tok, ok := handoff.ParseToken(v.ToUnsafeBytes())
	if !ok {
		return nil
	}
	id, _ := b.Number(r.conn) // 0 where Envoy has none: both filters read the same 0
	return requestFactsTable.Get(tok, uint64(id))
}
