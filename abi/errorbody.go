package abi

import "encoding/json"

// OpenAIError renders the OpenAI-style error body
// {"error":{"message","type","param","code"}} that clients of
// OpenAI-compatible servers already parse (transform.Error renders the same
// shape for the filters' own replies; abi stays free of their packages).
func OpenAIError(message, errType, code string) []byte {
	type inner struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	}
	b, _ := json.Marshal(struct {
		Error inner `json:"error"`
	}{inner{Message: message, Type: errType, Code: code}})
	return b
}

// JSONHeaders are the response headers of every local JSON reply.
var JSONHeaders = [][2]string{{"content-type", "application/json"}}
