// Package abi holds what touches Envoy's dynamic-module C ABI beyond the Go
// SDK: the panic barrier every hook goes through, the runtime guard that
// refuses to run without GODEBUG=cgocheck=0, and a reader of body chunks
// that does not allocate (BodyChunks).
package abi
