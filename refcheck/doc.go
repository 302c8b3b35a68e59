// Package refcheck asks the live database, in batches, which candidate paths
// some watched or protect column still references, and reads the values of
// those columns that are not canonical paths (for scan and check).
//
// It searches the columns as cdccleaner.Column describes them (their kind
// and JSON path, their type as the catalog has it; a path template mapped
// back to the values of its columns; the rows a match keeps; the spellings
// a strip_prefix gives a path), with one query per storage.
package refcheck
