package scan

import (
	"fmt"
	"strings"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Columns returns the columns a scan of storage must search: those of
// found (the configured columns as inspection found them in the database)
// that reference storage. Every configured column (configured) that
// references storage must be among them, and there must be one at least:
// a column the scan cannot search would make every file it references
// look orphaned.
func Columns(storage string, configured, found []cdccleaner.Column) ([]cdccleaner.Column, error) {
	var cols []cdccleaner.Column
	have := map[string]bool{}
	for _, c := range found {
		if c.Storage == storage {
			cols = append(cols, c)
			have[c.Source()] = true
		}
	}
	var missing []string
	n := 0
	for _, c := range configured {
		if c.Storage != storage {
			continue
		}
		n++
		if !have[c.Source()] {
			missing = append(missing, c.Source())
		}
	}
	switch {
	case n == 0:
		return nil, fmt.Errorf("no watch or protect column references storage %q: every file would look orphaned; add its columns (protect: for columns the cleaner must not watch)", storage)
	case len(missing) > 0:
		return nil, fmt.Errorf("storage %q: configured columns not found in the database (or not visible to this role): %s; run cdc-cleaner check", storage, strings.Join(missing, ", "))
	}
	return cols, nil
}
