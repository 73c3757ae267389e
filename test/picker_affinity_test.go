package test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// sharedPromptReq is a chat request whose first message is a long system
// prompt many requests share (the rendezvous key) and whose question is
// its own.
func sharedPromptReq(model, system, question string) []byte {
	b, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 1,
		"messages": []map[string]string{{"role": "system", "content": system}, {"role": "user", "content": question}}})
	return b
}

// With the default profile (rendezvous affinity, queueSlack 0), requests
// that share a system prompt go to one server while the servers' queues
// are level, leave it while its queue is longer than another's, and come
// back when it drains: through the real library, on scraped metrics.
func TestPickerPrefixAffinityYieldsToALongerQueue(t *testing.T) {
	sim := harness.StartSim(t, harness.SimOptions{DataParallel: 3,
		Args: []string{"--max-num-seqs", "2", "--inter-token-latency", "100ms"}})
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, pickerConfig(sim.Addrs, nil)))
	waitPicking(t, h, sim.Model, sim.Addrs)

	system := "You are the support assistant of a bank. " + strings.Repeat("Answer briefly and cite the policy. ", 40)
	send := func(q string) string {
		t.Helper()
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT,
			Body: sharedPromptReq(sim.Model, system, q), Cluster: sim.Addrs})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status)
		return res.Endpoint
	}
	send("first") // a key's first request goes by load alone (seen keys)
	home := send("second")
	for i := range 5 {
		require.Equal(t, home, send(fmt.Sprintf("level %d", i)), "a shared prompt keeps to its server while queues are level")
	}

	// 2 running, 1 waiting at home for about 3 s: a queue of 2 there, 0
	// elsewhere, below the saturation filter's 5, so it is affinity that
	// must yield, not the filter.
	load := sendDirect(t, home, sim.Model, 3, 30)
	time.Sleep(400 * time.Millisecond) // a few scrapes
	for i := range 5 {
		require.NotEqual(t, home, send(fmt.Sprintf("while home is loaded %d", i)), "affinity yields to a longer queue")
	}

	load.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for send("after") != home {
		require.True(t, time.Now().Before(deadline), "the prompt never came back to its server")
		time.Sleep(100 * time.Millisecond)
	}
}
