package abi

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// CgoCheckFix is the one line that tells an operator how to fix a missing
// GODEBUG setting.
const CgoCheckFix = "envoy-inferencepool: GODEBUG=cgocheck=0 is not set in Envoy's environment; " +
	"the Go SDK passes Go pointers to Envoy and the Go runtime would abort Envoy. " +
	"Fix: start Envoy with GODEBUG=cgocheck=0 (see README.md)"

// ErrCgoCheck is returned by filter config creation when the guard fails, so
// Envoy rejects the config with a clear message instead of crashing.
var ErrCgoCheck = errors.New(CgoCheckFix)

// cgoCheckDisabled reports whether GODEBUG, as the Go runtime read it at
// start, turns cgocheck off. The last setting wins, as in the runtime.
func cgoCheckDisabled(godebug string) bool {
	disabled := false
	for _, kv := range strings.Split(godebug, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && k == "cgocheck" {
			disabled = v == "0"
		}
	}
	return disabled
}

// CgoCheckOK is computed once at load: GODEBUG cannot change afterwards.
var CgoCheckOK = cgoCheckDisabled(os.Getenv("GODEBUG"))

// WarnIfCgoCheck prints the fix once, at library load, when the guard fails.
func WarnIfCgoCheck() {
	if !CgoCheckOK {
		fmt.Fprintln(os.Stderr, CgoCheckFix)
	}
}
