package abi

import "encoding/json"

// OpenAIError renders the OpenAI-style error body
// {"error":{"message","type","code"}} that clients of OpenAI-compatible
// servers already parse.
func OpenAIError(message, errType, code string) []byte {
	type inner struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	}
	b, _ := json.Marshal(struct {
		Error inner `json:"error"`
	}{inner{message, errType, code}})
	return b
}

// JSONHeaders are the response headers of every local JSON reply.
var JSONHeaders = [][2]string{{"content-type", "application/json"}}
