//go:build !unix

package collector

func reusePort(uintptr) error { return nil }
