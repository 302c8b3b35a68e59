package refcheck

import (
	"context"
	"slices"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Derived is a cdccleaner.ReferenceChecker that counts a derived file (a
// file of an entry's `derived`, or a file below one of its derived
// prefixes) as referenced while a path it derives from is, as promise 2
// and issue 16 want: scan would otherwise take Active Storage's variants
// for orphans. A file that may derive from a path that cannot be named is
// referenced. Without derived entries it is the checker it wraps.
type Derived struct {
	cdccleaner.ReferenceChecker
	columns map[string][]cdccleaner.Column // with Derived, by storage
}

// WithDerived wraps refs for the derived templates of columns.
func WithDerived(refs cdccleaner.ReferenceChecker, columns []cdccleaner.Column) cdccleaner.ReferenceChecker {
	d := &Derived{ReferenceChecker: refs, columns: map[string][]cdccleaner.Column{}}
	for _, c := range columns {
		if len(c.Derived) > 0 {
			d.columns[c.Storage] = append(d.columns[c.Storage], c)
		}
	}
	if len(d.columns) == 0 {
		return refs
	}
	return d
}

// Referenced implements cdccleaner.ReferenceChecker: paths and the paths
// they may derive from are checked in one query.
func (d *Derived) Referenced(ctx context.Context, storage string, paths []string) (map[string]bool, error) {
	cols := d.columns[storage]
	if len(cols) == 0 {
		return d.ReferenceChecker.Referenced(ctx, storage, paths)
	}
	ask := slices.Clone(paths)
	asked := make(map[string]bool, len(paths))
	for _, p := range paths {
		asked[p] = true
	}
	parents := map[string][]string{}
	unknown := map[string]bool{}
	for _, p := range paths {
		for _, c := range cols {
			ps, known := c.DerivedParents(p)
			if !known {
				unknown[p] = true
			}
			parents[p] = append(parents[p], ps...)
			// Files below one prefix share a parent: ask for it once.
			for _, parent := range ps {
				if !asked[parent] {
					asked[parent] = true
					ask = append(ask, parent)
				}
			}
		}
	}
	refs, err := d.ReferenceChecker.Referenced(ctx, storage, ask)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(refs))
	for _, p := range paths {
		if refs[p] || unknown[p] || slices.ContainsFunc(parents[p], func(parent string) bool { return refs[parent] }) {
			out[p] = true
		}
	}
	return out, nil
}
