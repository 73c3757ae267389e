package main

import (
	"fmt"
	"maps"
	"strings"
)

// job is one run of a scenario on one workload seed.
type job struct {
	sc     scenario
	seed   uint64
	rounds int  // runs pooled into the scenario's row
	last   bool // the row is complete after this run
}

// plan orders the runs: round robin and the first mode's one- and
// four-proxy rows run rounds times, each round on the next seed, the
// first mode's two rows side by side on each seed so that they meet the
// same requests and the same state of the machine; everything else once.
func plan(scs []scenario, rounds int, seed uint64) []job {
	rounds = max(rounds, 1)
	repeated := func(name string) bool {
		return name == "round-robin" || (len(modes) > 0 &&
			(strings.HasSuffix(name, "("+modes[0].name+")") || name == gossipName(modes[0].name)))
	}
	var out, again []job
	for _, sc := range scs {
		n := 1
		if repeated(sc.name) {
			n = rounds
		}
		out = append(out, job{sc: sc, seed: seed, rounds: n, last: n == 1})
		for r := 1; r < n; r++ {
			again = append(again, job{sc: sc, seed: seed + uint64(r), rounds: n, last: r == n-1})
		}
	}
	// The repeated rounds after the single ones, round by round.
	byRound := make([][]job, rounds)
	for _, j := range again {
		r := int(j.seed - seed)
		byRound[r] = append(byRound[r], j)
	}
	for _, js := range byRound {
		out = append(out, js...)
	}
	return out
}

// pool adds r to rows: appended as a new row, or merged into the row of
// the same name (a further round of it).
func pool(rows []result, r result) []result {
	for i := range rows {
		if rows[i].name != r.name {
			continue
		}
		p := &rows[i]
		p.seeds = append(p.seeds, r.seeds...)
		p.done += r.done
		p.shed += r.shed
		p.errs += r.errs
		p.ttft = append(p.ttft, r.ttft...)
		p.e2e = append(p.e2e, r.e2e...)
		p.tokens += r.tokens
		p.window += r.window
		p.hits += r.hits
		p.queries += r.queries
		if p.perEndpoint == nil {
			p.perEndpoint = map[string]int{}
		}
		for k, v := range maps.All(r.perEndpoint) {
			p.perEndpoint[k] += v
		}
		p.regret.add(r.regret)
		p.load.at = append(p.load.at, r.load.at...)
		p.load.perRank = append(p.load.perRank, r.load.perRank...)
		if p.cpu != nil && r.cpu != nil {
			p.cpu.add(r.cpu)
		}
		// Keep the pooled row where its last round ran: the table reads in
		// the order rows complete.
		moved := *p
		rows = append(rows[:i], rows[i+1:]...)
		return append(rows, moved)
	}
	return append(rows, r)
}

// summarizeSeeds prints the fleet ratio of the first mode on each seed: the
// pooled row's ratio is the figure, these show its spread.
func summarizeSeeds(perSeed []result) {
	if len(modes) == 0 {
		return
	}
	one := "picker x1 (" + modes[0].name + ")"
	for _, f := range []struct{ row, what string }{
		{fmt.Sprintf("picker x%d (%s)", fleet, modes[0].name), "independent pickers"},
		{gossipName(modes[0].name), "pickers with gossip"},
	} {
		for _, a := range perSeed {
			if a.name != one || len(a.ttft) == 0 || a.hitRate() == 0 {
				continue
			}
			for _, b := range perSeed {
				if b.name == f.row && b.seeds[0] == a.seeds[0] {
					printf("%s, seed %d alone: %d %s: TTFT p90 %.2f× and prefix hit rate %.0f%% of one picker's\n", modes[0].name, a.seeds[0], fleet, f.what,
						float64(pct(b.ttft, 0.9))/float64(pct(a.ttft, 0.9)), 100*b.hitRate()/a.hitRate())
				}
			}
		}
	}
}
