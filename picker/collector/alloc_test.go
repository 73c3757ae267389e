//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts are only meaningful without it.

package collector

import (
	"bytes"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// In steady state a scrape allocates only the Sample it publishes. The
// server here allocates nothing per request either: AllocsPerRun counts
// the whole process.
func TestScrapeAllocations(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			body := okBody + `vllm:lora_requests_info{max_lora="1",running_lora_adapters="a",waiting_lora_adapters=""} 1` + "\n"
			resp := []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body, 100))
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer func() { _ = ln.Close() }()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer func() { _ = c.Close() }()
				buf := make([]byte, 4096)
				for n := 0; ; {
					m, err := c.Read(buf[n:])
					if err != nil {
						return
					}
					n += m
					if bytes.HasSuffix(buf[:n], []byte("\r\n\r\n")) { // one request at a time
						n = 0
						if _, err := c.Write(resp); err != nil {
							return
						}
					}
				}
			}()
			spec := testSpec(t)
			tg := detached(p.collector(), ln.Addr().String(), spec)
			tg.scrapeOnce(&spec)
			allocs := testing.AllocsPerRun(100, func() { tg.scrapeOnce(&spec) })
			require.LessOrEqual(t, allocs, 1.0) // the Sample
			require.Equal(t, uint64(0), tg.Stats().ScrapeErrors)
			require.Equal(t, []string{"a"}, tg.Sample().LoRA.Running)
		})
	}
}
