// Package config loads, overrides from the environment and validates cdc-cleaner's YAML configuration.
package config
