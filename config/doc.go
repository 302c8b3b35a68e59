// Package config loads, overrides from the environment and validates
// cdc-cleaner's YAML configuration, and builds from it the columns every
// other part shares (Config.Columns). It also provides the checks of what
// only the machine can tell about the storages, which run and scan call
// once the storages are open: roots that overlap once symlinks are
// resolved (LocalRootsOverlap), s3 prefixes that overlap on the endpoints
// the clients resolved (S3Overlap).
package config
