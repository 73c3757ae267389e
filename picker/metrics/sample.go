package metrics

import "github.com/cespare/xxhash/v2"

// Sample is what one successful scrape of one endpoint says. A published
// Sample is never modified: readers share it without locks.
type Sample struct {
	Waiting float64 // requests queued in the server
	Running float64 // requests being served
	KVUsage float64 // fraction of KV-cache blocks in use, 0..1

	LoRA *LoRA // nil when the server reports no LoRA information

	BlockSize    int // tokens per KV block (SGLang: per page), 0 when not reported
	NumGPUBlocks int // KV blocks (SGLang: pages), 0 when not reported

	// Set by the collector, not by Parse.
	At               int64    // collector.Now() when the response arrived
	InFlightAtScrape int64    // this proxy's in-flight count when the scrape was sent
	SendRate         float64  // this proxy's requests per nanosecond to the endpoint, smoothed over scrapes (collector's sendRate)
	PeakRunning      float64  // its slots as far as known (0: unknown): the most requests it was seen running while others waited, re-learned after a restart (collector's slotLearner)
	LoRAHint         LoRAHint // LoRA.Hint(), so a pick learns most of what it asks of LoRA without reading it; 0: none (ask LoRA)
}

// LoRA is the newest state a vLLM-style lora_requests_info metric reports.
// Build it with NewLoRA, which also prepares the lookup keys and the hint;
// like the Sample that holds it, it is never modified once built.
type LoRA struct {
	Running []string // adapters loaded and running
	Waiting []string // adapters requested but not loaded yet
	MaxLoRA int      // adapters the server can hold at once

	runningKeys, waitingKeys []uint64 // Key of each name
	hint                     LoRAHint
}

// NewLoRA returns the LoRA state with its lookup keys.
func NewLoRA(running, waiting []string, maxLoRA int) *LoRA {
	l := &LoRA{Running: running, Waiting: waiting, MaxLoRA: maxLoRA, runningKeys: keys(running), waitingKeys: keys(waiting)}
	l.hint = l.computeHint()
	return l
}

// LoRAHint summarizes a LoRA state in one word, to be kept beside a
// sample's other numbers: whether another adapter fits (exact), and which
// adapters may be running or waiting (a 31-bit Bloom filter of their keys
// each, so a "no" is exact and a "maybe" asks LoRA). Most endpoints do not
// run a given adapter, and a pick then learns it without reading LoRA's
// lists, which are more cache lines per endpoint than the rest of what it
// reads. The zero hint knows nothing: every question asks LoRA.
type LoRAHint uint64

const (
	hintKnown   LoRAHint = 1 << 63
	hintRoom    LoRAHint = 1 << 62
	hintWaitOff          = 31
	hintBits             = 31
)

// HintKey is the bit an adapter's Key sets in a hint, for MayRun and
// MayWait: compute it once per request.
func HintKey(key uint64) LoRAHint { return 1 << (key % hintBits) }

// Known reports whether the hint summarizes a LoRA state.
func (h LoRAHint) Known() bool { return h&hintKnown != 0 }

// MayRun is false when the state summarized runs no adapter whose
// HintKey is k; true when it may (or the hint is unknown).
func (h LoRAHint) MayRun(k LoRAHint) bool {
	return h&hintKnown == 0 || h&k != 0
}

// MayWait is MayRun for the waiting adapters.
func (h LoRAHint) MayWait(k LoRAHint) bool {
	return h&hintKnown == 0 || h&(k<<hintWaitOff) != 0
}

// HasRoom is LoRA.HasRoom of the state summarized; only for a known hint.
func (h LoRAHint) HasRoom() bool { return h&hintRoom != 0 }

// Hint returns the state's summary; 0 for nil.
func (l *LoRA) Hint() LoRAHint {
	if l == nil {
		return 0
	}
	if l.hint != 0 {
		return l.hint
	}
	return l.computeHint() // built without NewLoRA
}

func (l *LoRA) computeHint() LoRAHint {
	h := hintKnown
	if l.HasRoom() {
		h |= hintRoom
	}
	for _, n := range l.Running {
		h |= HintKey(Key(n))
	}
	for _, n := range l.Waiting {
		h |= HintKey(Key(n)) << hintWaitOff
	}
	return h
}

// Key is an adapter name's lookup key for IsRunning and IsWaiting: comparing
// 64-bit keys is what keeps scoring every endpoint's adapters cheap.
func Key(adapter string) uint64 { return xxhash.Sum64String(adapter) }

// IsRunning reports whether adapter, whose Key is key, is loaded on the server.
// A nil LoRA runs nothing.
func (l *LoRA) IsRunning(adapter string, key uint64) bool {
	if l == nil {
		return false
	}
	return contains(l.Running, l.runningKeys, adapter, key)
}

// IsWaiting reports whether adapter, whose Key is key, is queued to be loaded.
func (l *LoRA) IsWaiting(adapter string, key uint64) bool {
	if l == nil {
		return false
	}
	return contains(l.Waiting, l.waitingKeys, adapter, key)
}

// HasRoom reports whether another adapter could be loaded without evicting one.
func (l *LoRA) HasRoom() bool { return len(l.Running)+len(l.Waiting) < l.MaxLoRA }

func contains(names []string, keys []uint64, name string, key uint64) bool {
	if len(keys) != len(names) { // built without NewLoRA
		for _, n := range names {
			if n == name {
				return true
			}
		}
		return false
	}
	for i, k := range keys {
		if k == key && names[i] == name {
			return true
		}
	}
	return false
}

func keys(names []string) []uint64 {
	if len(names) == 0 {
		return nil
	}
	out := make([]uint64, len(names))
	for i, n := range names {
		out[i] = Key(n)
	}
	return out
}
