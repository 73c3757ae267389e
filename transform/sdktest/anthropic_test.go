package sdktest

// End-to-end tests of the Anthropic translator in plain Go: the official
// OpenAI SDK talks to a "proxy" (an httptest server that runs the
// translator the way the ai_upstream filter will: request, response
// headers, body chunks), which talks to a fake Anthropic server that
// decodes what it receives with the official Anthropic SDK's types and
// answers in Anthropic's documented shapes. An OpenAI SDK user must see
// replies, streams, tool calls, usage and errors as from OpenAI.

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
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/shared"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/envoy-inferencepool/envoy-inferencepool/transform"
)

const testKey = "sk-test-SECRET-0123456789"

func mustBackend(t testing.TB, config, key string) *transform.Backend {
	t.Helper()
	b, err := transform.ParseBackend([]byte(config), key)
	require.NoError(t, err)
	return b
}

// applyHeaders applies edits to a header map as Envoy would.
func applyHeaders(h map[string]string, edits []transform.HeaderEdit) {
	for _, e := range edits {
		if e.Remove {
			delete(h, e.Name)
		} else {
			h[e.Name] = e.Value
		}
	}
}

// fakeAnthropic is a Messages API server on 127.0.0.1.
type fakeAnthropic struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(w http.ResponseWriter, p *anthropic.MessageNewParams)

	mu   sync.Mutex
	got  []anthropic.MessageNewParams
	raw  []string
	head []http.Header
}

func newFakeAnthropic(t *testing.T) *fakeAnthropic {
	f := &fakeAnthropic{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAnthropic) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
		http.Error(w, "unexpected request", http.StatusTeapot)
		return
	}
	var p anthropic.MessageNewParams
	if err := json.Unmarshal(body, &p); err != nil {
		writeAnthropicError(w, 400, "invalid_request_error", "cannot decode: "+err.Error())
		return
	}
	f.mu.Lock()
	f.got = append(f.got, p)
	f.raw = append(f.raw, string(body))
	f.head = append(f.head, r.Header.Clone())
	f.mu.Unlock()
	switch {
	case r.Header.Get("x-api-key") != testKey:
		writeAnthropicError(w, 401, "authentication_error", "invalid x-api-key")
	case r.Header.Get("anthropic-version") == "":
		writeAnthropicError(w, 400, "invalid_request_error", "anthropic-version: header is required")
	case r.Header.Get("content-length") != strconv.Itoa(len(body)):
		writeAnthropicError(w, 400, "invalid_request_error", "content-length does not match the body")
	default:
		f.answer(w, &p)
	}
}

func (f *fakeAnthropic) last() (anthropic.MessageNewParams, string, http.Header) {
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(f.t, f.got)
	n := len(f.got) - 1
	return f.got[n], f.raw[n], f.head[n]
}

