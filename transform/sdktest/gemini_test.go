package sdktest

// End-to-end tests of the Gemini translator, as anthropic_test.go does for
// Anthropic: the OpenAI SDK talks through the translating proxy to a fake
// Gemini API (or Vertex AI) server that decodes what it receives strictly
// into the official Google Gen AI SDK's wire types (an unknown field is a
// failure) and answers with the SDK's GenerateContentResponse.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"
	"google.golang.org/genai"
)

// geminiRequest is generateContent's request body, in the SDK's types.
type geminiRequest struct {
	Contents          []*genai.Content        `json:"contents"`
	SystemInstruction *genai.Content          `json:"systemInstruction,omitempty"`
	Tools             []*genai.Tool           `json:"tools,omitempty"`
	ToolConfig        *genai.ToolConfig       `json:"toolConfig,omitempty"`
	GenerationConfig  *genai.GenerationConfig `json:"generationConfig,omitempty"`
}

// fakeGemini serves generateContent and streamGenerateContent?alt=sse for
// one model, on the Gemini API's paths or on Vertex AI's.
type fakeGemini struct {
	t      *testing.T
	srv    *httptest.Server
	prefix string // the path up to "/models/"
	auth   func(http.Header) bool
	answer func(w http.ResponseWriter, stream bool, req *geminiRequest)

	mu   sync.Mutex
	got  []geminiRequest
	path []string
}

