package cdccleaner

import (
	"errors"
	"io/fs"
)

// Sentinel errors wrapped in the errors Delete and ValidatePath return; test
// for them with errors.Is.
var (
	// ErrEmptyPath: the path is the empty string.
	ErrEmptyPath = errors.New("path is empty")
	// ErrAbsolutePath: the path starts with "/".
	ErrAbsolutePath = errors.New("path is absolute")
	// ErrNULByte: the path contains a NUL byte.
	ErrNULByte = errors.New("path contains a NUL byte")
	// ErrDotDot: the path has a ".." segment.
	ErrDotDot = errors.New(`path has a ".." segment`)
	// ErrNotCanonical: the path is ".", or path.Clean would change it
	// ("a//b", "./a", "a/./b", "a/"). Such a path is rejected rather than
	// normalised: "a//b" and "a/b" are different S3 keys but the same local
	// file, so normalising could delete a file that another row references
	// under its canonical spelling.
	ErrNotCanonical = errors.New("path is not canonical")
	// ErrEscapesRoot: resolving the path inside the storage root led outside
	// it, e.g. through a parent directory that is a symlink to elsewhere.
	ErrEscapesRoot = errors.New("path escapes the storage root")
	// ErrIsDirectory: the path names a directory; only files are deleted.
	ErrIsDirectory = errors.New("path is a directory")
)

// Reasons are short snake_case words that say why a deletion failed. They are
// used as the reason label of cdc_cleaner_failed_total and stored with failed
// deletions, so the set is small and fixed: add to it, never rename.
const (
	// ReasonRejectedPath: ValidatePath refused the path (empty, absolute, NUL
	// byte, ".." segment, not canonical). Nothing was touched.
	ReasonRejectedPath = "rejected_path"
	// ReasonEscapesRoot: the path resolves outside the storage root (a parent
	// component is a symlink leading out). Nothing was touched.
	ReasonEscapesRoot = "escapes_root"
	// ReasonIsDirectory: the path names a directory, which is never removed.
	ReasonIsDirectory = "is_directory"
	// ReasonNameTooLong: the path or one of its components is longer than
	// the file system allows.
	ReasonNameTooLong = "name_too_long"
	// ReasonSymlinkLoop: resolving a parent component met too many symlinks.
	ReasonSymlinkLoop = "symlink_loop"
	// ReasonNotADirectory: a directory the operation needs is a file: a
	// parent of the path where a file was restored to, or, in the trash,
	// a file trashed earlier where a later path needs a directory
	// (".trash/x" when "x/y.jpg" is trashed).
	ReasonNotADirectory = "not_a_directory"
	// ReasonPermissionDenied: the storage refused the deletion for
	// permission (EACCES, EPERM on a file, S3 AccessDenied) for longer than
	// the pipeline's patience; recorded by the pipeline, not the storage.
	ReasonPermissionDenied = "permission_denied"
	// ReasonTransient is what Reason returns for an error that is not
	// permanent: retrying may help (permission, read-only file system, I/O
	// error, canceled context, anything unknown).
	ReasonTransient = "transient"
)

// Reasons returns every reason Reason can return, for pre-declaring metric
// label values.
func Reasons() []string {
	return []string{
		ReasonRejectedPath,
		ReasonEscapesRoot,
		ReasonIsDirectory,
		ReasonNameTooLong,
		ReasonSymlinkLoop,
		ReasonNotADirectory,
		ReasonPermissionDenied,
		ReasonTransient,
	}
}

// PermanentError is a deletion failure that retrying cannot fix. The caller
// records it as a failed deletion and moves on instead of retrying.
type PermanentError struct {
	Reason string // one of the Reason constants
	Err    error  // what happened; may be nil
}

func (e *PermanentError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Err.Error()
}

func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent with reason, one of the Reason constants.
func Permanent(reason string, err error) error {
	return &PermanentError{Reason: reason, Err: err}
}

// IsPermanent reports whether err, or any error it wraps, is a
// *PermanentError: retrying will not help.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// Reason returns the reason of the *PermanentError in err's chain, or
// ReasonTransient when there is none. Reason(nil) is "".
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return ReasonTransient
}

// IsPermission reports whether err is a transient failure for lack of
// permission (EACCES or EPERM). Such a failure may go away (a directory
// made read-only for a while) or not (a file owned by another user), so the
// pipeline retries it for a while and then records it as failed, instead of
// holding the slot forever for one file.
func IsPermission(err error) bool {
	return err != nil && !IsPermanent(err) && errors.Is(err, fs.ErrPermission)
}