func writeAnthropicError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("content-type", "application/json")
	w.Header().Set("request-id", "req_018EeWyXxfu5pfWkrYcMdjWG")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"error","error":{"type":%q,"message":%q},"request_id":"req_018EeWyXxfu5pfWkrYcMdjWG"}`, typ, msg)
}

func writeMessage(w http.ResponseWriter, msg string) {
	w.Header().Set("content-type", "application/json")
	io.WriteString(w, msg)
}

// writeEvents streams Anthropic SSE events, each flushed on its own. The
// events of the Messages stream are checked against the SDK's own type
// first, so that the fake speaks the real protocol.
func writeEvents(t *testing.T, w http.ResponseWriter, events ...string) {
	w.Header().Set("content-type", "text/event-stream; charset=utf-8")
	w.WriteHeader(200)
	for _, ev := range events {
		typ := gjson.Get(ev, "type").Str
		if strings.HasPrefix(typ, "message_") || strings.HasPrefix(typ, "content_block_") {
			var u anthropic.MessageStreamEventUnion
			require.NoError(t, json.Unmarshal([]byte(ev), &u), ev)
			require.Equal(t, typ, u.Type)
		}
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, ev)
		w.(http.Flusher).Flush()
	}
}

// translatingProxy runs a Translator for each request the way the
// upstream filter does, with a header map shared as Envoy's is.
type translatingProxy struct {
	srv   *httptest.Server
	mu    sync.Mutex
	usage []transform.Usage
}

func newTranslatingProxy(t *testing.T, b *transform.Backend, upstream string) *translatingProxy {
	p := &translatingProxy{}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		tr := b.NewTranslator()
		out, err := tr.TranslateRequest(transform.UpstreamRequest{Path: r.URL.RequestURI(), Body: body})
		if err != nil {
			e := err.(*transform.Error)
			w.Header().Set("content-type", "application/json")
			w.WriteHeader(e.Status)
			w.Write(e.Body())
			return
		}
		h := map[string]string{":path": r.URL.RequestURI()}
		for k, v := range r.Header {
			h[strings.ToLower(k)] = v[0]
		}
		applyHeaders(h, out.Headers)
		req, err := http.NewRequest(http.MethodPost, upstream+h[":path"], bytes.NewReader(out.Body))
		require.NoError(t, err)
		for k, v := range h {
			if !strings.HasPrefix(k, ":") {
				req.Header.Set(k, v)
			}
		}
		require.Equal(t, strconv.Itoa(len(out.Body)), h["content-length"])
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		rh, err := tr.TranslateResponseHeaders(transform.UpstreamResponse{Status: resp.StatusCode,
			ContentType: resp.Header.Get("content-type"), ContentEncoding: resp.Header.Get("content-encoding")})
		require.NoError(t, err)
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		for _, e := range rh.Headers {
			if e.Remove {
				w.Header().Del(e.Name)
			} else {
				w.Header().Set(e.Name, e.Value)
			}
		}
		w.WriteHeader(rh.Status)
		buf := make([]byte, 97) // odd-sized reads split events anywhere
		var dst []byte
		for {
			n, rerr := resp.Body.Read(buf)
			end := rerr != nil
			dst, _ = tr.TranslateResponseBody(dst[:0], buf[:n], end)
			w.Write(dst)
			w.(http.Flusher).Flush()
			if end {
				break
			}
		}
		if u, ok := tr.Usage(); ok {
			p.mu.Lock()
			p.usage = append(p.usage, u)
			p.mu.Unlock()
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// lastUsage is the usage of the last exchange. An SDK stream ends at
// [DONE], which can reach the client before the proxy's handler has
// recorded the usage: wait for it.
func (p *translatingProxy) lastUsage(t *testing.T) transform.Usage {
	var u transform.Usage
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.usage) == 0 {
			return false
		}
		u = p.usage[len(p.usage)-1]
		return true
	}, 5*time.Second, time.Millisecond, "the proxy recorded no usage")
	return u
}

func setupSDK(t *testing.T, config string) (*fakeAnthropic, *translatingProxy, openai.Client) {
	f := newFakeAnthropic(t)
	p := newTranslatingProxy(t, mustBackend(t, config, testKey), f.srv.URL)
	c := openai.NewClient(option.WithBaseURL(p.srv.URL+"/v1/"), option.WithAPIKey("client-own-key"), option.WithMaxRetries(0))
	return f, p, c
}

var weatherTool = openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
	Name:        "get_weather",
	Description: openai.String("Get the current weather in a given location"),
	Parameters: shared.FunctionParameters{
		"type":       "object",
		"properties": map[string]any{"location": map[string]any{"type": "string"}},
		"required":   []string{"location"},
	},
})

func TestSDKChat(t *testing.T) {
	f, p, client := setupSDK(t, `{"schema":"anthropic","maxTokens":256}`)
	f.answer = func(w http.ResponseWriter, _ *anthropic.MessageNewParams) {
		writeMessage(w, `{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
			"content":[{"type":"text","text":"Hello! 👋"}],"stop_reason":"end_turn","stop_sequence":null,
			"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048,"output_tokens":6}}`)
	}
	c, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:       "claude-sonnet-4-5",
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("Hello")},
		Temperature: openai.Float(0.25),
		Stop:        openai.ChatCompletionNewParamsStopUnion{OfStringArray: []string{"END", "STOP"}},
		User:        openai.String("user-42"),
	})
	require.NoError(t, err)
	got, raw, head := f.last()
	require.Equal(t, int64(256), got.MaxTokens, "the backend's default max_tokens")
	require.Equal(t, anthropic.Model("claude-sonnet-4-5"), got.Model)
	require.Len(t, got.System, 1)
	require.Equal(t, "Be brief.", got.System[0].Text)
	require.Len(t, got.Messages, 1)
	require.Equal(t, "Hello", got.Messages[0].OfUser.Content[0].OfText.Text)
	require.Equal(t, []string{"END", "STOP"}, got.StopSequences)
	require.Equal(t, "user-42", got.Metadata.UserID.Value)
	require.Equal(t, 0.25, gjson.Get(raw, "temperature").Float())
	require.Empty(t, head.Get("authorization"), "the client's own key never reaches the provider")

	require.Equal(t, "Hello! 👋", c.Choices[0].Message.Content)
	require.Equal(t, "stop", c.Choices[0].FinishReason)
	require.Equal(t, "chat.completion", string(c.Object))
	require.Equal(t, "claude-sonnet-4-5-20250929", c.Model)
	require.Equal(t, int64(2060), c.Usage.PromptTokens)
	require.Equal(t, int64(2048), c.Usage.PromptTokensDetails.CachedTokens)
	require.Equal(t, int64(6), c.Usage.CompletionTokens)
	require.Equal(t, int64(2066), c.Usage.TotalTokens)
	require.Equal(t, transform.Usage{InputTokens: 2060, CachedInputTokens: 2048, OutputTokens: 6, TotalTokens: 2066}, p.lastUsage(t))
}

