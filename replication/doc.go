// Package replication manages the slot and publication, streams pgoutput
// messages from the slot and acknowledges only what the pipeline settled.
// It frames and acknowledges; it does not interpret pgoutput (see decoder/).
package replication
