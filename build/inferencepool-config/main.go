// Command inferencepool-config renders the Envoy bootstrap of the
// envoy-inferencepool image from a mounted config file and INFERENCEPOOL_*
// environment variables (README.md, "The image"), then runs the command
// after "--" (Envoy) in its place:
//
//	inferencepool-config -out /tmp/inferencepool/envoy.yaml -- envoy -c /tmp/inferencepool/envoy.yaml
//
// Without "--" it only writes the bootstrap (-out -: standard output).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

func main() {
	out := flag.String("out", "-", "where to write the bootstrap (- for standard output)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [-out FILE] [-- COMMAND ARGS...]\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "inferencepool-config:", err)
		os.Exit(1)
	}
}

func run(out string, command []string) error {
	c, err := Load(os.Getenv)
	if err != nil {
		return err
	}
	bootstrap, err := Render(c)
	if err != nil {
		return err
	}
	if out == "-" {
		if _, err := os.Stdout.Write(bootstrap); err != nil {
			return err
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(out, bootstrap, 0o644); err != nil {
			return err
		}
	}
	if len(command) == 0 {
		return nil
	}
	bin, err := exec.LookPath(command[0])
	if err != nil {
		return err
	}
	return syscall.Exec(bin, command, os.Environ())
}
