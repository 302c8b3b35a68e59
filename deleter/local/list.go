package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// readDirChunk is how many directory entries a listing reads at a time, so
// that a directory of millions of files never sits in memory at once.
const readDirChunk = 1024

// List implements cdccleaner.Lister: a depth-first walk of the root that
// reads each directory in chunks. It reports regular files only: symlinks
// (to files or to directories) are neither reported nor followed, and
// sockets, devices and pipes are left alone. Every directory is opened
// relative to its parent's descriptor with O_NOFOLLOW, so the walk never
// leaves the root. The directory TrashPrefix (when set, whether trash is on
// or not) is skipped: trashed files are the purger's business. A directory
// that cannot be read is an error that names it.
func (l *Storage) List(ctx context.Context, fn func(cdccleaner.File) error) error {
	top, err := l.root.OpenFile(".", os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("list %s: %w", l.Root(), err)
	}
	return l.walk(ctx, top, "", false, fn)
}

// walk lists the open directory d, whose path relative to the root is dir
// ("" for the root itself), and closes d. It reports regular files, and
// symlinks too when links is set; it never follows a symlink, and skips
// the directory TrashPrefix when it meets it (a walk that starts inside
// the trash never does).
func (l *Storage) walk(ctx context.Context, d *os.File, dir string, links bool, fn func(cdccleaner.File) error) error {
	defer d.Close()
	trashDir := strings.TrimSuffix(l.opts.TrashPrefix, "/")
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := d.ReadDir(readDirChunk)
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			p := e.Name()
			if dir != "" {
				p = dir + "/" + p
			}
			switch t := e.Type(); {
			case t.IsDir():
				if trashDir != "" && p == trashDir {
					continue
				}
				sub, err := openDirAt(d, e.Name(), path.Join(l.Root(), p))
				if err != nil {
					return fmt.Errorf("list directory %s: %w", path.Join(l.Root(), p), err)
				}
				if err := l.walk(ctx, sub, p, links, fn); err != nil {
					return err
				}
			case t.IsRegular(), links && t&fs.ModeSymlink != 0:
				f, err := statAt(d, e.Name(), links)
				if errors.Is(err, unix.ENOENT) {
					continue // deleted since the directory was read
				}
				if err != nil {
					return fmt.Errorf("stat %s: %w", path.Join(l.Root(), p), err)
				}
				if f.Path == "" { // no longer a file to report
					continue
				}
				f.Path = p
				if err := fn(f); err != nil {
					return err
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list directory %s: %w", path.Join(l.Root(), dir), err)
		}
	}
}

// openDirAt opens the directory name inside d without following a symlink.
// full is the name the returned file carries (an absolute path).
func openDirAt(d *os.File, name, full string) (*os.File, error) {
	var fd int
	var openErr error
	if err := withFd(d, func(dfd int) {
		openErr = ignoringEINTR(func() error {
			var err error
			fd, err = unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			return err
		})
	}); err != nil {
		return nil, err
	}
	if openErr != nil {
		return nil, os.NewSyscallError("openat", openErr)
	}
	return os.NewFile(uintptr(fd), full), nil
}

// statAt stats name inside d without following a symlink. The returned
// File has Path "x" for a regular file, and for a symlink when links is
// set (its own size and time), and "" for anything else.
func statAt(d *os.File, name string, links bool) (cdccleaner.File, error) {
	var st unix.Stat_t
	var statErr error
	if err := withFd(d, func(fd int) {
		statErr = ignoringEINTR(func() error { return unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) })
	}); err != nil {
		return cdccleaner.File{}, err
	}
	if statErr != nil {
		return cdccleaner.File{}, statErr
	}
	if kind := st.Mode & unix.S_IFMT; kind != unix.S_IFREG && !(links && kind == unix.S_IFLNK) {
		return cdccleaner.File{}, nil
	}
	return cdccleaner.File{Path: "x", Size: st.Size, ModTime: time.Unix(st.Mtim.Unix())}, nil
}

// Stat implements cdccleaner.Statter through the root.
func (l *Storage) Stat(p string) (cdccleaner.File, error) {
	if err := cdccleaner.ValidatePath(p); err != nil {
		return cdccleaner.File{}, err
	}
	info, err := l.root.Lstat(p)
	if err != nil {
		return cdccleaner.File{}, err
	}
	if !info.Mode().IsRegular() {
		return cdccleaner.File{}, fmt.Errorf("stat %q: not a regular file: %w", p, os.ErrNotExist)
	}
	return cdccleaner.File{Path: p, Size: info.Size(), ModTime: info.ModTime()}, nil
}
