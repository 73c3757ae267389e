package transform

import (
	"fmt"
	"strings"
	"testing"
)

// anthropicBenchRequest is an OpenAI chat request of about 4 KiB for an
// Anthropic backend: a system prompt, turns with escapes and multibyte
// text, a tool call and its result, two tools.
func anthropicBenchRequest() []byte {
	var b strings.Builder
	b.WriteString(`{"model":"claude-sonnet-4-5","messages":[{"role":"system","content":"You are a careful analyst. Answer in \"plain\" words."}`)
	for i := 0; b.Len() < 3200; i++ {
		fmt.Fprintf(&b, `,{"role":"user","content":"Turn %d: summarise the quarterly report — ünïcödé 日本語 🚀, line by line:\n- revenue grew 12%%; the rest is plain ASCII text to fill space."}`, i)
		fmt.Fprintf(&b, `,{"role":"assistant","content":"Turn %d: revenue grew, costs fell, and the outlook is \"stable\"."}`, i)
	}
	b.WriteString(`,{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\"}"}}]}`)
	b.WriteString(`,{"role":"tool","tool_call_id":"call_1","content":"18C and sunny"}]`)
	b.WriteString(`,"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}},`)
	b.WriteString(`{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"zone":{"type":"string"}}}}}]`)
	b.WriteString(`,"tool_choice":"auto","temperature":0.2,"max_tokens":512,"stream":true,"stream_options":{"include_usage":true}}`)
	return []byte(b.String())
}

// anthropicBenchStream is an Anthropic stream of events events: start, a
// text block of deltas, a tool block, the end.
func anthropicBenchStream(events int) []byte {
	var b strings.Builder
	b.WriteString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"cache_read_input_tokens\":128,\"output_tokens\":2}}}\n\n")
	b.WriteString("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
	for i := 0; i < events-8; i++ {
		fmt.Fprintf(&b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"token %d — ünï \\\"q\\\" \"}}\n\n", i)
	}
	b.WriteString("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
	b.WriteString("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}\n\n")
	b.WriteString("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"Paris\\\"}\"}}\n\n")
	b.WriteString("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n")
	b.WriteString("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":1000}}\n\n")
	b.WriteString("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	return []byte(b.String())
}

// geminiBenchStream is a Gemini stream (alt=sse) of events events: text
// deltas, then a function call with the finish reason and usage.
func geminiBenchStream(events int) []byte {
	var b strings.Builder
	for i := 0; i < events-1; i++ {
		fmt.Fprintf(&b, "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"token %d — ünï \\\"q\\\" \"}]},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":472,\"totalTokenCount\":472},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r-bench\"}\r\n\r\n", i)
	}
	b.WriteString("data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"location\":\"Paris\"}}}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":472,\"cachedContentTokenCount\":128,\"candidatesTokenCount\":1000,\"totalTokenCount\":1472},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r-bench\"}\r\n\r\n")
	return []byte(b.String())
}

// BenchmarkTranslate measures each translator on a 4 KiB request and a
// 1,000-event stream (Anthropic under its original names).
func BenchmarkTranslate(b *testing.B) {
	benchTranslate(b, "", mustBackend(b, `{"schema":"anthropic"}`, testKey), anthropicBenchStream(1000))
	benchTranslate(b, "gemini/", mustBackend(b, `{"schema":"gemini"}`, testKey), geminiBenchStream(1000))
	// The signer is a stub: BenchmarkSigV4 (internal/awsauth) measures signing.
	benchTranslate(b, "bedrock/", mustBackend(b, `{"schema":"aws_bedrock","region":"us-east-1"}`, "").WithSigner(&fakeSigner{}), bedrockBenchStream(b, 1000))
}

// bedrockBenchStream is a ConverseStream of events events: start, text
// deltas, the stop and the metadata.
func bedrockBenchStream(b *testing.B, events int) []byte {
	out := bedrockEvent(b, "event", "messageStart", `{"role":"assistant"}`)
	for i := 0; i < events-3; i++ {
		out = append(out, bedrockEvent(b, "event", "contentBlockDelta", fmt.Sprintf(`{"contentBlockIndex":0,"delta":{"text":"token %d — ünï \"q\" "}}`, i))...)
	}
	out = append(out, bedrockEvent(b, "event", "messageStop", `{"stopReason":"end_turn"}`)...)
	return append(out, bedrockEvent(b, "event", "metadata", `{"usage":{"inputTokens":472,"outputTokens":1000,"totalTokens":1472}}`)...)
}

func benchTranslate(b *testing.B, prefix string, backend *Backend, stream []byte) {
	b.Run(prefix+"request=4KiB", func(b *testing.B) {
		body := anthropicBenchRequest()
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			tr := backend.NewTranslator()
			if _, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: body}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(prefix+"stream=1000events", func(b *testing.B) {
		req := []byte(`{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`)
		b.SetBytes(int64(len(stream)))
		b.ReportAllocs()
		out := make([]byte, 0, 16<<10)
		for b.Loop() {
			tr := backend.NewTranslator()
			if _, err := tr.TranslateRequest(UpstreamRequest{Path: "/v1/chat/completions", Body: req}); err != nil {
				b.Fatal(err)
			}
			ct := "text/event-stream"
			if backend.Schema == SchemaBedrock {
				ct = "application/vnd.amazon.eventstream"
			}
			if _, err := tr.TranslateResponseHeaders(UpstreamResponse{Status: 200, ContentType: ct}); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < len(stream); i += 4096 { // Envoy hands over chunks of this order
				end := min(i+4096, len(stream))
				out, _ = tr.TranslateResponseBody(out[:0], stream[i:end], end == len(stream))
			}
		}
	})
}
