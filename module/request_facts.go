package main

// requestFactsKey is where ai_router leaves its parse of the request body for
// endpoint_picker on the same stream (the SDK's SetData/GetData), so the body
// is parsed once.
const requestFactsKey = "inferencepool.request_facts"

// requestFacts is what ai_router learned from the body. Prompt is a Go-owned
// copy: Envoy's buffer views die when the hook returns.
type requestFacts struct {
	Model  string
	Prompt []byte
	Stream bool
}