// A tool call and its result, over two turns, with the assistant turn the
// SDK builds from the first reply.
func TestSDKToolRoundTrip(t *testing.T) {
	f, _, client := setupSDK(t, `{"schema":"anthropic"}`)
	f.answer = func(w http.ResponseWriter, p *anthropic.MessageNewParams) {
		if len(p.Messages) == 1 {
			writeMessage(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5",
				"content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{"location":"Paris"}}],
				"stop_reason":"tool_use","usage":{"input_tokens":30,"output_tokens":20}}`)
			return
		}
		writeMessage(w, `{"id":"msg_2","type":"message","role":"assistant","model":"claude-sonnet-4-5",
			"content":[{"type":"text","text":"It is 18°C in Paris."}],"stop_reason":"end_turn","usage":{"input_tokens":60,"output_tokens":9}}`)
	}
	params := openai.ChatCompletionNewParams{
		Model:             "claude-sonnet-4-5",
		Messages:          []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Paris?")},
		Tools:             []openai.ChatCompletionToolUnionParam{weatherTool},
		ToolChoice:        openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
		ParallelToolCalls: openai.Bool(false),
	}
	c, err := client.Chat.Completions.New(context.Background(), params)
	require.NoError(t, err)
	got, _, _ := f.last()
	require.Len(t, got.Tools, 1)
	require.Equal(t, "get_weather", got.Tools[0].OfTool.Name)
	require.Equal(t, []string{"location"}, got.Tools[0].OfTool.InputSchema.Required)
	require.NotNil(t, got.ToolChoice.OfAny)
	require.True(t, got.ToolChoice.OfAny.DisableParallelToolUse.Value)

	msg := c.Choices[0].Message
	require.Equal(t, "tool_calls", c.Choices[0].FinishReason)
	require.Equal(t, "Checking.", msg.Content)
	require.Len(t, msg.ToolCalls, 1)
	call := msg.ToolCalls[0]
	require.Equal(t, "toolu_01A", call.ID)
	require.Equal(t, "function", string(call.Type))
	require.Equal(t, "get_weather", call.Function.Name)
	require.JSONEq(t, `{"location":"Paris"}`, call.Function.Arguments)

	params.Messages = append(params.Messages, msg.ToParam(), openai.ToolMessage("18°C", call.ID))
	c, err = client.Chat.Completions.New(context.Background(), params)
	require.NoError(t, err)
	require.Equal(t, "It is 18°C in Paris.", c.Choices[0].Message.Content)
	got, _, _ = f.last()
	require.Len(t, got.Messages, 3)
	asst := got.Messages[1].OfAssistant
	require.NotNil(t, asst)
	require.Equal(t, "Checking.", asst.Content[0].OfText.Text)
	require.Equal(t, "toolu_01A", asst.Content[1].OfToolUse.ID)
	require.Equal(t, "get_weather", asst.Content[1].OfToolUse.Name)
	require.Equal(t, map[string]any{"location": "Paris"}, asst.Content[1].OfToolUse.Input)
	result := got.Messages[2].OfUser.Content[0].OfToolResult
	require.NotNil(t, result)
	require.Equal(t, "toolu_01A", result.ToolUseID)
	require.Equal(t, "18°C", result.Content[0].OfText.Text)
}

func TestSDKImages(t *testing.T) {
	f, _, client := setupSDK(t, `{"schema":"anthropic"}`)
	f.answer = func(w http.ResponseWriter, _ *anthropic.MessageNewParams) {
		writeMessage(w, `{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"A cat."}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`)
	}
	_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "claude-sonnet-4-5",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.TextContentPart("What is in these?"),
			openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "data:image/jpeg;base64,/9j/4AAQSkZJRg==", Detail: "high"}),
			openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "https://upload.example.org/cat.png"}),
		})},
	})
	require.NoError(t, err)
	got, _, _ := f.last()
	parts := got.Messages[0].OfUser.Content
	require.Len(t, parts, 3)
	require.Equal(t, "What is in these?", parts[0].OfText.Text)
	require.Equal(t, "/9j/4AAQSkZJRg==", parts[1].OfImage.Source.OfBase64.Data)
	require.Equal(t, anthropic.Base64ImageSourceMediaType("image/jpeg"), parts[1].OfImage.Source.OfBase64.MediaType)
	require.Equal(t, "https://upload.example.org/cat.png", parts[2].OfImage.Source.OfURL.URL)
}

func TestSDKStream(t *testing.T) {
	f, p, client := setupSDK(t, `{"schema":"anthropic","model":"claude-opus-4-1"}`)
	f.answer = func(w http.ResponseWriter, _ *anthropic.MessageNewParams) {
		writeEvents(t, w,
			`{"type":"message_start","message":{"id":"msg_S1","type":"message","role":"assistant","model":"claude-opus-4-1","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":500,"cache_read_input_tokens":0,"output_tokens":1}}}`,
			`{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}`,
			`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Weather needs a tool."}}`,
			`{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}`,
			`{"type":"content_block_stop","index":0}`,
			`{"type":"ping"}`,
			`{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}`,
			`{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Let me "}}`,
			`{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"check — ☀️ or 🌧?"}}`,
			`{"type":"content_block_stop","index":1}`,
			`{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_P","name":"get_weather","input":{}}}`,
			`{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"locat"}}`,
			`{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ion\": \"Paris\"}"}}`,
			`{"type":"content_block_stop","index":2}`,
			`{"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_L","name":"get_weather","input":{}}}`,
			`{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"Lyon\"}"}}`,
			`{"type":"content_block_stop","index":3}`,
			`{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":71}}`,
			`{"type":"message_stop"}`,
		)
	}
	stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:         "smart",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Paris and Lyon?")},
		Tools:         []openai.ChatCompletionToolUnionParam{weatherTool},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var acc openai.ChatCompletionAccumulator
	var finished []openai.FinishedChatCompletionToolCall
	var reasoning strings.Builder
	chunks := 0
	for stream.Next() {
		chunk := stream.Current()
		require.True(t, acc.AddChunk(chunk))
		if tc, ok := acc.JustFinishedToolCall(); ok {
			finished = append(finished, tc)
		}
		if len(chunk.Choices) > 0 {
			if r, ok := chunk.Choices[0].Delta.JSON.ExtraFields["reasoning_content"]; ok {
				var s string
				require.NoError(t, json.Unmarshal([]byte(r.Raw()), &s))
				reasoning.WriteString(s)
			}
		}
		require.Equal(t, "chat.completion.chunk", string(chunk.Object))
		require.Equal(t, "smart", chunk.Model, "the client's model, not the override")
		chunks++
	}
	require.NoError(t, stream.Err())
	got, _, _ := f.last()
	require.Equal(t, anthropic.Model("claude-opus-4-1"), got.Model)

	c := acc.ChatCompletion
	require.Equal(t, "msg_S1", c.ID)
	require.Equal(t, "Let me check — ☀️ or 🌧?", c.Choices[0].Message.Content)
	require.Equal(t, "tool_calls", c.Choices[0].FinishReason)
	require.Len(t, c.Choices[0].Message.ToolCalls, 2)
	require.Equal(t, "toolu_P", c.Choices[0].Message.ToolCalls[0].ID)
	require.JSONEq(t, `{"location":"Paris"}`, c.Choices[0].Message.ToolCalls[0].Function.Arguments)
	require.Equal(t, "toolu_L", c.Choices[0].Message.ToolCalls[1].ID)
	require.JSONEq(t, `{"location":"Lyon"}`, c.Choices[0].Message.ToolCalls[1].Function.Arguments)
	require.NotEmpty(t, finished)
	require.Equal(t, "toolu_P", finished[0].ID)
	require.Equal(t, "Weather needs a tool.", reasoning.String())
	require.Equal(t, int64(525), c.Usage.PromptTokens)
	require.Equal(t, int64(71), c.Usage.CompletionTokens)
	require.Equal(t, int64(596), c.Usage.TotalTokens)
	require.Equal(t, int64(0), c.Usage.PromptTokensDetails.CachedTokens)
	require.Equal(t, transform.Usage{InputTokens: 525, OutputTokens: 71, TotalTokens: 596}, p.lastUsage(t))
	require.Greater(t, chunks, 8)
}

