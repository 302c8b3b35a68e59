package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/cdc-cleaner/cdc-cleaner/config"
)

// errHelp is returned after --help printed the usage: exit 0.
var errHelp = errors.New("help requested")

// newFlags returns a flag set for a command with the --config flag every
// command shares.
func newFlags(name, usageLine, about string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "cdc-cleaner.yaml", "configuration `FILE` (YAML); every scalar can be overridden by CDC_CLEANER_<PATH> variables")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cdc-cleaner %s %s\n\n%s\n\nFlags:\n", name, usageLine, about)
		fs.PrintDefaults()
	}
	return fs, cfgPath
}

// parseFlags parses args; --help prints usage to stdout and returns errHelp.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return errHelp
		}
	}
	if err := fs.Parse(args); err != nil {
		return configErr(err)
	}
	if fs.NArg() > 0 {
		return configErr(fmt.Errorf("unexpected argument %q (flags go after the command: cdc-cleaner %s --config FILE)", fs.Arg(0), fs.Name()))
	}
	return nil
}

// parseFlagsAndArgs parses args for a command that takes arguments
// besides its flags, before, between or after them, and returns those
// arguments. After "--" everything is an argument, so that one may start
// with "-". --help prints usage to stdout and returns errHelp.
func parseFlagsAndArgs(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return nil, errHelp
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, configErr(err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag stops at the first argument, or after "--".
		if parsed := len(args) - len(rest); parsed > 0 && args[parsed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// loadConfig loads and validates the configuration file; any error is a
// configuration error (exit 2).
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		return nil, configErr(err)
	}
	return cfg, nil
}

// newLogger builds the one logger of the process, on stderr.
func newLogger(cfg config.Log, stderr io.Writer) zerolog.Logger {
	var w io.Writer = stderr
	if strings.EqualFold(cfg.Format, "console") {
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05.000", NoColor: !isTerminal(stderr)}
	}
	level, err := zerolog.ParseLevel(strings.ToLower(cfg.Level))
	if err != nil || cfg.Level == "" {
		level = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
