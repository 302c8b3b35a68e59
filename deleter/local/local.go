package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Options configures a Storage.
type Options struct {
	// PruneEmptyDirs removes, after each deletion, the parent directories
	// that the deletion left empty, from the deepest upward, stopping at the
	// first that is not empty. The root itself is never removed, and neither
	// is a parent that is a symlink.
	PruneEmptyDirs bool
	// Trash, when set, moves files under TrashPrefix (same relative path)
	// instead of removing them; PurgeTrash removes them later.
	Trash bool
	// TrashPrefix is the directory, relative to the root and ending in "/",
	// that trashed files go to, e.g. ".trash/".
	TrashPrefix string
}

// Storage is a cdccleaner.Storage on a local directory. Every operation goes
// through an os.Root opened on that directory, so no path can reach outside
// it: not with "..", not with an absolute path, not through a symlink. It is
// safe for concurrent use.
type Storage struct {
	root *os.Root
	opts Options
}

var (
	_ cdccleaner.Storage  = (*Storage)(nil)
	_ cdccleaner.Lister   = (*Storage)(nil)
	_ cdccleaner.Statter  = (*Storage)(nil)
	_ cdccleaner.Trasher  = (*Storage)(nil)
	_ cdccleaner.Restorer = (*Storage)(nil)

	_ cdccleaner.PrefixLister = (*Storage)(nil)
	_ cdccleaner.DirPruner    = (*Storage)(nil)
)

// New opens the directory root. It fails if root does not exist or is
// not a directory. Close releases it.
func New(root string, opts Options) (*Storage, error) {
	if opts.Trash {
		if err := cdccleaner.ValidatePath(strings.TrimSuffix(opts.TrashPrefix, "/")); err != nil || !strings.HasSuffix(opts.TrashPrefix, "/") {
			return nil, fmt.Errorf("trash prefix %q must be a relative directory ending in /", opts.TrashPrefix)
		}
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", root, err)
	}
	return &Storage{root: r, opts: opts}, nil
}

// Root returns the directory the storage was opened on, as given to New.
func (l *Storage) Root() string { return l.root.Name() }

// Close releases the root directory. Delete after Close fails transiently.
func (l *Storage) Close() error { return l.root.Close() }

// Delete removes the files at paths, relative to the root, and returns
// exactly one Result per path, in the same order.
//
// A path that cdccleaner.ValidatePath rejects is never touched: Failed,
// permanent, ReasonRejectedPath. Otherwise the directory entry is removed as
// a file: a final symlink is removed as a link and never followed; a
// directory is never removed (Failed, permanent, ReasonIsDirectory); a path
// whose parent resolves outside the root is never touched (Failed,
// permanent, ReasonEscapesRoot). A path that does not exist, or whose parent
// does not exist or is not a directory, is Absent. Permission, read-only
// file system, I/O and unknown errors are transient: retrying may help.
//
// ctx is checked before each path; once it is done, the remaining paths are
// Failed with a transient error wrapping ctx.Err().
//
// Paths are grouped by parent directory: each parent is opened through the
// root once per call and every name in it removed relative to that open
// directory, and empty directories are pruned once per parent after its
// names are gone. Opening the parent costs more system calls than the
// unlink itself, so this is most of the speed of a large batch.
func (l *Storage) Delete(ctx context.Context, paths []string) []cdccleaner.Result {
	results := make([]cdccleaner.Result, len(paths))
	byDir := map[string][]int{}
	var dirs []string
	for i, p := range paths {
		results[i].Path = p
		if err := cdccleaner.ValidatePath(p); err != nil {
			results[i].Outcome, results[i].Err = cdccleaner.Failed, err
			continue
		}
		dir, _ := splitParent(p)
		if _, ok := byDir[dir]; !ok {
			dirs = append(dirs, dir)
		}
		byDir[dir] = append(byDir[dir], i)
	}
	for _, dir := range dirs {
		l.deleteIn(ctx, dir, paths, byDir[dir], results)
	}
	return results
}

