package picker

import (
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// keptCandidates lets a pick keep the candidates the last pick on the same
// cycleState built, rewriting only what changes between two picks on the
// same samples (requests in flight, pending, staleness) instead of every
// field of every candidate. Writing a whole framework.Endpoint per
// candidate was the largest cost of building them (perf annotate put the
// build's time on those stores, 14 per candidate). Candidate position n is kept
// when the last build wrote it (n < valid), for the member now at n (the
// same view, the same member index) and from the same Sample (samples
// are immutable and each scrape publishes a new one); anything else is
// written whole. Schedule reorders the candidates only when a filter
// drops some (scheduler.Buffers.Moved): then nothing is kept. A
// cycleState serves one pick at a time, so none of this is shared.
type keptCandidates struct {
	view       *view
	valid      int               // positions [0, valid) of cycleState.eps hold what a build wrote there, unmoved
	built      int               // positions the last build wrote
	samples    []candidateSample // per position: what the candidate's numbers came from
	heldSample candidateSample   // for a held (penalized) candidate, written whole every time
	todo       []pending         // a build's candidates to write whole
}

// pending is a candidate to write whole: at position pos of the candidates
// (-1: held), from member and its sample s.
type pending struct {
	pos, member int32
	s           *metrics.Sample
}

// candidateSample is what a candidate's live numbers are computed from,
// beside the Sample it came from.
type candidateSample struct {
	src              *metrics.Sample
	at               int64
	inFlightAtScrape int64
	sendRate         float64
}

// reuse prepares for a build over v's n members and returns the
// per-position samples.
func (k *keptCandidates) reuse(v *view, n int) []candidateSample {
	if k.view != v {
		k.view, k.valid = v, 0 // member indices name other endpoints now
	}
	if len(k.samples) < n {
		k.samples = make([]candidateSample, n)
		k.valid = 0
	}
	return k.samples[:n]
}

// fill writes every field of e that comes from member i, m, and its sample
// s; the caller sets the live ones (Pending, Others, InFlight, Stale).
func fill(e *framework.Endpoint, m *member, i int, s *metrics.Sample, h *candidateSample) {
	// Every field, one by one: a composite literal assigned through e is
	// copied with typedmemmove, which costs more than the whole build.
	e.Addr = m.addr
	e.Key = m.key
	e.ID = m.id
	e.Member = int32(i)
	e.Waiting = s.Waiting
	e.Running = s.Running
	e.KVUsage = s.KVUsage
	e.Capacity = s.PeakRunning
	e.LoRA = s.LoRA
	e.LoRAHint = s.LoRAHint
	e.CacheTokens = int64(s.BlockSize) * int64(s.NumGPUBlocks)
	h.src, h.at, h.inFlightAtScrape, h.sendRate = s, s.At, s.InFlightAtScrape, s.SendRate
}

// setLive writes what changes between two picks on the same sample:
// this proxy's requests in flight, those sent since the scrape (plus, with
// others > 0, the other proxies' estimated ones) and staleness.
func (h *candidateSample) setLive(e *framework.Endpoint, inFlight, now int64, others float64, staleAfter int64) {
	// Ours sent since the scrape, less ours that ended since: those still
	// count in the scrape's Running/Waiting (fill wrote them to e).
	e.Pending = max(float64(inFlight-h.inFlightAtScrape), -(e.Running + e.Waiting))
	e.Others = 0
	if others > 0 && now > h.at {
		// What the other proxies sent since the scrape: as we send, on
		// average (ours is one draw, too coarse to scale).
		e.Others = others * h.sendRate * float64(now-h.at)
	}
	e.InFlight = float64(inFlight)
	e.Stale = now-h.at > staleAfter
}