func newFakeGemini(t *testing.T, prefix string, auth func(http.Header) bool) *fakeGemini {
	f := &fakeGemini{t: t, prefix: prefix, auth: auth}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGemini) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	rest, ok := strings.CutPrefix(r.URL.Path, f.prefix+"/models/")
	if err != nil || r.Method != http.MethodPost || !ok {
		writeGoogleError(w, 404, "NOT_FOUND", "unexpected request "+r.URL.Path)
		return
	}
	_, method, _ := strings.Cut(rest, ":")
	stream := method == "streamGenerateContent"
	if !stream && method != "generateContent" || stream && r.URL.Query().Get("alt") != "sse" {
		writeGoogleError(w, 404, "NOT_FOUND", "unexpected method "+method)
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req geminiRequest
	if err := dec.Decode(&req); err != nil {
		writeGoogleError(w, 400, "INVALID_ARGUMENT", "Invalid JSON payload received. "+err.Error())
		return
	}
	f.mu.Lock()
	f.got = append(f.got, req)
	f.path = append(f.path, r.URL.RequestURI())
	f.mu.Unlock()
	switch {
	case !f.auth(r.Header):
		writeGoogleError(w, 403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.")
	case r.Header.Get("content-length") != strconv.Itoa(len(body)):
		writeGoogleError(w, 400, "INVALID_ARGUMENT", "content-length does not match the body")
	default:
		f.answer(w, stream, &req)
	}
}

func (f *fakeGemini) last() (geminiRequest, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(f.t, f.got)
	return f.got[len(f.got)-1], f.path[len(f.path)-1]
}

func writeGoogleError(w http.ResponseWriter, code int, status, msg string) {
	w.Header().Set("content-type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"status":%q}}`, code, msg, status)
}

// writeResponses answers with the SDK's responses: one JSON body, or one
// SSE event per response, each flushed on its own.
func writeResponses(t *testing.T, w http.ResponseWriter, stream bool, rs ...*genai.GenerateContentResponse) {
	if !stream {
		require.Len(t, rs, 1)
		w.Header().Set("content-type", "application/json; charset=UTF-8")
		require.NoError(t, json.NewEncoder(w).Encode(rs[0]))
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

func setupGemini(t *testing.T, config string) (*fakeGemini, openai.Client) {
	prefix, auth := "/v1beta", func(h http.Header) bool { return h.Get("x-goog-api-key") == testKey && h.Get("authorization") == "" }
	if strings.Contains(config, "vertex_ai") {
		prefix = "/v1/projects/proj-1/locations/us-central1/publishers/google"
		auth = func(h http.Header) bool {
			return h.Get("authorization") == "Bearer "+testKey && h.Get("x-goog-api-key") == ""
		}
	}
	f := newFakeGemini(t, prefix, auth)
	p := newTranslatingProxy(t, mustBackend(t, config, testKey), f.srv.URL)
	c := openai.NewClient(option.WithBaseURL(p.srv.URL+"/v1/"), option.WithAPIKey("client-own-key"), option.WithMaxRetries(0))
	return f, c
}

func textResponse(text, finish string, usage *genai.GenerateContentResponseUsageMetadata) *genai.GenerateContentResponse {
	r := &genai.GenerateContentResponse{ModelVersion: "gemini-2.5-flash", ResponseID: "resp-G1", UsageMetadata: usage}
	c := &genai.Candidate{Content: genai.NewContentFromText(text, genai.RoleModel), FinishReason: genai.FinishReason(finish)}
	r.Candidates = []*genai.Candidate{c}
	return r
}

func TestSDKGeminiChat(t *testing.T) {
	for _, config := range []string{`{"schema":"gemini"}`, `{"schema":"vertex_ai","project":"proj-1","location":"us-central1"}`} {
		t.Run(config, func(t *testing.T) {
			f, client := setupGemini(t, config)
			f.answer = func(w http.ResponseWriter, stream bool, _ *geminiRequest) {
				writeResponses(t, w, stream, textResponse("Hello! 👋", "STOP", &genai.GenerateContentResponseUsageMetadata{
					PromptTokenCount: 12, CandidatesTokenCount: 6, TotalTokenCount: 18, CachedContentTokenCount: 4}))
			}
			c, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
				Model:               "gemini-2.5-flash",
				Messages:            []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("Hello")},
				Temperature:         openai.Float(0.25),
				MaxCompletionTokens: openai.Int(100),
				Stop:                openai.ChatCompletionNewParamsStopUnion{OfStringArray: []string{"END", "STOP"}},
			})
			require.NoError(t, err)
			got, path := f.last()
			require.True(t, strings.HasSuffix(path, "/models/gemini-2.5-flash:generateContent"), path)
			require.Equal(t, "Be brief.", got.SystemInstruction.Parts[0].Text)
			require.Len(t, got.Contents, 1)
			require.Equal(t, genai.RoleUser, got.Contents[0].Role)
			require.Equal(t, "Hello", got.Contents[0].Parts[0].Text)
			require.Equal(t, int32(100), got.GenerationConfig.MaxOutputTokens)
			require.InDelta(t, 0.25, *got.GenerationConfig.Temperature, 1e-6)
			require.Equal(t, []string{"END", "STOP"}, got.GenerationConfig.StopSequences)

			require.Equal(t, "resp-G1", c.ID)
			require.Equal(t, "Hello! 👋", c.Choices[0].Message.Content)
			require.Equal(t, "stop", c.Choices[0].FinishReason)
			require.Equal(t, int64(12), c.Usage.PromptTokens)
			require.Equal(t, int64(4), c.Usage.PromptTokensDetails.CachedTokens)
			require.Equal(t, int64(6), c.Usage.CompletionTokens)
		})
	}
}

func TestSDKGeminiToolRoundTrip(t *testing.T) {
	f, client := setupGemini(t, `{"schema":"gemini"}`)
	f.answer = func(w http.ResponseWriter, stream bool, req *geminiRequest) {
		last := req.Contents[len(req.Contents)-1]
		if last.Parts[0].FunctionResponse != nil {
			writeResponses(t, w, stream, textResponse("15 degrees in Paris.", "STOP", nil))
			return
		}
		r := textResponse("", "STOP", &genai.GenerateContentResponseUsageMetadata{PromptTokenCount: 30, CandidatesTokenCount: 10, TotalTokenCount: 40})
		r.Candidates[0].Content = &genai.Content{Role: genai.RoleModel, Parts: []*genai.Part{
			genai.NewPartFromFunctionCall("get_weather", map[string]any{"location": "Paris"}),
		}}
		writeResponses(t, w, stream, r)
	}
	params := openai.ChatCompletionNewParams{
		Model:      "gemini-2.5-flash",
		Messages:   []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Paris?")},
		Tools:      []openai.ChatCompletionToolUnionParam{weatherTool},
		ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
	}
	c, err := client.Chat.Completions.New(context.Background(), params)
	require.NoError(t, err)
	got, _ := f.last()
	require.Len(t, got.Tools, 1)
	decl := got.Tools[0].FunctionDeclarations[0]
	require.Equal(t, "get_weather", decl.Name)
	require.Equal(t, map[string]any{"type": "object", "properties": map[string]any{"location": map[string]any{"type": "string"}}, "required": []any{"location"}}, decl.ParametersJsonSchema)
	require.Equal(t, genai.FunctionCallingConfigModeAny, got.ToolConfig.FunctionCallingConfig.Mode)

	msg := c.Choices[0].Message
	require.Equal(t, "tool_calls", c.Choices[0].FinishReason)
	require.Len(t, msg.ToolCalls, 1)
	require.Equal(t, "get_weather", msg.ToolCalls[0].Function.Name)
	require.JSONEq(t, `{"location":"Paris"}`, msg.ToolCalls[0].Function.Arguments)

	params.Messages = append(params.Messages, msg.ToParam(), openai.ToolMessage("15C", msg.ToolCalls[0].ID))
	c, err = client.Chat.Completions.New(context.Background(), params)
	require.NoError(t, err)
	require.Equal(t, "15 degrees in Paris.", c.Choices[0].Message.Content)
	got, _ = f.last()
	require.Len(t, got.Contents, 3)
	require.Equal(t, genai.RoleModel, got.Contents[1].Role)
	require.Equal(t, "get_weather", got.Contents[1].Parts[0].FunctionCall.Name)
	require.Equal(t, map[string]any{"location": "Paris"}, got.Contents[1].Parts[0].FunctionCall.Args)
	fr := got.Contents[2].Parts[0].FunctionResponse
	require.Equal(t, "get_weather", fr.Name, "the function's name, found from the call's id")
	require.Equal(t, map[string]any{"content": "15C"}, fr.Response)
}

func TestSDKGeminiStream(t *testing.T) {
	f, client := setupGemini(t, `{"schema":"vertex_ai","project":"proj-1","location":"us-central1","model":"gemini-2.5-pro"}`)
	f.answer = func(w http.ResponseWriter, stream bool, _ *geminiRequest) {
		require.True(t, stream)
		thought := textResponse("", "", nil)
		thought.Candidates[0].Content.Parts = []*genai.Part{{Text: "Weather needs a tool.", Thought: true}}
		call := textResponse("", "STOP", &genai.GenerateContentResponseUsageMetadata{PromptTokenCount: 25, CandidatesTokenCount: 40, ThoughtsTokenCount: 31, TotalTokenCount: 96})
		call.Candidates[0].Content.Parts = []*genai.Part{genai.NewPartFromFunctionCall("get_weather", map[string]any{"location": "Lyon"})}
		writeResponses(t, w, true, thought, textResponse("Let me ", "", nil), textResponse("check — ☀️ or 🌧?", "", nil), call)
	}
	stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:         "smart",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Lyon?")},
		Tools:         []openai.ChatCompletionToolUnionParam{weatherTool},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var acc openai.ChatCompletionAccumulator
	var reasoning strings.Builder
	for stream.Next() {
		chunk := stream.Current()
		require.True(t, acc.AddChunk(chunk))
		if len(chunk.Choices) > 0 {
			if r, ok := chunk.Choices[0].Delta.JSON.ExtraFields["reasoning_content"]; ok {
				var s string
				require.NoError(t, json.Unmarshal([]byte(r.Raw()), &s))
				reasoning.WriteString(s)
			}
		}
		require.Equal(t, "smart", chunk.Model, "the client's model, not the override")
	}
	require.NoError(t, stream.Err())
	_, path := f.last()
	require.Equal(t, "/v1/projects/proj-1/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse", path)
	c := acc.ChatCompletion
	require.Equal(t, "resp-G1", c.ID)
	require.Equal(t, "Let me check — ☀️ or 🌧?", c.Choices[0].Message.Content)
	require.Equal(t, "tool_calls", c.Choices[0].FinishReason)
	require.Len(t, c.Choices[0].Message.ToolCalls, 1)
	require.JSONEq(t, `{"location":"Lyon"}`, c.Choices[0].Message.ToolCalls[0].Function.Arguments)
	require.Equal(t, "Weather needs a tool.", reasoning.String())
	require.Equal(t, int64(25), c.Usage.PromptTokens)
	require.Equal(t, int64(71), c.Usage.CompletionTokens, "thoughts count as completion tokens")
	require.Equal(t, int64(31), c.Usage.CompletionTokensDetails.ReasoningTokens)
}

func TestSDKGeminiErrors(t *testing.T) {
	for _, tc := range []struct {
		name         string
		answer       func(w http.ResponseWriter)
		status       int
		code, errTyp string
	}{
		{"quota", func(w http.ResponseWriter) {
			writeGoogleError(w, 429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")
		},
			429, "rate_limit_exceeded", "requests"},
		{"bad argument", func(w http.ResponseWriter) {
			writeGoogleError(w, 400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
		},
			400, "invalid_argument", "invalid_request_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, client := setupGemini(t, `{"schema":"gemini"}`)
			f.answer = func(w http.ResponseWriter, _ bool, _ *geminiRequest) { tc.answer(w) }
			_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
				Model: "gemini-2.5-flash", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
			var apiErr *openai.Error
			require.True(t, errors.As(err, &apiErr), "%v", err)
			require.Equal(t, tc.status, apiErr.StatusCode)
			require.Equal(t, tc.code, apiErr.Code)
			require.Equal(t, tc.errTyp, apiErr.Type)
		})
	}
}
