package metrics

// Sample is what one successful scrape of one endpoint says. A published
// Sample is never modified: readers share it without locks.
type Sample struct {
	Waiting float64 // requests queued in the server
	Running float64 // requests being served
	KVUsage float64 // fraction of KV-cache blocks in use, 0..1

	LoRA *LoRA // nil when the server reports no LoRA information

	BlockSize    int // tokens per KV block, 0 when not reported
	NumGPUBlocks int // KV blocks, 0 when not reported

	// Set by the collector, not by Parse.
	At               int64 // unix nanoseconds when the response arrived
	InFlightAtScrape int64 // this proxy's in-flight count when the scrape was sent
}

// LoRA is the newest state a vLLM-style lora_requests_info metric reports.
type LoRA struct {
	Running []string // adapters loaded and running
	Waiting []string // adapters requested but not loaded yet
	MaxLoRA int      // adapters the server can hold at once
}

// IsRunning reports whether adapter is loaded on the server.
func (l *LoRA) IsRunning(adapter string) bool { return contains(l.Running, adapter) }

// IsWaiting reports whether adapter is queued to be loaded.
func (l *LoRA) IsWaiting(adapter string) bool { return contains(l.Waiting, adapter) }

// HasRoom reports whether another adapter could be loaded without evicting one.
func (l *LoRA) HasRoom() bool { return len(l.Running)+len(l.Waiting) < l.MaxLoRA }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
