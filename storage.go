package cdccleaner

import (
	"context"
	"fmt"
	"time"
)

// File is one stored file as a listing reports it.
type File struct {
	Path    string // relative to the storage root or prefix, as a row would name it
	Size    int64
	ModTime time.Time
	// ETag identifies an object's content (S3 only; empty elsewhere). A
	// rewrite of the same key changes it, even within one second.
	ETag string
}

// Lister is a storage that can enumerate its files.
type Lister interface {
	// List calls fn once for every file of the storage, in no particular
	// order, without holding the whole listing in memory. The trash area
	// (TrashPrefix) is never listed. It stops at the first error fn
	// returns, and returns it; a storage that cannot be read (a directory
	// that cannot be opened, a bucket the credentials may not list) is an
	// error, never a shorter listing.
	List(ctx context.Context, fn func(File) error) error
}

// PrefixLister is a storage that can enumerate the files below one prefix:
// a derived prefix (`derived: ["va/ri/variants/{key}/"]`) removed with the
// path it derives from, or its place in the trash when that path comes
// back.
type PrefixLister interface {
	// ListPrefix calls fn once for every file whose path starts with
	// prefix, which ends in "/" and passes ValidatePath without it, in no
	// particular order, without holding the listing in memory. Paths are
	// relative to the storage, as Delete and Restore take them. Only
	// files are listed (local: never a directory, never following a
	// symlink; a symlink itself is listed as a file, as Delete removes
	// it). The trash area is listed only when prefix lies in it. A prefix
	// that does not exist lists nothing; one that cannot be read is an
	// error, never a shorter listing. It stops at the first error fn
	// returns, and returns it.
	ListPrefix(ctx context.Context, prefix string, fn func(File) error) error
}

// DirPruner is a storage whose directories outlive their files (local):
// after the files below a derived prefix are removed, PruneDirs removes
// the directories below it and the prefix's own, deepest first, each only
// when empty; never anything else, never following a symlink. A directory
// that is not empty (a file written there meanwhile) stays, without error.
type DirPruner interface {
	PruneDirs(ctx context.Context, prefix string) error
}

// Statter is a storage that can look at one file cheaply.
type Statter interface {
	// Stat returns the file at p, without following a final symlink. A
	// path that does not exist, or that is not a regular file, is
	// fs.ErrNotExist.
	Stat(p string) (File, error)
}

// Trasher is a storage that can move files to a trash area instead of
// deleting them, and purge what has been there long enough.
type Trasher interface {
	// PurgeTrash deletes trashed files that were trashed before cutoff and
	// returns how many it deleted. A file trashed again later is kept.
	PurgeTrash(ctx context.Context, cutoff time.Time) (int, error)
}

// RestoreOutcome is how the restore of one trashed file ended.
type RestoreOutcome int

const (
	// Restored: the trashed file is back at its path.
	Restored RestoreOutcome = iota + 1
	// Occupied: something exists at the path (a new upload, or the file
	// restored before a crash); it was left alone and the trashed copy
	// stays in the trash until it is purged.
	Occupied
	// NotInTrash: nothing is at the path and the trash holds no file at
	// the place given (purged past the undo window, or never trashed).
	NotInTrash
)

func (o RestoreOutcome) String() string {
	switch o {
	case Restored:
		return "restored"
	case Occupied:
		return "occupied"
	case NotInTrash:
		return "not_in_trash"
	}
	return fmt.Sprintf("restore_outcome(%d)", int(o))
}

// Restorer is a storage that can put a trashed file back where it was.
type Restorer interface {
	// Restore moves the file at trash (a path relative to the storage, as
	// Result.Trash reported it) back to p. It never replaces anything at
	// p: when something exists there, it answers Occupied and leaves both
	// alone. It is idempotent: a restore repeated after a crash finds the
	// file at p and answers Occupied. An error is transient unless
	// IsPermanent says otherwise; both paths are validated as for Delete.
	//
	// A caller must not restore a path while it deletes the same path: on
	// S3 the restore deletes the trashed copy after copying it back, and a
	// deletion in between would trash a copy to that same key. The
	// pipeline orders removals and re-references of one path (see
	// pipeline/order.go).
	Restore(ctx context.Context, p, trash string) (RestoreOutcome, error)
}
