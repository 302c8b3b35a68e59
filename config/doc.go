// Package config loads, overrides from the environment and validates
// cdc-cleaner's YAML configuration, and builds from it the columns every
// other part shares (Config.Columns). It also checks what only the machine
// can tell about the storages: roots that overlap once symlinks are
// resolved, s3 prefixes that overlap on the endpoints the clients resolved.
package config