// Anthropic's error statuses and bodies reach an OpenAI SDK user as
// OpenAI's: *openai.Error with OpenAI's status, type, code and message.
func TestSDKErrors(t *testing.T) {
	for _, tc := range []struct {
		status     int
		typ        string
		wantStatus int
		wantType   string
		wantCode   string
	}{
		{400, "invalid_request_error", 400, "invalid_request_error", ""},
		{401, "authentication_error", 401, "invalid_request_error", "invalid_api_key"},
		{403, "permission_error", 403, "invalid_request_error", "permission_denied"},
		{404, "not_found_error", 404, "invalid_request_error", "not_found"},
		{413, "request_too_large", 413, "invalid_request_error", "request_too_large"},
		{429, "rate_limit_error", 429, "requests", "rate_limit_exceeded"},
		{500, "api_error", 500, "server_error", ""},
		{529, "overloaded_error", 503, "server_error", "overloaded"},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			f, _, client := setupSDK(t, `{"schema":"anthropic"}`)
			f.answer = func(w http.ResponseWriter, _ *anthropic.MessageNewParams) {
				writeAnthropicError(w, tc.status, tc.typ, "provider says "+tc.typ)
			}
			for _, stream := range []bool{false, true} {
				params := openai.ChatCompletionNewParams{Model: "claude-sonnet-4-5",
					Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
				var err error
				if stream {
					s := client.Chat.Completions.NewStreaming(context.Background(), params)
					for s.Next() {
					}
					err = s.Err()
				} else {
					_, err = client.Chat.Completions.New(context.Background(), params)
				}
				var apiErr *openai.Error
				require.True(t, errors.As(err, &apiErr), "%v", err)
				require.Equal(t, tc.wantStatus, apiErr.StatusCode)
				require.Equal(t, tc.wantType, apiErr.Type)
				require.Equal(t, tc.wantCode, apiErr.Code)
				require.Equal(t, "provider says "+tc.typ, apiErr.Message)
			}
		})
	}
}

