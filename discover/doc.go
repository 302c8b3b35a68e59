// Package discover finds the columns of a database whose values name files
// of the configured storages, by sampling them (promise 8 of the design):
// a column that references a storage's files but is neither watched nor
// protected is invisible to the reference check, so the cleaner could
// delete a file it still uses. The search lists the text-like, text array
// and json/jsonb columns of the user tables in one catalog query, reads a
// handful of values of each, looks those that could be paths up in every
// storage, samples more of the columns that named a file, and judges them
// (MinShare, MinPresent). The result renders as ready-to-paste YAML.
package discover
