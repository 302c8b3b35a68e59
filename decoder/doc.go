// Package decoder turns pgoutput protocol messages into the file references
// that vanished in committed transactions. It is pure: bytes in, candidates
// out, no I/O, so it can be fuzzed and tested from captured streams.
//
// It is given the configured columns (cdccleaner.Column, built once from
// the configuration and described by inspection of the catalog) and reads
// the values of the watched ones by their kind: one path, an array of
// paths, or the string leaves at a JSON path.
package decoder