// deleteIn removes paths[i] for each i of idx, all of which have the parent
// directory dir, and records the outcomes in results.
func (l *Storage) deleteIn(ctx context.Context, dir string, paths []string, idx []int, results []cdccleaner.Result) {
	var d *os.File // opened at the first path attempted
	var openErr error
	td := &trashDir{l: l}
	defer td.close()
	removed := false
	for _, i := range idx {
		p := paths[i]
		if err := ctx.Err(); err != nil {
			results[i].Outcome = cdccleaner.Failed
			results[i].Err = fmt.Errorf("delete %q: not attempted: %w", p, err)
			continue
		}
		if d == nil && openErr == nil {
			d, openErr = l.root.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
		}
		trashing := l.opts.Trash && !l.inTrash(p)
		if openErr != nil {
			results[i].Outcome, results[i].Err = classify(p, openErr, false)
		} else {
			_, base := splitParent(p)
			if trashing {
				results[i].Outcome, results[i].Err = l.trashOne(p, base, d, td)
			} else {
				results[i].Outcome, results[i].Err = l.unlinkAt(p, dir, base, d)
			}
			removed = removed || results[i].Outcome == cdccleaner.Deleted
		}
		if trashing {
			l.setTrash(&results[i])
		}
	}
	if d == nil {
		return
	}
	d.Close()
	if removed && l.opts.PruneEmptyDirs {
		l.prune(dir)
	}
}

// withParent validates p, opens its parent directory through the root and
// calls fn with it; a missing parent is Absent.
func (l *Storage) withParent(p string, fn func(p, dir, base string, d *os.File) (cdccleaner.Outcome, error)) (cdccleaner.Outcome, error) {
	if err := cdccleaner.ValidatePath(p); err != nil {
		return cdccleaner.Failed, err
	}
	dir, base := splitParent(p)
	d, err := l.root.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return classify(p, err, false)
	}
	defer d.Close()
	return fn(p, dir, base, d)
}

// unlink removes one path for real, and prunes the directories it left
// empty.
func (l *Storage) unlink(p string) (cdccleaner.Outcome, error) {
	outcome, err := l.withParent(p, l.unlinkAt)
	if outcome == cdccleaner.Deleted && l.opts.PruneEmptyDirs {
		dir, _ := splitParent(p)
		l.prune(dir)
	}
	return outcome, err
}

// unlinkAt removes base from the open directory d (p's parent). It does
// not prune: its callers do, once per directory.
func (l *Storage) unlinkAt(p, dir, base string, d *os.File) (cdccleaner.Outcome, error) {

	var unlinkErr error
	var isDir bool
	if err := withFd(d, func(fd int) {
		// Flags 0: never removes a directory (EISDIR, or EPERM on some
		// systems) and never follows base if it is a symlink.
		unlinkErr = ignoringEINTR(func() error { return unix.Unlinkat(fd, base, 0) })
		if errors.Is(unlinkErr, unix.EPERM) {
			isDir = isDirAt(fd, base)
		}
	}); err != nil {
		return cdccleaner.Failed, fmt.Errorf("delete %q: %w", p, err)
	}
	if unlinkErr != nil {
		return classify(p, os.NewSyscallError("unlinkat", unlinkErr), isDir)
	}
	return cdccleaner.Deleted, nil
}

// prune removes dir and then each of its parents while they are empty,
// stopping at the first error (ENOTEMPTY being the usual one) and before the
// root. Each step opens the parent through the root and removes one name in
// it with AT_REMOVEDIR, which removes only an empty directory and never
// follows a symlink (a symlinked parent fails with ENOTDIR and stops the
// walk). Errors are ignored: the file itself is already deleted.
func (l *Storage) prune(dir string) {
	for dir != "." {
		parent, name := splitParent(dir)
		d, err := l.root.OpenFile(parent, os.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			return
		}
		var rmErr error
		err = withFd(d, func(fd int) {
			rmErr = ignoringEINTR(func() error { return unix.Unlinkat(fd, name, unix.AT_REMOVEDIR) })
		})
		d.Close()
		if err != nil || rmErr != nil {
			return
		}
		dir = parent
	}
}

