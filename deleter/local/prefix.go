package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter"
)

// ListPrefix implements cdccleaner.PrefixLister: the walk of List, from
// the directory prefix names, that reports symlinks too (as files, never
// followed: Delete removes the link) besides regular files; sockets,
// devices and pipes are left alone. The directory TrashPrefix is skipped
// unless prefix lies in it.
//
// prefix is checked by deleter.CheckPrefix first (a permanent
// rejected_path error otherwise). Its directory is then opened from the
// root one component at a time without following a symlink, so the
// listing never leaves the prefix's own place, not even for another
// place inside the root:
//   - a component that does not exist, or that is a file, means that no
//     file lies below prefix: nothing is listed, without error (Delete
//     answers Absent for a path below a missing directory or a file);
//   - a component that is a symlink (the prefix's directory itself, or
//     one on the way) is refused with a permanent error: escapes_root
//     when the link leads outside the root, not_a_directory otherwise.
//     Files may well be reachable below prefix through the link (Delete
//     would follow a link inside the root), so listing nothing would be
//     a shorter listing that nobody notices;
//   - a directory that cannot be opened or read is an error naming it
//     (transient, as for Delete: permission, I/O).
func (l *Storage) ListPrefix(ctx context.Context, prefix string, fn func(cdccleaner.File) error) error {
	if err := deleter.CheckPrefix(prefix); err != nil {
		return err
	}
	parent, d, err := l.openPrefix("list", prefix)
	if err != nil || d == nil {
		return err
	}
	parent.Close()
	return l.walk(ctx, d, strings.TrimSuffix(prefix, "/"), true, fn)
}

// PruneDirs implements cdccleaner.DirPruner: it removes the empty
// directories below prefix, deepest first, and then prefix's own
// directory, each with unlinkat(AT_REMOVEDIR) relative to its opened
// parent, which removes only an empty directory and never follows a
// symlink. A directory that is not empty, or no longer a directory, stays
// without error, and so do its parents. The root is never removed
// (prefix names a directory below it), nor the directory TrashPrefix
// unless prefix lies in it.
//
// prefix is checked and its directory opened as for ListPrefix: when it
// does not exist or is a file, there is nothing to prune; a symlink on the
// way is refused with the same permanent error. The names of the
// subdirectories of one directory are read before any of them is
// removed, since a directory is not read reliably while it changes. A
// directory that cannot be read, or an empty one that cannot be removed
// (permission, a read-only file system), is an error.
func (l *Storage) PruneDirs(ctx context.Context, prefix string) error {
	if err := deleter.CheckPrefix(prefix); err != nil {
		return err
	}
	parent, d, err := l.openPrefix("prune", prefix)
	if err != nil || d == nil {
		return err
	}
	defer parent.Close()
	dir := strings.TrimSuffix(prefix, "/")
	if err := l.pruneBelow(ctx, d, dir); err != nil {
		return err
	}
	_, name := splitParent(dir)
	return rmdirAt(parent, name, dir)
}

// pruneBelow removes the empty directories below the open directory d,
// whose path relative to the root is dir, deepest first, and closes d.
func (l *Storage) pruneBelow(ctx context.Context, d *os.File, dir string) error {
	defer d.Close()
	trashDir := strings.TrimSuffix(l.opts.TrashPrefix, "/")
	var subdirs []string
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := d.ReadDir(readDirChunk)
		for _, e := range entries {
			if p := dir + "/" + e.Name(); e.IsDir() && p != trashDir {
				subdirs = append(subdirs, e.Name())
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("prune directory %s: %w", path.Join(l.Root(), dir), err)
		}
	}
	for _, name := range subdirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := dir + "/" + name
		sub, err := openDirAt(d, name, path.Join(l.Root(), p))
		if isNotExist(err) {
			continue // removed meanwhile, or no longer a directory
		}
		if err != nil {
			return fmt.Errorf("prune directory %s: %w", path.Join(l.Root(), p), err)
		}
		if err := l.pruneBelow(ctx, sub, p); err != nil {
			return err
		}
		if err := rmdirAt(d, name, p); err != nil {
			return err
		}
	}
	return nil
}

// rmdirAt removes the directory name from the open directory d when it is
// empty; p is its path relative to the root. A directory that is not
// empty (ENOTEMPTY, or EEXIST as POSIX allows), already gone, no longer a
// directory (ENOTDIR: a symlink or a file took its name) or a mount point
// (EBUSY) stays, without error.
func rmdirAt(d *os.File, name, p string) error {
	var rmErr error
	if err := withFd(d, func(fd int) {
		rmErr = ignoringEINTR(func() error { return unix.Unlinkat(fd, name, unix.AT_REMOVEDIR) })
	}); err != nil {
		return fmt.Errorf("prune directory %q: %w", p, err)
	}
	switch rmErr {
	case nil, unix.ENOTEMPTY, unix.EEXIST, unix.ENOENT, unix.ENOTDIR, unix.EBUSY:
		return nil
	}
	return failure("prune directory", p, os.NewSyscallError("unlinkat", rmErr), false)
}

// openPrefix opens the directory that prefix (checked, ending in "/")
// names, and its parent, from the root one component at a time with
// O_NOFOLLOW; the caller closes both. When that directory does not exist,
// or a component is a file, it returns nil directories and no error. A
// component that is a symlink is refused with a permanent error, and so
// is a name too long; other errors are transient. op ("list", "prune")
// starts the error's text.
func (l *Storage) openPrefix(op, prefix string) (parent, dir *os.File, err error) {
	segs := strings.Split(strings.TrimSuffix(prefix, "/"), "/")
	d, err := l.root.OpenFile(".", os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %q: open %s: %w", op, prefix, l.Root(), err)
	}
	var up *os.File // d's parent, once d is below the root
	for i, seg := range segs {
		p := strings.Join(segs[:i+1], "/")
		sub, err := openDirAt(d, seg, path.Join(l.Root(), p))
		if err != nil {
			// O_DIRECTORY|O_NOFOLLOW answers ENOTDIR for a symlink as for
			// a file (ELOOP without O_DIRECTORY): look at the entry itself.
			var kind uint32
			withFd(d, func(fd int) { kind = kindAt(fd, seg) })
			d.Close()
			if up != nil {
				up.Close()
			}
			switch {
			case kind == unix.S_IFLNK || errors.Is(err, unix.ELOOP):
				return nil, nil, l.refuseLink(op, prefix, p)
			case isNotExist(err):
				return nil, nil, nil
			}
			return nil, nil, failure(op, prefix, fmt.Errorf("open directory %s: %w", path.Join(l.Root(), p), err), false)
		}
		if up != nil {
			up.Close()
		}
		up, d = d, sub
	}
	return up, d, nil
}

// refuseLink is the permanent error for prefix, whose component link (a
// path relative to the root) is a symlink.
func (l *Storage) refuseLink(op, prefix, link string) error {
	// os.Root resolves the link without ever leaving the root: it says
	// whether the link leads out, and nothing is listed either way.
	if _, err := l.root.Stat(link); isRootEscape(err) {
		return cdccleaner.Permanent(cdccleaner.ReasonEscapesRoot,
			fmt.Errorf("%s %q: %q is a symlink leading outside the root, never followed: %w", op, prefix, link, cdccleaner.ErrEscapesRoot))
	}
	return cdccleaner.Permanent(cdccleaner.ReasonNotADirectory,
		fmt.Errorf("%s %q: %q is a symlink where a directory is needed, never followed", op, prefix, link))
}
