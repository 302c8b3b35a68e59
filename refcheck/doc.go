// Package refcheck asks the live database, in batches, which candidate paths
// some watched or protect column still references, and reads the values of
// those columns that are not canonical paths (for scan and check).
package refcheck
