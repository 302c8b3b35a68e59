// Package replication streams pgoutput messages from the slot, acknowledges
// only what the pipeline settled (Tracker) and measures the WAL the slot
// retains (LagMonitor). It frames and acknowledges: it does not interpret
// pgoutput (see decoder/), and it neither creates nor checks the slot and
// publication it reads (see provision/).
package replication
