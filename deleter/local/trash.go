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

// renameat and linkat move a file into the trash; variables for tests.
var (
	renameat = unix.Renameat
	linkat   = unix.Linkat
)

// inTrash reports whether p already lies in the trash area; such a path is
// deleted for real rather than trashed again.
func (l *Storage) inTrash(p string) bool {
	return strings.HasPrefix(p, l.opts.TrashPrefix)
}

// trashDir is the directory in the trash that the files of one source
// directory go to (the parent of TrashPrefix+p, the same for all of them).
// It is created and opened once, when the first file is about to be moved
// there, so that a batch of absent files creates nothing.
type trashDir struct {
	l   *Storage
	f   *os.File
	err error
}

// open returns the trash directory for p, creating it the first time.
func (t *trashDir) open(p string) (*os.File, error) {
	if t.f == nil && t.err == nil {
		t.f, t.err = t.l.openTrashDir(p)
	}
	return t.f, t.err
}

func (t *trashDir) close() {
	if t.f != nil {
		t.f.Close()
	}
}

// openTrashDir creates and opens the directory p goes to in the trash.
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
// the trash directory td of p's directory. The same rules as for deleting
// hold: never a directory, never following a final symlink (a link is
// trashed as a link), never outside the root.
//
// Once td is open, a file moves by linkat into the trash and unlinkat of
// its name: two system calls that refuse a directory by themselves
// (linkat answers EPERM), that the kernel does not serialize across the
// file system as it does renames between directories, and that cost
// about half of a checked, stamped rename on ext4 (make bench). Both
// change the file's status change time, which POSIX requires of link and
// unlink, and PurgeTrash goes by it; the modification time stays the
// file's own. Anything else than success (the trash holds that name
// already, a file system without hard links, a file the kernel will not
// link for this user, a missing file or trash directory) takes the
// checked way of moveToTrash, which decides.
func (l *Storage) trashOne(p, base string, d *os.File, td *trashDir) (cdccleaner.Outcome, error) {
	if td.f == nil {
		return l.moveToTrash(p, base, d, td)
	}
	_, dstBase := splitParent(l.opts.TrashPrefix + p)
	var linkErr, unlinkErr error
	if err := withFd(d, func(fd int) {
		err := withFd(td.f, func(dfd int) {
			linkErr = ignoringEINTR(func() error { return linkat(fd, base, dfd, dstBase, 0) })
			if linkErr == nil {
				unlinkErr = ignoringEINTR(func() error { return unix.Unlinkat(fd, base, 0) })
			}
		})
		if err != nil {
			linkErr = err
		}
	}); err != nil {
		return cdccleaner.Failed, fmt.Errorf("trash %q: %w", p, err)
	}
	switch {
	case linkErr != nil:
		return l.moveToTrash(p, base, d, td)
	case unlinkErr == nil || errors.Is(unlinkErr, unix.ENOENT):
		return cdccleaner.Deleted, nil
	default:
		// The trash holds a link to the file, and its name is still in
		// place: a retry finds the two are one file and unlinks the name.
		return classify(p, os.NewSyscallError("unlinkat", unlinkErr), false)
	}
}

// moveToTrash is the checked way of trashOne: it looks at p first (a
// directory is never moved; a missing file is absent, and creates no trash
// directory), then at what the trash holds at its place: the same file
// (a move that stopped between linkat and unlinkat, or a restore that
// stopped between its linkat and unlinkat) needs only p's name removed,
// since a rename between two links of one file does nothing. Otherwise it
// renames p there, replacing an older trashed copy of the same path, and
// stamps the modification time with the time of trashing, for a file
// system that does not change the status change time on a rename.
func (l *Storage) moveToTrash(p, base string, d *os.File, td *trashDir) (cdccleaner.Outcome, error) {
	var st unix.Stat_t
	var statErr error
	if err := withFd(d, func(fd int) {
		statErr = ignoringEINTR(func() error { return unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW) })
	}); err != nil {
		return cdccleaner.Failed, fmt.Errorf("trash %q: %w", p, err)
	}
	if statErr != nil {
		return classify(p, os.NewSyscallError("fstatat", statErr), false)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return classify(p, os.NewSyscallError("fstatat", syscall.EISDIR), true)
	}
	dstDir, dstBase := splitParent(l.opts.TrashPrefix + p)
	dd, err := td.open(p)
	if err != nil {
		return cdccleaner.Failed, fmt.Errorf("trash %q: %w", p, err)
	}
	var op string
	var moveErr error
	if err := withFd(d, func(fd int) {
		err := withFd(dd, func(dfd int) {
			var dst unix.Stat_t
			if unix.Fstatat(dfd, dstBase, &dst, unix.AT_SYMLINK_NOFOLLOW) == nil && dst.Dev == st.Dev && dst.Ino == st.Ino {
				op = "unlinkat"
				moveErr = ignoringEINTR(func() error { return unix.Unlinkat(fd, base, 0) })
				return
			}
			op = "renameat"
			moveErr = ignoringEINTR(func() error { return renameat(fd, base, dfd, dstBase) })
			if moveErr == nil {
				now := unix.NsecToTimespec(time.Now().UnixNano())
				// Best effort: a failure only makes the file purge earlier
				// or later than the retention says.
				unix.UtimesNanoAt(dfd, dstBase, []unix.Timespec{now, now}, unix.AT_SYMLINK_NOFOLLOW)
			}
		})
		if err != nil {
			moveErr = err
		}
	}); err != nil {
		return cdccleaner.Failed, fmt.Errorf("trash %q: %w", p, err)
	}
	if op == "renameat" && errors.Is(moveErr, unix.ENOENT) {
		// Either the file is gone, or the trash directory was removed
		// since it was opened (the purge removes empty trash
		// directories): then the file is still in place and must not be
		// reported absent. The caller retries a transient failure.
		var again error
		withFd(d, func(fd int) {
			again = ignoringEINTR(func() error { return unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW) })
		})
		if again == nil {
			return cdccleaner.Failed, fmt.Errorf("trash %q: the trash directory %s vanished while moving the file there: %w", p, dstDir, moveErr)
		}
	}
	if moveErr != nil {
		return classify(p, os.NewSyscallError(op, moveErr), false)
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
// status change time, which the move sets (linkat and unlinkat always; a
// rename on Linux's usual file systems) and nobody can set back, and its
// modification time, which the rename way of trashing stamps for a file
// system whose rename leaves the status change time alone. Setting the
// modification time needs the file's owner (or root): a cleaner running as
// another user cannot stamp, and then goes by the status change time
// alone.
func trashedAt(info fs.FileInfo) time.Time {
	t := info.ModTime()
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		if c := time.Unix(st.Ctim.Unix()); c.After(t) {
			t = c
		}
	}
	return t
}
