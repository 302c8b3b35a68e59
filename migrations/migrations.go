// Package migrations holds the SQL that `cdc-cleaner setup` runs for the
// cleaner's own schema, for teams that apply schema changes with their own
// migration tool.
package migrations

import _ "embed"

// Schema creates schema cdc_cleaner and its tables; it is idempotent.
//
//go:embed 0001_cdc_cleaner_schema.sql
var Schema string
