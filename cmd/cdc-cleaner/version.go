package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs, _ := newFlags("version", "", "Prints the version of cdc-cleaner.", stderr)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	v := version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	fmt.Fprintf(stdout, "cdc-cleaner %s (%s)\n", v, runtime.Version())
	return nil
}
