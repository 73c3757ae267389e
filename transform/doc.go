// Package transform is the plain-Go core of the ai_router filter: it parses
// and checks OpenAI requests, rewrites the requested model, accounts the
// tokens of plain and streamed responses, computes token costs and keeps
// local token budgets.
//
// It knows nothing of Envoy. The module package feeds it bytes and headers
// and turns its answers into local replies, headers and metadata. Nothing here
// keeps a reference to a caller's buffer after a call returns, unless a doc
// comment says so.
package transform
