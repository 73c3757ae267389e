//go:build !linux

package picker

import "time"

// threadCPU is not measured here: the metric reads 0.
func threadCPU() time.Duration { return 0 }
