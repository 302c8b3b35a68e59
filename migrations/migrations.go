// Package migrations holds the SQL that `cdc-cleaner setup` runs, for teams
// that apply schema changes with their own migration tool:
//
//   - 0001_cdc_cleaner_schema.sql: schema cdc_cleaner, its failed_deletions,
//     journal and slots tables and the try_jsonb function; the same for
//     every configuration, apply it as it is.
//   - 0002_cleaner_role.example.sql: the least-privilege role run logs in
//     as, with SELECT on exactly the configured columns.
//   - 0003_publication.example.sql: replica identity, the publication, the
//     partition event trigger and the slot.
//
// The two examples depend on the configuration (they name its tables and
// columns) and are rendered for a Django gallery_photo table; render yours
// with `cdc-cleaner setup --print --role NAME`. A test keeps them equal to
// what that command prints.
package migrations

import _ "embed"

// Schema creates schema cdc_cleaner and its tables; it is idempotent.
//
//go:embed 0001_cdc_cleaner_schema.sql
var Schema string
