package transform

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func TestParseRequestFixtures(t *testing.T) {
	tests := []struct {
		file         string
		ep           Endpoint
		model        string
		stream       bool
		includeUsage bool
		prompt       string // the prompt's gjson path; a string prompt is compared without quotes
	}{
		{"chat.json", EndpointChatCompletions, "gpt-4o", false, false, "messages"},
		{"chat_tools.json", EndpointChatCompletions, "gpt-4.1", false, false, "messages"},
		{"chat_vision_stream.json", EndpointChatCompletions, "gpt-4.1", true, false, "messages"},
		{"chat_stream_usage.json", EndpointChatCompletions, "o4-mini", true, true, "messages"},
		{"completions.json", EndpointCompletions, "gpt-3.5-turbo-instruct", false, false, "prompt"},
		{"completions_tokens.json", EndpointCompletions, "gpt-3.5-turbo-instruct", true, false, "prompt"},
		{"embeddings.json", EndpointEmbeddings, "text-embedding-3-small", false, false, "input"},
		{"responses.json", EndpointResponses, "gpt-4.1", false, false, "input"},
		{"responses_items_stream.json", EndpointResponses, "o3", true, false, "input"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := readFixture(t, filepath.Join("openai", "requests", tt.file))
			r, err := ParseRequest(tt.ep, body)
			require.NoError(t, err)
			require.Equal(t, tt.model, r.Model)
			require.Equal(t, tt.stream, r.Stream)
			require.Equal(t, tt.includeUsage, r.IncludeUsage)
			want := gjson.GetBytes(body, tt.prompt)
			if want.Type == gjson.String {
				require.Equal(t, want.Raw[1:len(want.Raw)-1], string(r.Prompt))
			} else {
				require.Equal(t, want.Raw, string(r.Prompt))
			}
			// Zero-copy: the prompt is a window on the body.
			require.Same(t, &body[r.prompt.start], &r.Prompt[0])
		})
	}
}

