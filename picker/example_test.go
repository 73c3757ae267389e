package picker_test

import (
	"log"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker"
)

// The endpoint_picker glue: pools from the filter_config, a pick per
// request, the outcome at stream end, stats from a timer.
func Example() {
	pools, err := picker.OpenJSON([]byte(`{"pools":[{"name":"chat","endpoints":{"static":["10.0.0.1:8000","10.0.0.2:8000"]}}]}`))
	if err != nil {
		log.Fatal(err) // names the field: pools[0]...: ...
	}
	defer pools.Close() // when Envoy destroys the filter config
	pool := pools.Pool("chat")

	// The model and the prompt bytes come from transform.ParseRequest (in
	// ai_router, or in endpoint_picker when it runs alone): the raw JSON of
	// a chat's "messages".
	req := picker.Request{Model: "llama", Prompt: []byte(`[{"role":"user","content":"hi"}]`)}
	req.Objective = "critical" // x-gateway-inference-objective

	var res picker.Result // one per stream
	pool.Pick(&req, &res)
	switch res.Status {
	case picker.StatusOK:
		header := res.AppendHeader(nil) // x-gateway-destination-endpoint and envoy.lb metadata
		_ = header
	case picker.StatusShed:
		return // 429
	case picker.StatusNoCapacity:
		return // 503
	case picker.StatusNoMetrics:
		if !pool.FailOpen() {
			return // 503
		}
		// continue without a destination: Envoy's fallback policy picks
	}

	res.Served("10.0.0.2:8000") // the endpoint that served, if Envoy retried
	res.Done(picker.OutcomeOK)  // or OutcomeFailed on 5xx, reset, connect failure

	st := pool.Stats()
	_ = st.Ready
}
