// Package metrics defines every Prometheus metric cdc-cleaner exports, with
// the names of the contract in DESIGN.md, on a registry of its own. It
// serves nothing: the run command mounts the registry at /metrics beside
// /healthz and /readyz.
package metrics