// classify maps an error from opening the parent directory of p or from
// unlinking p to an outcome: Absent for a missing file or parent, Failed
// with a permanent error when retrying cannot help, Failed with a transient
// error otherwise. isDir says whether p names a directory; it matters only
// for EPERM, which POSIX lets unlink return for a directory.
func classify(p string, err error, isDir bool) (cdccleaner.Outcome, error) {
	switch {
	case err == nil:
		return cdccleaner.Deleted, nil
	case isNotExist(err):
		return cdccleaner.Absent, nil
	}
	return cdccleaner.Failed, failure("delete", p, err, isDir)
}

// isNotExist reports whether err says that a path does not exist: ENOENT,
// or ENOTDIR for a parent component that is not a directory.
func isNotExist(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && (errno == syscall.ENOENT || errno == syscall.ENOTDIR)
}

// failure wraps err, from doing op ("delete", "restore") to p, as a
// permanent error when retrying cannot help and leaves it transient
// otherwise. isDir says whether the entry named p is a directory; it
// matters only for EPERM, which POSIX lets unlink and link return for one.
func failure(op, p string, err error, isDir bool) error {
	var errno syscall.Errno
	hasErrno := errors.As(err, &errno)
	switch {
	case isRootEscape(err):
		return cdccleaner.Permanent(cdccleaner.ReasonEscapesRoot, fmt.Errorf("%s %q: %w: %w", op, p, cdccleaner.ErrEscapesRoot, err))
	case hasErrno && (errno == syscall.EISDIR || errno == syscall.EPERM && isDir):
		return cdccleaner.Permanent(cdccleaner.ReasonIsDirectory, fmt.Errorf("%s %q: %w: %w", op, p, cdccleaner.ErrIsDirectory, err))
	case hasErrno && errno == syscall.ENAMETOOLONG:
		return cdccleaner.Permanent(cdccleaner.ReasonNameTooLong, fmt.Errorf("%s %q: %w", op, p, err))
	case hasErrno && errno == syscall.ELOOP:
		return cdccleaner.Permanent(cdccleaner.ReasonSymlinkLoop, fmt.Errorf("%s %q: %w", op, p, err))
	default:
		// EACCES, EPERM on a file, EROFS, EIO, ENOSPC, EBUSY and anything
		// unknown: the caller retries with backoff.
		return fmt.Errorf("%s %q: %w", op, p, err)
	}
}

// rootEscapeText is the text of os.Root's unexported error for a path that
// leads outside the root. It is not exported, so it is matched by text on
// the innermost error; TestLocalEscapesRoot fails if it ever changes.
const rootEscapeText = "path escapes from parent"

// isRootEscape reports whether a leaf of err's tree is os.Root's "path
// escapes from parent".
func isRootEscape(err error) bool {
	switch e := err.(type) {
	case nil:
		return false
	case interface{ Unwrap() error }:
		return isRootEscape(e.Unwrap())
	case interface{ Unwrap() []error }:
		return slices.ContainsFunc(e.Unwrap(), isRootEscape)
	}
	return err.Error() == rootEscapeText
}

// splitParent splits a valid path into its parent directory ("." at the top)
// and its last segment.
func splitParent(p string) (dir, base string) {
	dir, base = path.Split(p)
	if dir == "" {
		return ".", base
	}
	return dir[:len(dir)-1], base
}

// withFd calls fn with f's descriptor, which stays open while fn runs.
func withFd(f *os.File, fn func(fd int)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}

// isDirAt reports whether name in the directory fd is a directory, without
// following a symlink.
func isDirAt(fd int, name string) bool {
	return kindAt(fd, name) == unix.S_IFDIR
}

// kindAt returns the file type bits (S_IFMT) of name in the directory fd,
// without following a symlink, or 0 when it cannot be looked at.
func kindAt(fd int, name string) uint32 {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return 0
	}
	return st.Mode & unix.S_IFMT
}

// ignoringEINTR calls fn until it returns something other than EINTR.
func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if err != unix.EINTR {
			return err
		}
	}
}
