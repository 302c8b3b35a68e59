package deleter

import (
	"fmt"
	"strings"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// CheckPrefix checks the prefix of cdccleaner.PrefixLister.ListPrefix and
// cdccleaner.DirPruner.PruneDirs before anything is touched: it must end in
// "/" and pass cdccleaner.ValidatePath without it, so that it is never
// empty, absolute, "./" or "../", and names one directory below the
// storage's root (or prefix), never the root itself. It returns nil or a
// permanent error with reason ReasonRejectedPath.
func CheckPrefix(prefix string) error {
	dir, ok := strings.CutSuffix(prefix, "/")
	if !ok {
		return cdccleaner.Permanent(cdccleaner.ReasonRejectedPath, fmt.Errorf("prefix %q does not end in /", prefix))
	}
	if err := cdccleaner.ValidatePath(dir); err != nil {
		return fmt.Errorf("prefix %q: %w", prefix, err)
	}
	return nil
}
