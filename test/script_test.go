package test

// Shorthands for tests in this package that drive the scripted module
// (test/abihost/testmodule); abihost's own conformance tests are in
// test/abihost/conformance.

import (
	"testing"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

type M = map[string]any

func scriptHost(t *testing.T, opts harness.Options) *harness.Host {
	t.Helper()
	return harness.StartScripted(t, opts)
}

func script(name string, v M) harness.Filter { return harness.Script(name, v) }
