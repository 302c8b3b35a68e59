//go:build race

package pgtest

// raceEnabled reports whether the test binary was built with -race;
// BuildBinary then builds the cleaner with -race too.
const raceEnabled = true
