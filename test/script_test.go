package test

// Shorthands for tests in this package that drive the scripted module
// (test/abihost/testmodule); abihost's own conformance tests are in
// test/abihost/conformance.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

type M = map[string]any

func scriptHost(t *testing.T, opts harness.Options) *harness.Host {
	t.Helper()
	return harness.StartScripted(t, opts)
}

func script(name string, v M) harness.Filter { return harness.Script(name, v) }

func logs(s *harness.Stream, prefix string) []string { return s.LogsWithPrefix(prefix) }

var reqHeaders = harness.Headers{{":method", "POST"}, {":path", "/p"}, {":authority", "h"}, {":scheme", "http"}}

func open(t *testing.T, h *harness.Host) *harness.Stream {
	t.Helper()
	s, err := h.Open(harness.StreamOptions{})
	require.NoError(t, err)
	return s
}

func end(t *testing.T, s *harness.Stream) *harness.StreamState {
	t.Helper()
	st, err := s.End()
	require.NoError(t, err)
	return st
}

func kinds(ev []harness.Event) []string { return harness.Kinds(ev) }

func waitFor(t *testing.T, s *harness.Stream, cond func([]harness.Event) bool) []harness.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := s.Wait(ctx, cond)
	require.NoError(t, err)
	return ev
}