func TestParseRequestErrors(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name string
		ep   Endpoint
		body string
		code string
		want string // the error body
	}{
		{"empty", EndpointChatCompletions, ``, "invalid_json",
			`{"error":{"message":"request body is not valid JSON","type":"invalid_request_error","param":null,"code":"invalid_json"}}`},
		{"truncated", EndpointChatCompletions, `{"model":"m",` + msgs, "invalid_json", ""},
		{"trailing data", EndpointChatCompletions, `{"model":"m",` + msgs + `} {}`, "invalid_json", ""},
		{"not an object", EndpointChatCompletions, `["model"]`, "invalid_json",
			`{"error":{"message":"request body must be a JSON object","type":"invalid_request_error","param":null,"code":"invalid_json"}}`},
		{"no model", EndpointChatCompletions, `{` + msgs + `}`, "missing_required_parameter",
			`{"error":{"message":"you must provide a model parameter","type":"invalid_request_error","param":"model","code":"missing_required_parameter"}}`},
		{"model number", EndpointChatCompletions, `{"model":7,` + msgs + `}`, "invalid_type",
			`{"error":{"message":"model must be a string","type":"invalid_request_error","param":"model","code":"invalid_type"}}`},
		{"model null", EndpointChatCompletions, `{"model":null,` + msgs + `}`, "invalid_type", ""},
		{"model object", EndpointChatCompletions, `{"model":{"name":"m"},` + msgs + `}`, "invalid_type", ""},
		{"model empty", EndpointChatCompletions, `{"model":"",` + msgs + `}`, "invalid_value", ""},
		{"model with a newline", EndpointChatCompletions, `{"model":"a\nx-evil: 1",` + msgs + `}`, "invalid_value",
			`{"error":{"message":"model must be UTF-8 text without control characters","type":"invalid_request_error","param":"model","code":"invalid_value"}}`},
		{"model not UTF-8", EndpointChatCompletions, "{\"model\":\"\x97\"," + msgs + `}`, "invalid_value", ""},
		{"model twice", EndpointChatCompletions, `{"model":"a",` + msgs + `,"model":"b"}`, "duplicate_key",
			`{"error":{"message":"duplicate key \"model\" in request body","type":"invalid_request_error","param":"model","code":"duplicate_key"}}`},
		{"model twice, once escaped", EndpointChatCompletions, `{"model":"a",` + msgs + `,"mod\u0065l":"b"}`, "duplicate_key", ""},
		{"stream string", EndpointChatCompletions, `{"model":"m","stream":"yes",` + msgs + `}`, "invalid_type",
			`{"error":{"message":"stream must be a boolean","type":"invalid_request_error","param":"stream","code":"invalid_type"}}`},
		{"stream_options string", EndpointChatCompletions, `{"model":"m","stream_options":"x",` + msgs + `}`, "invalid_type", ""},
		{"include_usage number", EndpointChatCompletions, `{"model":"m","stream_options":{"include_usage":1},` + msgs + `}`, "invalid_type", ""},
		{"include_usage twice", EndpointChatCompletions, `{"model":"m","stream_options":{"include_usage":false,"include_usage":true},` + msgs + `}`, "duplicate_key", ""},
		{"no messages", EndpointChatCompletions, `{"model":"m"}`, "missing_required_parameter",
			`{"error":{"message":"missing required parameter: \"messages\"","type":"invalid_request_error","param":"messages","code":"missing_required_parameter"}}`},
		{"messages object", EndpointChatCompletions, `{"model":"m","messages":{}}`, "invalid_type", ""},
		{"messages empty", EndpointChatCompletions, `{"model":"m","messages":[ ]}`, "invalid_value", ""},
		{"messages twice", EndpointChatCompletions, `{"model":"m",` + msgs + `,` + msgs + `}`, "duplicate_key", ""},
		{"completions without prompt", EndpointCompletions, `{"model":"m",` + msgs + `}`, "missing_required_parameter", ""},
		{"completions prompt number", EndpointCompletions, `{"model":"m","prompt":5}`, "invalid_type", ""},
		{"embeddings without input", EndpointEmbeddings, `{"model":"m","prompt":"x"}`, "missing_required_parameter", ""},
		{"embeddings empty input", EndpointEmbeddings, `{"model":"m","input":[]}`, "invalid_value", ""},
		{"responses input null", EndpointResponses, `{"model":"m","input":null}`, "invalid_type", ""},
		{"responses without input or stored reference", EndpointResponses, `{"model":"m","previous_response_id":null,"instructions":"x"}`, "missing_required_parameter", ""},
		{"model name over the cap", EndpointChatCompletions, `{"model":"` + strings.Repeat("x", MaxModelNameBytes+1) + `",` + msgs + `}`, "invalid_value",
			`{"error":{"message":"model must be at most 256 bytes long","type":"invalid_request_error","param":"model","code":"invalid_value"}}`},
		{"stream_options without stream", EndpointChatCompletions, `{"model":"0","messages":[{}],"stream_options":{"include_usage":true}}`, "invalid_value",
			`{"error":{"message":"stream_options is only allowed when stream is true","type":"invalid_request_error","param":"stream_options","code":"invalid_value"}}`},
		{"stream_options with stream false", EndpointCompletions, `{"model":"m","prompt":"p","stream":false,"stream_options":{"include_usage":false}}`, "invalid_value", ""},
		{"messages without messages", EndpointMessages, `{"model":"m","prompt":"x"}`, "missing_required_parameter", ""},
		{"rerank without model", EndpointRerank, `{"query":"q","documents":["a"]}`, "missing_required_parameter", ""},
		{"invocations without model", EndpointInvocations, `{"prompt":"x"}`, "missing_required_parameter", ""},
		{"invocations of nothing known", EndpointInvocations, `{"model":"m","text_1":"x"}`, "missing_required_parameter",
			`{"error":{"message":"missing required parameter: \"messages\"","type":"invalid_request_error","param":"messages","code":"missing_required_parameter"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest(tt.ep, []byte(tt.body))
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, 400, e.Status)
			require.Equal(t, tt.code, e.Code)
			require.True(t, gjson.ValidBytes(e.Body()), "%s", e.Body())
			if tt.want != "" {
				require.JSONEq(t, tt.want, string(e.Body()))
				require.Equal(t, tt.want, string(e.Body()))
			}
		})
	}
}

func TestParseRequestEndpoints(t *testing.T) {
	tests := []struct {
		name   string
		ep     Endpoint
		body   string
		want   Endpoint
		prompt string
		stream bool
	}{
		{"invocations with messages is chat", EndpointInvocations, `{"model":"m","prompt":"p","messages":[{"role":"user"}]}`, EndpointChatCompletions, `[{"role":"user"}]`, false},
		{"invocations with prompt is completions", EndpointInvocations, `{"model":"m","input":"i","prompt":"p","stream":true}`, EndpointCompletions, "p", true},
		{"invocations with input is embeddings", EndpointInvocations, `{"model":"m","input":["a"],"stream":true}`, EndpointEmbeddings, `["a"]`, false},
		{"responses continuing a stored response", EndpointResponses, `{"model":"m","previous_response_id":"resp_1","stream":true}`, EndpointResponses, "", true},
		{"responses with a stored prompt", EndpointResponses, `{"model":"m","prompt":{"id":"pmpt_1"}}`, EndpointResponses, "", false},
		{"responses in a conversation", EndpointResponses, `{"model":"m","conversation":"conv_1"}`, EndpointResponses, "", false},
		{"responses with input and a stored response", EndpointResponses, `{"model":"m","previous_response_id":"r","input":"more"}`, EndpointResponses, "more", false},
		{"responses ignore stream_options", EndpointResponses, `{"model":"m","input":"x","stream_options":{"include_obfuscation":false}}`, EndpointResponses, "x", false},
		{"empty stream_options without stream", EndpointChatCompletions, `{"model":"m","messages":[1],"stream_options":{}}`, EndpointChatCompletions, "[1]", false},
		{"null stream_options without stream", EndpointCompletions, `{"model":"m","prompt":"p","stream_options":null}`, EndpointCompletions, "p", false},
		{"embeddings ignore stream_options", EndpointEmbeddings, `{"model":"m","input":"p","stream_options":{"include_usage":true}}`, EndpointEmbeddings, "p", false},
		{"anthropic messages", EndpointMessages, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`, EndpointMessages, `[{"role":"user","content":"hi"}]`, false},
		{"rerank needs only a model", EndpointRerank, `{"model":"m","query":"q","documents":["a"]}`, EndpointRerank, "", false},
		{"model name at the cap", EndpointScore, `{"model":"` + strings.Repeat("é", MaxModelNameBytes/2) + `"}`, EndpointScore, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRequest(tt.ep, []byte(tt.body))
			require.NoError(t, err)
			require.Equal(t, tt.want, r.Endpoint)
			require.Equal(t, tt.prompt, string(r.Prompt))
			require.Equal(t, tt.stream, r.Stream)
			require.False(t, r.IncludeUsage)
		})
	}
}

