// Package journal owns cdc_cleaner.journal.
//
// It writes there every removal of a stored file and every answer to a
// removed path referenced again (promise 7), reads back the newest entry
// of a path for the pipeline, prunes old entries with the trash, and is
// the one place that reads the table for history, status and check. The
// table itself is created by migrations/0001_cdc_cleaner_schema.sql.
package journal
