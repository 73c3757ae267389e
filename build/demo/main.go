// Command demo sends a few requests through Envoy with the official OpenAI Go
// SDK, plain and streamed, for two models, and prints for each the endpoint
// that served it, the tokens counted and the time to first token, then where
// to look next. make run runs it once Envoy is up.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:10000/v1", "the OpenAI base URL (Envoy's listener)")
	admin := flag.String("admin", "http://127.0.0.1:9901", "Envoy's admin address, for the hints printed at the end")
	models := flag.String("models", "sim-model,sim-lora", "comma-separated models to ask, each plain and streamed")
	wait := flag.Duration("wait", 30*time.Second, "how long to wait for the listener")
	flag.Parse()
	if err := waitFor(*base, *wait); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results := Run(ctx, *base, Calls(strings.Split(*models, ",")))
	if Print(os.Stdout, *base, *admin, results) > 0 {
		os.Exit(1)
	}
}

// waitFor waits until the listener of base accepts connections.
func waitFor(base string, d time.Duration) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %s: %v", u.Host, d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
