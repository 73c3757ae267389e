package fakeprovider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genai"
)

// Google's side of generateContent (the Gemini API and Vertex AI), in the
// Gen AI SDK's types.

// GeminiRequest is generateContent's request body in the Gen AI SDK's types.
type GeminiRequest struct {
	Contents          []*genai.Content        `json:"contents"`
	SystemInstruction *genai.Content          `json:"systemInstruction,omitempty"`
	Tools             []*genai.Tool           `json:"tools,omitempty"`
	ToolConfig        *genai.ToolConfig       `json:"toolConfig,omitempty"`
	GenerationConfig  *genai.GenerationConfig `json:"generationConfig,omitempty"`
}

// Gemini checks what Google requires (the path prefix for its model and
// method, the credential auth accepts, a body that decodes strictly into
// the SDK's types), answering Google's error shape otherwise; then answer
// runs.
func Gemini(prefix string, auth func(http.Header) bool, answer func(w http.ResponseWriter, stream bool, req *GeminiRequest)) func(http.ResponseWriter, *Recorded) {
	return func(w http.ResponseWriter, r *Recorded) {
		dec := json.NewDecoder(bytes.NewReader(r.Body))
		dec.DisallowUnknownFields()
		var req GeminiRequest
		switch {
		case r.Path == prefix+":generateContent":
			if dec.Decode(&req) != nil {
				WriteGoogleError(w, 400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
				return
			}
			if !auth(r.Header) {
				WriteGoogleError(w, 403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.")
				return
			}
			answer(w, false, &req)
		case r.Path == prefix+":streamGenerateContent?alt=sse":
			if dec.Decode(&req) != nil || !auth(r.Header) {
				WriteGoogleError(w, 400, "INVALID_ARGUMENT", "bad request")
				return
			}
			answer(w, true, &req)
		default:
			WriteGoogleError(w, 404, "NOT_FOUND", "no such path "+r.Path)
		}
	}
}

// WriteGoogleError answers Google's error shape.
func WriteGoogleError(w http.ResponseWriter, code int, status, msg string) {
	w.Header().Set("content-type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"status":%q}}`, code, msg, status)
}

// WriteGeminiResponses answers with the SDK's responses, as one JSON body
// (the last) or as SSE events.
func WriteGeminiResponses(t testing.TB, w http.ResponseWriter, stream bool, rs ...*genai.GenerateContentResponse) {
	if !stream {
		w.Header().Set("content-type", "application/json; charset=UTF-8")
		require.NoError(t, json.NewEncoder(w).Encode(rs[len(rs)-1]))
		return
	}
	w.Header().Set("content-type", "text/event-stream")
	w.WriteHeader(200)
	for _, r := range rs {
		b, err := json.Marshal(r)
		require.NoError(t, err)
		fmt.Fprintf(w, "data: %s\r\n\r\n", b)
		w.(http.Flusher).Flush()
	}
}

// GeminiStory is an answer in two events ("Once upon", " a time"); usage:
// 40 prompt (30 cached), 9 candidates + 6 thoughts.
func GeminiStory() []*genai.GenerateContentResponse {
	first := &genai.GenerateContentResponse{ResponseID: "g-1", ModelVersion: "gemini-2.5-flash",
		Candidates: []*genai.Candidate{{Content: genai.NewContentFromText("Once upon", genai.RoleModel)}}}
	last := &genai.GenerateContentResponse{ResponseID: "g-1", ModelVersion: "gemini-2.5-flash",
		Candidates:    []*genai.Candidate{{Content: genai.NewContentFromText(" a time", genai.RoleModel), FinishReason: genai.FinishReasonStop}},
		UsageMetadata: &genai.GenerateContentResponseUsageMetadata{PromptTokenCount: 40, CachedContentTokenCount: 30, CandidatesTokenCount: 9, ThoughtsTokenCount: 6, TotalTokenCount: 55}}
	return []*genai.GenerateContentResponse{first, last}
}

// GeminiBlocked is a prompt Gemini blocked, under a 200.
const GeminiBlocked = `{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":5,"totalTokenCount":5}}`
