// Package pipeline joins the replication stream, the decoder, the reference
// checks and the storages: it turns committed changes into settled
// candidates and tells the LSN tracker when each transaction is settled.
package pipeline
