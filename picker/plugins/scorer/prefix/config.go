package prefix

import (
	"fmt"
	"math"
)

// Config is the scorer's parameters: the filter_config's pools[].prefix
// section. Defaults and limits live here, with the scorer; the picker
// decodes the section, calls SetDefaults and Validate, and hands it to New.
type Config struct {
	Mode             string   `json:"mode,omitempty"`
	BlockSize        int      `json:"blockSize,omitempty"`        // bytes per block
	MaxBlocks        int      `json:"maxBlocks,omitempty"`        // blocks hashed per prompt at most
	LRUCapacity      int      `json:"lruCapacity,omitempty"`      // learned: blocks kept per endpoint; 0: from the server's cache geometry
	BytesPerToken    float64  `json:"bytesPerToken,omitempty"`    // learned: prompt bytes per server token, to size the index from the geometry
	RendezvousBlocks int      `json:"rendezvousBlocks,omitempty"` // rendezvous: leading blocks that form the key, at most
	QueueSlack       *float64 `json:"queueSlack,omitempty"`       // queue excess over the shortest queue that still keeps affinity
	RendezvousFloor  *float64 `json:"rendezvousFloor,omitempty"`  // learned: the rendezvous choice scores at least this
	LoadBound        float64  `json:"loadBound,omitempty"`        // affinity only within this many times the mean load (plus one); 0: no bound
}

// Limits.
const (
	MaxMaxBlocks = 4096
	// FallbackCapacity is the learned index's blocks per endpoint when
	// neither lruCapacity nor the server's cache geometry says: the
	// Inference Extension's LRU size.
	FallbackCapacity = 31250
)

// Defaults: the Inference Extension's block size and block count; the index
// sized from the scraped cache geometry. Use a copy (SetDefaults does):
// QueueSlack and RendezvousFloor point to shared memory.
var Defaults = Config{
	Mode:             Rendezvous,
	BlockSize:        64,
	MaxBlocks:        256,
	BytesPerToken:    4,
	RendezvousBlocks: 8,
	QueueSlack:       new(0.0),
	RendezvousFloor:  new(0.0),
}

// SetDefaults fills the fields left out of the filter_config.
func (c *Config) SetDefaults() {
	d := &Defaults
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	if c.BlockSize == 0 {
		c.BlockSize = d.BlockSize
	}
	if c.MaxBlocks == 0 {
		c.MaxBlocks = d.MaxBlocks
	}
	if c.BytesPerToken == 0 {
		c.BytesPerToken = d.BytesPerToken
	}
	if c.RendezvousBlocks == 0 {
		c.RendezvousBlocks = d.RendezvousBlocks
	}
	if c.QueueSlack == nil {
		c.QueueSlack = new(*d.QueueSlack)
	}
	if c.RendezvousFloor == nil {
		c.RendezvousFloor = new(*d.RendezvousFloor)
	}
}

// Validate reports each bad value by its field's JSON name relative to the
// section ("blockSize"), for the caller to prefix with the path.
func (c *Config) Validate(report func(field, msg string)) {
	if c.Mode != Learned && c.Mode != Rendezvous && c.Mode != InferenceExtension {
		report("mode", fmt.Sprintf("must be %q, %q or %q", Learned, Rendezvous, InferenceExtension))
	}
	if c.BlockSize < 1 {
		report("blockSize", "must be >= 1")
	}
	if c.MaxBlocks < 1 || c.MaxBlocks > MaxMaxBlocks {
		report("maxBlocks", fmt.Sprintf("must be 1-%d", MaxMaxBlocks))
	}
	if c.LRUCapacity < 0 {
		report("lruCapacity", "must be >= 1, or left out to size the index from the server's cache geometry")
	}
	if !(c.BytesPerToken > 0 && c.BytesPerToken <= 64) {
		report("bytesPerToken", "must be in (0, 64]")
	}
	if c.RendezvousBlocks < 1 {
		report("rendezvousBlocks", "must be >= 1")
	}
	if c.RendezvousFloor == nil || !(*c.RendezvousFloor >= 0 && *c.RendezvousFloor <= 1) {
		report("rendezvousFloor", "must be in [0, 1]")
	}
	if !(c.LoadBound == 0 || (c.LoadBound >= 1 && c.LoadBound <= 100)) {
		report("loadBound", "must be 0 (no bound) or in [1, 100]")
	}
	if c.QueueSlack == nil || !(*c.QueueSlack >= 0) {
		report("queueSlack", "must be >= 0")
	}
}

// capacity is the number of blocks the learned index keeps for an endpoint
// whose KV cache holds cacheTokens tokens (0: not reported): lruCapacity
// when set, else what that many tokens of prompt fill in our blocks, else
// FallbackCapacity.
func (c *Config) capacity(cacheTokens int64) int32 {
	switch {
	case c.LRUCapacity > 0:
		return int32(min(c.LRUCapacity, math.MaxInt32))
	case cacheTokens > 0:
		b := float64(cacheTokens) * c.BytesPerToken / float64(c.BlockSize)
		return int32(max(1, min(b, math.MaxInt32)))
	default:
		return FallbackCapacity
	}
}
