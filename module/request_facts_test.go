package main

import (
	"github.com/envoy-inferencepool/envoy-inferencepool/abi"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// ai_router's facts reach endpoint_picker on the same stream through an
// opaque token in filter state; nothing is published in dynamic metadata, a
// token opens nothing on another connection, and none can be forged.
func TestRequestFactsHandoff(t *testing.T) {
	facts := &requestFacts{Model: "m", Prompt: []byte("p")}
	for _, tc := range []struct {
		name    string
		prepare func(s *fakeStream) // the stream endpoint_picker runs on; ai_router published on its own
		want    *requestFacts
	}{
		{name: "same stream", prepare: nil, want: facts},
		{name: "token copied to another connection", prepare: func(s *fakeStream) { s.conn = 2 }},
		{name: "token never issued", prepare: func(s *fakeStream) {
			s.filterState = map[string][]byte{requestFactsKey: []byte("00112233445566778899aabbccddeeff")}
		}},
		{name: "a pointer in decimal, as the SDK's SetData wrote", prepare: func(s *fakeStream) {
			s.filterState = map[string][]byte{requestFactsKey: []byte("824634330112")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := requestFactsTable.Len()
			s := newFakeStream()
			s.conn = 1
			var p factsHandoff
			p.publish(batchOf(s), facts)
			require.Equal(t, before+1, requestFactsTable.Len())
			tok := s.filterState[requestFactsKey]
			require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{32}$`), string(tok))
			require.Empty(t, s.data, "nothing through the SDK's SetData")
			require.Empty(t, s.metadata, "nothing in dynamic metadata")
			if tc.prepare != nil {
				tc.prepare(s)
			}
			require.Same(t, tc.want, receiveNow(s))
			p.release()
			p.release()
			require.Equal(t, before, requestFactsTable.Len())
			s.conn, s.filterState[requestFactsKey] = 1, tok
			require.Nil(t, receiveNow(s), "gone once the stream ended")
		})
	}
}

// Publishing again on a stream replaces the facts under the same token; a
// key someone else set first is left alone and nothing is handed over.
func TestRequestFactsPublishEdges(t *testing.T) {
	before := requestFactsTable.Len()
	s := newFakeStream()
	var p factsHandoff
	p.publish(batchOf(s), &requestFacts{Model: "a"})
	tok := string(s.filterState[requestFactsKey])
	second := &requestFacts{Model: "b"}
	p.publish(batchOf(s), second)
	require.Equal(t, tok, string(s.filterState[requestFactsKey]))
	require.Same(t, second, receiveNow(s))
	p.release()

	taken := newFakeStream()
	taken.filterState[requestFactsKey] = []byte("set by another filter")
	var q factsHandoff
	q.publish(batchOf(taken), &requestFacts{Model: "c"})
	require.Equal(t, before, requestFactsTable.Len())
	require.Nil(t, receiveNow(taken))
	q.release()
}

// Every way a stream ends leaves no entry behind: a full exchange, a reset
// after the request, and a request ai_router answers itself.
func TestRequestFactsReleasedOnEveryStreamEnd(t *testing.T) {
	c := newChain(t, metricsServers(t, 1))
	req := benchRequest(1 << 10)
	before := requestFactsTable.Len()

	s := newFakeStream()
	c.exchange(s, req, benchResponse)
	require.Equal(t, before, requestFactsTable.Len(), "exchange")

	s = newFakeStream()
	chatHeaders(s, req)
	router, picker := c.router.Create(s), c.picker.Create(s)
	router.OnRequestHeaders(&s.reqHeaders, false)
	router.OnRequestBody(&fakeBody{b: req}, true)
	require.Equal(t, before+1, requestFactsTable.Len())
	picker.OnRequestHeaders(&s.reqHeaders, false)
	picker.OnStreamComplete() // reset: no response
	router.OnStreamComplete()
	picker.OnDestroy()
	router.OnDestroy()
	require.Equal(t, before, requestFactsTable.Len(), "reset")

	s = newFakeStream()
	bad := []byte(`{"model":`)
	chatHeaders(s, bad)
	router = c.router.Create(s)
	router.OnRequestHeaders(&s.reqHeaders, false)
	router.OnRequestBody(&fakeBody{b: bad}, true)
	require.Equal(t, 1, s.replies)
	router.OnStreamComplete()
	router.OnDestroy()
	require.Equal(t, before, requestFactsTable.Len(), "local reply")
}

// batchOf is a batch of s's filter, as a filter starts one in a hook.
func batchOf(s *fakeStream) *abi.Batch {
	var b abi.Batch
	b.Start(abi.NewStream(s))
	return &b
}

// receiveNow is endpoint_picker's side in one go: the reads, run, read.
func receiveNow(s *fakeStream) *requestFacts {
	b := batchOf(s)
	r := receiveRequestFacts(b)
	b.Run()
	return r.get(b)
}