func TestParseRequestPromptStringKeepsEscapes(t *testing.T) {
	body := []byte(`{"model":"m","prompt":"line1\nline2 \"q\" \u00e9"}`)
	r, err := ParseRequest(EndpointCompletions, body)
	require.NoError(t, err)
	require.Equal(t, `line1\nline2 \"q\" \u00e9`, string(r.Prompt))
}

func TestParseRequestIgnoresNestedLookalikes(t *testing.T) {
	// "model" and "stream" inside messages are not the request's.
	body := []byte(`{"messages":[{"role":"user","content":"x","model":"evil","stream":true}],"model":"good"}`)
	r, err := ParseRequest(EndpointChatCompletions, body)
	require.NoError(t, err)
	require.Equal(t, "good", r.Model)
	require.False(t, r.Stream)
}

// TestKeyNameBackslashes puts a '\\' (or each other byte value) at every
// position of keys of 0 to 20 bytes, after nothing, plain text or
// backslashes (which the last word reads too): hasBackslash must find
// exactly the keys that hold one, and keyName unescape them.
func TestKeyNameBackslashes(t *testing.T) {
	tests := []struct{ name, before string }{
		{"at the start", ""}, {"after plain text", `{"x":1,"`}, {"after backslashes", strings.Repeat(`\\`, 9)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := len(tt.before)
			for n := range 21 {
				for p := range n {
					for c := range 256 {
						key := []byte(strings.Repeat("k", n))
						key[p] = byte(c)
						body := []byte(tt.before + string(key) + `"`)
						require.Equal(t, bytes.IndexByte(key, '\\') >= 0, hasBackslash(body, start, start+n), "%q", body)
					}
				}
				body := []byte(tt.before + strings.Repeat("k", n) + `"`)
				require.False(t, hasBackslash(body, start, start+n), "%q", body)
			}
			for raw, want := range map[string]string{`"mod\u0065l"`: "model", `"max_tokens"`: "max_tokens", `"a\\b"`: `a\b`} {
				body := []byte(`{"x":1,` + raw)
				require.Equal(t, want, keyName(body, span{len(body) - len(raw), len(body)}))
			}
		})
	}
}
