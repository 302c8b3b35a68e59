package cdccleaner

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// LSN is a position in PostgreSQL's write-ahead log.
type LSN uint64

// String formats the LSN as PostgreSQL does: two hexadecimal halves, "16/B374D848".
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}

// ParseLSN parses the "16/B374D848" form.
func ParseLSN(s string) (LSN, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("parse LSN %q: %w", s, err)
	}
	return LSN(uint64(hi)<<32 | uint64(lo)), nil
}

// Ref names one stored file: a path inside a configured storage.
type Ref struct {
	Storage string // name of the storage in the configuration
	Path    string // path as stored in the database row, relative to the storage root or prefix
}

func (r Ref) String() string { return r.Storage + ":" + r.Path }

// Candidate is a file reference that vanished in a committed transaction.
// It becomes a deletion only if no watched or protect column still references
// it when it is checked.
type Candidate struct {
	Ref
	// Source says where the reference vanished, e.g.
	// "public.gallery_photo.image" or "message".
	Source string
	// Txn identifies the transaction inside the current stream session; the
	// LSN tracker uses it to know when a transaction is settled.
	Txn uint64
	// Xid is the transaction's 32-bit ID, as the server assigned it. The
	// reference check waits until it is visible to new snapshots.
	Xid uint32
	// CommitLSN is the LSN of the transaction's commit record.
	CommitLSN LSN
	// CommitTime is when the transaction committed, per the server.
	CommitTime time.Time
	// Parent, when set, is the path this one derives from (an entry's
	// `derived`): it is removed only when Parent is not referenced either,
	// and restored when Parent comes back.
	Parent string
	// Prefix is set for a derived prefix (a derived template ending in
	// "/"): Path, which ends in "/", names every file below it. A derived
	// file whose rendered path ends in "/" is no prefix: it is no path.
	Prefix bool
}

// IsPrefix reports whether c names every file below a derived prefix.
func (c Candidate) IsPrefix() bool {
	return c.Parent != "" && c.Prefix && strings.HasSuffix(c.Path, "/")
}

// Outcome is how the deletion of one path ended.
type Outcome int

const (
	// Deleted: the file existed and was removed (or moved to trash).
	Deleted Outcome = iota + 1
	// Absent: the file did not exist; deletion is idempotent, so this is success.
	Absent
	// Failed: the file could not be removed; Result.Err says why and whether
	// retrying may help.
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Deleted:
		return "deleted"
	case Absent:
		return "absent"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Result is the outcome of deleting one path.
type Result struct {
	Path    string
	Outcome Outcome
	Err     error // set when Outcome is Failed
	// Trash is where the file is now, relative to the storage, when it
	// was moved to the trash rather than deleted (Outcome Deleted), or
	// when it was absent at Path but the trash holds the copy an earlier
	// attempt moved there (Outcome Absent: a replay after a crash). It is
	// empty when nothing of the file is left.
	Trash string
}

// Storage is where files live: a local directory or an S3 bucket prefix.
type Storage interface {
	// Delete removes the files at paths and returns exactly one Result per
	// path, in the same order. A path that does not exist is reported as
	// Absent, not as an error (or as Deleted by a storage that cannot tell,
	// like S3, whose DeleteObjects answers the same for both). A path that is not a valid relative path
	// (see ValidatePath) is never touched and is reported as Failed
	// with a permanent error. When ctx ends, paths not yet handled are
	// reported as Failed with a transient error.
	Delete(ctx context.Context, paths []string) []Result
}

// ReferenceChecker tells which paths are still referenced in the live
// database.
type ReferenceChecker interface {
	// Visible reports whether every transaction in xids is visible to a new
	// snapshot. A transaction is streamed as soon as its commit record is
	// flushed, which can be before other sessions see it (a synchronous
	// standby is still acknowledging, or the committing backend has not yet
	// left the proc array): a reference check run before then would see the
	// database as it was before the commit.
	Visible(ctx context.Context, xids []uint32) (bool, error)
	// Referenced returns the subset of paths that some watched or protect
	// column mapped to storage still references. An error means the answer is
	// unknown and nothing may be deleted.
	Referenced(ctx context.Context, storage string, paths []string) (map[string]bool, error)
}

// Failure is a candidate that could not be deleted and will not be retried.
type Failure struct {
	Candidate
	Reason string // short machine-readable reason, e.g. "rejected_path"
	Detail string // the error text
}

// FailureRecorder keeps failures somewhere a person can find them, so that
// nothing is lost silently.
type FailureRecorder interface {
	// RecordFailures stores every failure durably before returning nil.
	RecordFailures(ctx context.Context, failures []Failure) error
}
