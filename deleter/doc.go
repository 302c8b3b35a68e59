// Package deleter implements cdccleaner.Storage: deleting files from a local
// directory (and, later, S3) without ever touching anything outside the
// configured root.
//
// Every path is checked by ValidatePath before anything else happens: a path
// that is empty, absolute, contains a NUL byte, has a ".." segment or is not
// in canonical form is never touched and is reported as a permanent failure.
// Local storage then removes the file through an os.Root opened on the
// configured root, with unlinkat on the parent directory, so that a path can
// neither remove a directory, nor follow a final symlink, nor leave the root
// through a symlinked parent.
//
// Errors carry a machine-readable reason (see the Reason constants): permanent
// errors are recorded as failed deletions and never retried, all other errors
// are transient and are retried by the caller.
package deleter
