package main

import (
	"fmt"
	"sync/atomic"
)

// regret is how far each choice was from the least loaded rank, in
// requests in flight at every rank (all proxies' together, as the bench
// counts them) at the moment of the choice: what a picker that knew
// everything would have avoided, affinity aside. Four proxies that place
// worse than one show it here before it shows in the tail.
type regret struct {
	n, sum, two int // choices, extra requests summed, choices 2 or more over
}

// observe counts a choice of rank r given every rank's load.
func (g *regret) observe(inFlight []atomic.Int64, r int) {
	least := inFlight[0].Load()
	for i := range inFlight {
		least = min(least, inFlight[i].Load())
	}
	d := int(inFlight[r].Load() - least)
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
	return fmt.Sprintf("%.2f requests more in flight at the chosen rank than at the least loaded, on average; 2 or more over it in %.1f%% of %d choices",
		float64(g.sum)/float64(g.n), 100*float64(g.two)/float64(g.n), g.n)
}
