// Command cdc-cleaner deletes stored files whose paths vanished from a
// PostgreSQL database's file columns, reading committed changes from a
// logical replication slot. See README.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Exit codes of the command-line contract.
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure, or problems found by check
	exitConfig  = 2 // bad configuration, or the database is not ready
)

// exitError carries the exit code an error maps to.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// configErr marks err as bad configuration or a database that is not ready.
func configErr(err error) error { return &exitError{code: exitConfig, err: err} }

// failure marks err as a runtime failure.
func failure(err error) error { return &exitError{code: exitFailure, err: err} }

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "stream committed changes and delete orphaned files until stopped", cmdRun},
		{"setup", "create the publication, replica identity, cdc_cleaner schema and slot (idempotent)", cmdSetup},
		{"check", "validate the configuration and the database, and print a report", cmdCheck},
		{"status", "show the slot's state, the WAL it retains and failed deletions (--json for scripts)", cmdStatus},
		{"scan", "list files no watched or protect column references; --delete removes them", cmdScan},
		{"discover", "print the columns whose values are files of a storage, as YAML to paste", cmdDiscover},
		{"history", "show when a path was removed, restored or left dangling, from the journal", cmdHistory},
		{"teardown", "drop the slot and the publication, so no WAL is retained", cmdTeardown},
		{"version", "print the version", cmdVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `cdc-cleaner keeps stored files in step with a PostgreSQL database: it reads
committed changes from a logical replication slot and deletes files whose paths
vanished from watched columns, once nothing references them any more.

Usage: cdc-cleaner <command> [--config FILE] [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "cdc-cleaner <command> --help" for the flags of a command.
`)
}

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs the command line and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitConfig
	}
	name := args[0]
	switch name {
	case "-h", "--help", "help":
		usage(stdout)
		return exitOK
	case "--version", "-version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		if err == nil {
			return exitOK
		}
		if errors.Is(err, errHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "cdc-cleaner %s: %v\n", name, err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return exitFailure
	}
	fmt.Fprintf(stderr, "cdc-cleaner: unknown command %q\n\n", name)
	usage(stderr)
	return exitConfig
}
