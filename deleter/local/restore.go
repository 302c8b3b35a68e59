package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter"
)

// renameNoReplace moves oldname in the directory olddirfd to newname in
// the directory newdirfd unless newname exists (EEXIST), in one step. A
// file system or kernel without RENAME_NOREPLACE answers EINVAL, ENOSYS or
// EOPNOTSUPP, and Restore falls back to linkat and unlinkat; tests replace
// this to take that way.
var renameNoReplace = func(olddirfd int, oldname string, newdirfd int, newname string) error {
	return unix.Renameat2(olddirfd, oldname, newdirfd, newname, unix.RENAME_NOREPLACE)
}

// restoreAttempts is how often Restore starts over when the parent
// directory it created for p vanishes before the move (a deletion next to
// p pruned it): a transient error after that.
const restoreAttempts = 3

// errParentVanished: the parent directory Restore created for p was
// removed before the file could be moved into it.
var errParentVanished = errors.New("the parent directory vanished before the move")

// Restore implements cdccleaner.Restorer: it moves trash, which must lie
// under TrashPrefix, back to p, which must not; both are relative to the
// root and pass cdccleaner.ValidatePath. Any other pair is a permanent
// rejected_path error and nothing is touched (see deleter.CheckRestore).
//
// When anything exists at p (a file, a directory, a symlink, even a
// dangling one), it answers Occupied and touches nothing. When nothing is
// at trash, it answers NotInTrash. Otherwise it creates p's missing parent
// directories (prune_empty_dirs may have removed them) and moves the entry
// with renameat2(RENAME_NOREPLACE) or, where the file system lacks that,
// linkat and then unlinkat of the trash name; both fail with EEXIST,
// answered Occupied, when something appeared at p in the meantime, so
// nothing is ever replaced. The entry keeps its inode and times (its
// own modification time, or the time of trashing where trashing renamed it), and a symlink is moved as a link,
// never followed. A directory in the trash is never moved (permanent,
// is_directory); a path that leads outside the root is never used
// (permanent, escapes_root). Other errors are classified as for Delete:
// permission, I/O and unknown errors are transient. Nothing else is
// removed, not even the trash directories the move left empty (PurgeTrash
// removes those).
func (l *Storage) Restore(ctx context.Context, p, trash string) (cdccleaner.RestoreOutcome, error) {
	if err := deleter.CheckRestore(p, trash, l.opts.TrashPrefix); err != nil {
		return 0, err
	}
	for range restoreAttempts {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("restore %q: not attempted: %w", p, err)
		}
		outcome, err := l.restoreOnce(p, trash)
		if !errors.Is(err, errParentVanished) {
			return outcome, err
		}
	}
	return 0, fmt.Errorf("restore %q from %q: %w, %d times", p, trash, errParentVanished, restoreAttempts)
}

// restoreOnce is one attempt of Restore, on checked paths.
func (l *Storage) restoreOnce(p, trash string) (cdccleaner.RestoreOutcome, error) {
	fail := func(err error, isDir bool) (cdccleaner.RestoreOutcome, error) {
		return 0, failure("restore", p, fmt.Errorf("from %q: %w", trash, err), isDir)
	}
	// Whatever is at p wins, even a dangling symlink: lstat, through the
	// root, never following the last component.
	if _, err := l.root.Lstat(p); err == nil {
		return cdccleaner.Occupied, nil
	} else if !isNotExist(err) {
		return fail(err, false)
	}

	tdir, tbase := splitParent(trash)
	td, err := l.root.OpenFile(tdir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if isNotExist(err) {
		return cdccleaner.NotInTrash, nil
	}
	if err != nil {
		return fail(err, false)
	}
	defer td.Close()
	var st unix.Stat_t
	var statErr error
	if err := withFd(td, func(tfd int) {
		statErr = ignoringEINTR(func() error { return unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW) })
	}); err != nil {
		return fail(err, false)
	}
	switch {
	case isNotExist(statErr):
		return cdccleaner.NotInTrash, nil
	case statErr != nil:
		return fail(os.NewSyscallError("fstatat", statErr), false)
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return fail(os.NewSyscallError("fstatat", syscall.EISDIR), true)
	}

	dir, base := splitParent(p)
	if dir != "." {
		if err := l.root.MkdirAll(dir, 0o755); err != nil {
			return 0, dirFailure("restore: create the parent", dir, err)
		}
	}
	d, err := l.root.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if isNotExist(err) {
		return 0, errParentVanished
	}
	if err != nil {
		return fail(err, false)
	}
	defer d.Close()
	return moveBack(td, tbase, d, base, fail)
}

// moveBack moves tbase in the open trash directory td to base in the open
// directory d, p's parent, without ever replacing anything at base. fail
// turns an error into restoreOnce's answer.
func moveBack(td *os.File, tbase string, d *os.File, base string, fail func(err error, isDir bool) (cdccleaner.RestoreOutcome, error)) (cdccleaner.RestoreOutcome, error) {
	var moveErr error
	op := "renameat2"
	srcThere, srcIsDir, movedDir := false, false, false
	var backErr error
	err := withFd(td, func(tfd int) {
		err := withFd(d, func(fd int) {
			moveErr = ignoringEINTR(func() error { return renameNoReplace(tfd, tbase, fd, base) })
			if errors.Is(moveErr, unix.EINVAL) || errors.Is(moveErr, unix.ENOSYS) || errors.Is(moveErr, unix.EOPNOTSUPP) {
				// No RENAME_NOREPLACE here. A hard link is made only
				// where nothing exists (EEXIST otherwise), is never
				// made to a directory (EPERM), and flags 0 link a
				// symlink itself.
				op = "linkat"
				moveErr = ignoringEINTR(func() error { return unix.Linkat(tfd, tbase, fd, base, 0) })
				if moveErr == nil {
					// The file is at p now. If the trash name cannot
					// be removed, it is a second name of the same
					// file, which PurgeTrash removes in time.
					ignoringEINTR(func() error { return unix.Unlinkat(tfd, tbase, 0) })
				}
			}
			switch {
			case moveErr == nil && op == "renameat2" && isDirAt(fd, base):
				// The trash entry became a directory after the
				// fstatat (purged, and a file below its name
				// trashed since): put it back where it was.
				movedDir = true
				backErr = ignoringEINTR(func() error { return renameNoReplace(fd, base, tfd, tbase) })
			case errors.Is(moveErr, unix.ENOENT):
				// Either the trash entry is gone (purged) or p's
				// parent was removed after it was opened.
				var st unix.Stat_t
				srcThere = unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
			case errors.Is(moveErr, unix.EPERM):
				srcIsDir = isDirAt(tfd, tbase)
			}
		})
		if err != nil {
			moveErr = err
		}
	})
	if err != nil {
		return fail(err, false)
	}
	switch {
	case movedDir && backErr != nil:
		return fail(fmt.Errorf("%w, and moving it back failed: %w", os.NewSyscallError(op, syscall.EISDIR), backErr), true)
	case movedDir:
		return fail(os.NewSyscallError(op, syscall.EISDIR), true)
	case moveErr == nil:
		return cdccleaner.Restored, nil
	case errors.Is(moveErr, unix.EEXIST):
		return cdccleaner.Occupied, nil
	case errors.Is(moveErr, unix.ENOENT) && srcThere:
		return 0, errParentVanished
	case errors.Is(moveErr, unix.ENOENT):
		return cdccleaner.NotInTrash, nil
	}
	return fail(os.NewSyscallError(op, moveErr), srcIsDir)
}
