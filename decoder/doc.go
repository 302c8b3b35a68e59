// Package decoder turns pgoutput protocol messages into the file references
// that vanished in committed transactions. It is pure: bytes in, candidates
// out, no I/O, so it can be fuzzed and tested from captured streams.
package decoder
