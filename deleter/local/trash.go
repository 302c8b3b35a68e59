package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// renameat moves a file into the trash; a variable for tests.
var renameat = unix.Renameat

// inTrash reports whether p already lies in the trash area; such a path is
// deleted for real rather than trashed again.
func (l *Storage) inTrash(p string) bool {
	return strings.HasPrefix(p, l.opts.TrashPrefix)
}

// openTrashDir creates and opens the directory p goes to in the trash,
// the parent of TrashPrefix+p (the same for every path of p's directory).
func (l *Storage) openTrashDir(p string) (*os.File, error) {
	dstDir, _ := splitParent(l.opts.TrashPrefix + p)
	if err := l.root.MkdirAll(dstDir, 0o755); err != nil {
		return nil, dirFailure("create the trash directory", dstDir, err)
	}
	dd, err := l.root.OpenFile(dstDir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, dirFailure("open the trash directory", dstDir, err)
	}
	return dd, nil
}

// dirFailure is failure for a directory that op needs: one that is a file
// (EEXIST from mkdir, ENOTDIR on the way) stays a file until someone moves
// it, so retrying cannot help, and holding the slot until then must not
// happen.
func dirFailure(op, dir string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) && (errno == syscall.EEXIST || errno == syscall.ENOTDIR) {
		return cdccleaner.Permanent(cdccleaner.ReasonNotADirectory, fmt.Errorf("%s %q: a file is where a directory is needed: %w", op, dir, err))
	}
	return failure(op, dir, err, false)
}

// trashOne moves p (whose parent directory d is open) to TrashPrefix+p, in
// the trash directory trashDir returns (openTrashDir's, shared by the paths
// of one directory; asked only once the file is known to be there), and
// stamps its modification time with the time of trashing, which
// PurgeTrash goes by. The same rules as for deleting hold: never a
// directory, never following a final symlink (a link is trashed as a
// link), never outside the root.
func (l *Storage) trashOne(p, base string, d *os.File, trashDir func(p string) (*os.File, error)) (cdccleaner.Outcome, error) {
	var statErr error
	isDir := false
	if err := withFd(d, func(fd int) {
		var st unix.Stat_t
		statErr = ignoringEINTR(func() error { return unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW) })
		isDir = statErr == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
	}); err != nil {
		return cdccleaner.Failed, fmt.Errorf("trash %q: %w", p, err)
	}
	if statErr != nil {
		return classify(p, os.NewSyscallError("fstatat", statErr), false)
	}
	if isDir {
		return classify(p, os.NewSyscallError("fstatat", syscall.EISDIR), true)
	}
	dstDir, dstBase := splitParent(l.opts.TrashPrefix + p)
	dd, err := trashDir(p)
	if err != nil {
		return cdccleaner.Failed, fmt.Errorf("trash %q: %w", p, err)
	}
	var renameErr error
	if err := withFd(d, func(fd int) {
		err := withFd(dd, func(dfd int) {
			renameErr = ignoringEINTR(func() error { return renameat(fd, base, dfd, dstBase) })
			if renameErr == nil {
				now := unix.NsecToTimespec(time.Now().UnixNano())
				// Best effort: a failure only makes the file purge earlier
				// or later than the retention says.
				unix.UtimesNanoAt(dfd, dstBase, []unix.Timespec{now, now}, unix.AT_SYMLINK_NOFOLLOW)
			}
		})
		if err != nil {
			renameErr = err
		}
	}); err != nil {
		return cdccleaner.Failed, fmt.Errorf("trash %q: %w", p, err)
	}
	if errors.Is(renameErr, unix.ENOENT) {
		// Either the file is gone, or the trash directory was removed
		// since it was opened (the purge removes empty trash
		// directories): then the file is still in place and must not be
		// reported absent. The caller retries a transient failure.
		var st unix.Stat_t
		var again error
		withFd(d, func(fd int) {
			again = ignoringEINTR(func() error { return unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW) })
		})
		if again == nil {
			return cdccleaner.Failed, fmt.Errorf("trash %q: the trash directory %s vanished while moving the file there: %w", p, dstDir, renameErr)
		}
	}
	if renameErr != nil {
		return classify(p, os.NewSyscallError("renameat", renameErr), false)
	}
	return cdccleaner.Deleted, nil
}

// setTrash fills r.Trash for a path that was to be trashed: TrashPrefix+p
// when it was moved there (Deleted), and also when it was Absent but the
// trash holds an entry at that place, which an earlier attempt moved there
// (a replay after a crash between the move and the journal write). The
// entry is looked at with fstatat through the root, never following a
// final symlink: a link is trashed as a link. A directory there is no
// trashed file. When the trash cannot be looked at, the result fails,
// transient or permanent as for Delete: Absent without Trash would tell
// the caller that nothing of the file is left.
func (l *Storage) setTrash(r *cdccleaner.Result) {
	dst := l.opts.TrashPrefix + r.Path
	switch r.Outcome {
	case cdccleaner.Deleted:
		r.Trash = dst
	case cdccleaner.Absent:
		info, err := l.root.Lstat(dst)
		switch {
		case err == nil && !info.IsDir():
			r.Trash = dst
		case err == nil || isNotExist(err):
		default:
			r.Outcome = cdccleaner.Failed
			r.Err = fmt.Errorf("look for the trashed copy of %q: %w", r.Path, failure("stat", dst, err, false))
		}
	}
}

// PurgeTrash implements cdccleaner.Trasher: it walks TrashPrefix (never
// following a symlink) and deletes files trashed before cutoff, then removes
// trash directories left empty. Without trash it does nothing.
func (l *Storage) PurgeTrash(ctx context.Context, cutoff time.Time) (int, error) {
	if !l.opts.Trash {
		return 0, nil
	}
	top := strings.TrimSuffix(l.opts.TrashPrefix, "/")
	var dirs []string
	purged := 0
	err := fs.WalkDir(l.root.FS(), top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == top && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll // nothing trashed yet
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if p != top {
				dirs = append(dirs, p)
			}
			return nil
		}
		info, err := d.Info() // lstat: a symlink's own time
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !trashedAt(info).Before(cutoff) {
			return nil
		}
		outcome, err := l.unlink(p)
		if err != nil {
			return err
		}
		if outcome == cdccleaner.Deleted {
			purged++
		}
		return nil
	})
	// Deepest first; a directory that is not empty stays.
	slices.Reverse(dirs)
	for _, dir := range dirs {
		parent, name := splitParent(dir)
		if d, oerr := l.root.OpenFile(parent, os.O_RDONLY|syscall.O_DIRECTORY, 0); oerr == nil {
			withFd(d, func(fd int) { unix.Unlinkat(fd, name, unix.AT_REMOVEDIR) })
			d.Close()
		}
	}
	if err != nil {
		return purged, fmt.Errorf("purge trash %s: %w", path.Join(l.Root(), top), err)
	}
	return purged, nil
}

// trashedAt is when a file in the trash was put there: the later of its
// modification time, which trashing sets, and its change time, which the
// move sets and nobody can set back. Setting the modification time needs
// the file's owner (or root): a cleaner running as another user moves a
// file it cannot stamp, which keeps its old modification time and, by that
// alone, would be purged at the next round.
func trashedAt(info fs.FileInfo) time.Time {
	t := info.ModTime()
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		if c := time.Unix(st.Ctim.Unix()); c.After(t) {
			t = c
		}
	}
	return t
}
