//go:build !linux

package collector

func loopPaths() []scrapePath { return nil }
