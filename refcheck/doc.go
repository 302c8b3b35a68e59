// Package refcheck asks the live database, in batches, which candidate paths
// some watched or protect column still references.
package refcheck