// A request the backend cannot serve is refused before it leaves, in
// OpenAI's shape.
func TestSDKRefusedRequest(t *testing.T) {
	_, _, client := setupSDK(t, `{"schema":"anthropic"}`)
	_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "claude-sonnet-4-5", N: openai.Int(3),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr), "%v", err)
	require.Equal(t, 400, apiErr.StatusCode)
	require.Equal(t, "n", apiErr.Param)
	require.Equal(t, "unsupported_value", apiErr.Code)
}

// An error event in the middle of a stream, and a stream cut short, end
// the OpenAI SDK's stream with an error after the content that came first.
func TestSDKStreamFailures(t *testing.T) {
	start := `{"type":"message_start","message":{"id":"msg_E","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}}`
	text := `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Once upon"}}`
	for _, tc := range []struct {
		name   string
		events []string
		want   string
	}{
		{"error event", []string{start, `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`, text,
			`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`}, "Overloaded"},
		{"cut", []string{start, `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`, text},
			"the Anthropic stream ended before message_stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _, client := setupSDK(t, `{"schema":"anthropic"}`)
			f.answer = func(w http.ResponseWriter, _ *anthropic.MessageNewParams) { writeEvents(t, w, tc.events...) }
			s := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
				Model: "claude-sonnet-4-5", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("tell a story")},
			})
			var content strings.Builder
			for s.Next() {
				if ch := s.Current(); len(ch.Choices) > 0 {
					content.WriteString(ch.Choices[0].Delta.Content)
				}
			}
			require.Equal(t, "Once upon", content.String())
			var se *ssestream.StreamError
			require.True(t, errors.As(s.Err(), &se), "%v", s.Err())
			require.Contains(t, se.Message, tc.want)
		})
	}
}
