package deleter

import (
	"fmt"
	"strings"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// CheckRestore checks the two paths of cdccleaner.Restorer.Restore on a
// storage whose trash lies under trashPrefix, before anything is touched:
// both must pass cdccleaner.ValidatePath, trash must lie under trashPrefix
// (Restore only ever takes from the trash) and p must not (it only ever
// puts back outside it). trashPrefix itself must be a relative directory
// ending in "/", as the storages require when trash is on; a storage
// without one has nothing to restore from. It returns nil or a permanent
// error with reason ReasonRejectedPath.
func CheckRestore(p, trash, trashPrefix string) error {
	if err := cdccleaner.ValidatePath(p); err != nil {
		return fmt.Errorf("restore %q: %w", p, err)
	}
	if err := cdccleaner.ValidatePath(trash); err != nil {
		return fmt.Errorf("restore %q from %q: %w", p, trash, err)
	}
	var problem string
	switch {
	case cdccleaner.ValidatePath(strings.TrimSuffix(trashPrefix, "/")) != nil || !strings.HasSuffix(trashPrefix, "/"):
		problem = fmt.Sprintf("the storage has no trash (trash prefix %q)", trashPrefix)
	case !strings.HasPrefix(trash, trashPrefix):
		problem = fmt.Sprintf("%q is not under the trash prefix %q", trash, trashPrefix)
	case strings.HasPrefix(p, trashPrefix):
		problem = fmt.Sprintf("%q is inside the trash (prefix %q)", p, trashPrefix)
	}
	if problem != "" {
		return cdccleaner.Permanent(cdccleaner.ReasonRejectedPath, fmt.Errorf("restore %q from %q: %s", p, trash, problem))
	}
	return nil
}
