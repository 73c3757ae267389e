package main

import (
	"fmt"
	"sync/atomic"
)

// regret is how far each choice was from the least queued rank, in
// requests that must wait for a slot (in flight beyond the rank's slots,
// all proxies' requests together, as the bench counts them) at the moment
// of the choice: what a picker that knew everything would have avoided
// (a rank with free slots starts the request at once however busy, so
// in flight alone would blame affinity for nothing). Four proxies that
// place worse than one show it here before it shows in the tail.
type regret struct {
	n, sum, two int // choices, extra queued requests summed, choices 2 or more over
}

// observe counts a choice of rank r given every rank's requests in flight
// and slots per rank.
func (g *regret) observe(inFlight []atomic.Int64, r int, slots int64) {
	queued := func(i int) int64 { return max(inFlight[i].Load()-slots, 0) }
	least := queued(0)
	for i := range inFlight {
		least = min(least, queued(i))
	}
	d := int(queued(r) - least)
	g.n++
	g.sum += d
	if d >= 2 {
		g.two++
	}
}

func (g *regret) add(o regret) { g.n, g.sum, g.two = g.n+o.n, g.sum+o.sum, g.two+o.two }

func (g regret) String() string {
	if g.n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f requests more queued at the chosen rank than at the least queued, on average; 2 or more over it in %.1f%% of %d choices",
		float64(g.sum)/float64(g.n), 100*float64(g.two)/float64(g.n), g.n)
}
