package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// EndpointHeader is the response header the make-run and compose bootstraps
// add (inferencepool-config's endpointHeader): the upstream that served.
const EndpointHeader = "x-inferencepool-endpoint"

// Call is one request the demo sends.
type Call struct {
	Model  string
	Stream bool
	Prompt string
}

// Result is what the demo read from one answer.
type Result struct {
	Call
	Endpoint         string // the server that answered
	PromptTokens     int64  // usage the server reported, as ai_router meters it
	CompletionTokens int64
	// TTFT is the time to the first content token of a stream; for a plain
	// request, the time to the whole answer (there is no earlier token).
	TTFT  time.Duration
	Total time.Duration
	Text  string
	Err   error
}

// Calls are the demo's requests: each model plain, then streamed.
func Calls(models []string) []Call {
	var out []Call
	prompts := []string{"Say hello to Envoy.", "Write one line about load balancing."}
	for i, m := range models {
		for _, stream := range []bool{false, true} {
			out = append(out, Call{Model: m, Stream: stream, Prompt: prompts[i%len(prompts)]})
		}
	}
	return out
}

// Run sends every call, one at a time, through the OpenAI Go SDK.
func Run(ctx context.Context, baseURL string, calls []Call, opts ...option.RequestOption) []Result {
	client := openai.NewClient(append([]option.RequestOption{option.WithBaseURL(baseURL),
		option.WithAPIKey("demo"), option.WithMaxRetries(0)}, opts...)...)
	var out []Result
	for _, c := range calls {
		out = append(out, runOne(ctx, client, c))
	}
	return out
}

func runOne(ctx context.Context, client openai.Client, c Call) Result {
	r := Result{Call: c}
	params := openai.ChatCompletionNewParams{
		Model:     c.Model,
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage(c.Prompt)},
		MaxTokens: openai.Int(32),
	}
	var resp *http.Response
	start := time.Now()
	if !c.Stream {
		cc, err := client.Chat.Completions.New(ctx, params, option.WithResponseInto(&resp))
		r.Total = time.Since(start)
		r.TTFT = r.Total
		r.Endpoint = endpointOf(resp)
		if err != nil {
			r.Err = describe(err)
			return r
		}
		r.PromptTokens, r.CompletionTokens = cc.Usage.PromptTokens, cc.Usage.CompletionTokens
		if len(cc.Choices) > 0 {
			r.Text = cc.Choices[0].Message.Content
		}
		if cc.Usage.TotalTokens == 0 {
			r.Err = errors.New("the answer carried no usage")
		}
		return r
	}
	// Ask for the usage chunk: ai_router meters streams either way, but a
	// client only sees the chunk when it asks.
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, params, option.WithResponseInto(&resp))
	defer stream.Close()
	var text strings.Builder
	gotUsage := false
	for stream.Next() {
		chunk := stream.Current()
		for _, ch := range chunk.Choices {
			if ch.Delta.Content != "" && r.TTFT == 0 {
				r.TTFT = time.Since(start)
			}
			text.WriteString(ch.Delta.Content)
		}
		if chunk.Usage.TotalTokens > 0 {
			r.PromptTokens, r.CompletionTokens, gotUsage = chunk.Usage.PromptTokens, chunk.Usage.CompletionTokens, true
		}
	}
	r.Total = time.Since(start)
	r.Endpoint = endpointOf(resp)
	r.Text = text.String()
	switch {
	case stream.Err() != nil:
		r.Err = describe(stream.Err())
	case !gotUsage:
		r.Err = errors.New("the stream carried no usage chunk")
	case r.TTFT == 0:
		r.Err = errors.New("the stream carried no content")
	}
	return r
}

// describe shows an OpenAI-shaped error's status, code and message (the
// SDK's own text has the status only).
func describe(err error) error {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		return fmt.Errorf("%d %s: %s", apiErr.StatusCode, apiErr.Code, apiErr.Message)
	}
	return err
}

// endpointOf names the server that answered: the proxy's header, else the
// simulator's own pod and port headers (llm-d-inference-sim with POD_NAME).
func endpointOf(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	if e := resp.Header.Get(EndpointHeader); e != "" {
		return e
	}
	if pod, port := resp.Header.Get("x-inference-pod"), resp.Header.Get("x-inference-port"); pod != "" && port != "" {
		return net.JoinHostPort(pod, port)
	}
	return ""
}

// Print writes one line per result, then where to look next.
func Print(w io.Writer, baseURL, adminURL string, results []Result) (failed int) {
	fmt.Fprintf(w, "\n%d requests through %s with the OpenAI Go SDK (github.com/openai/openai-go/v3):\n\n", len(results), baseURL)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  model\tmode\tendpoint\tprompt tokens\tcompletion tokens\ttime to first token\ttotal\t")
	for _, r := range results {
		mode := "plain"
		ttft := fmtDur(r.TTFT) + " (whole answer)"
		if r.Stream {
			mode, ttft = "stream", fmtDur(r.TTFT)
		}
		endpoint := r.Endpoint
		if endpoint == "" {
			endpoint = "?"
		}
		if r.Err != nil {
			failed++
			fmt.Fprintf(tw, "  %s\t%s\t%s\tfailed: %v\t\t\t\t\n", r.Model, mode, endpoint, r.Err)
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%s\t%s\t\n", r.Model, mode, endpoint, r.PromptTokens, r.CompletionTokens, ttft, fmtDur(r.Total))
	}
	tw.Flush()
	fmt.Fprintf(w, `
Where to look next:
  stats       curl -s '%[1]s/stats?filter=endpoint_picker|gen_ai'   picks per pool and endpoint, GenAI token and latency histograms
  prometheus  curl -s %[1]s/stats/prometheus | grep -E 'endpoint_picker|gen_ai'
  dashboard   build/grafana/inferencepool.json: import it into Grafana over a Prometheus that scrapes %[1]s/stats/prometheus
              (docker compose -f build/compose.yaml up serves the same setup in containers)
`, adminURL)
	return failed
}

func fmtDur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(100 * time.Microsecond).String()
}
