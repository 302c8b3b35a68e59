// Package local is the storage on a local directory: it implements
// cdccleaner.Storage, Lister, PrefixLister, DirPruner, Statter, Trasher
// and Restorer without ever touching anything outside the configured root.
//
// Every path is checked by cdccleaner.ValidatePath before anything else
// happens: a path that is empty, absolute, contains a NUL byte, has a ".."
// segment or is not in canonical form is never touched and is reported as a
// permanent failure. The file is then removed through an os.Root opened on
// the configured root, with unlinkat on the parent directory, so that a path
// can neither remove a directory, nor follow a final symlink, nor leave the
// root through a symlinked parent. With trash on, the file is renamed into
// the trash directory under the same rules instead, and PurgeTrash removes
// it once its retention is over; Restore moves it back, never replacing
// what has appeared at its path since.
//
// ListPrefix and PruneDirs, for the prefixes removed with a path (derived
// files), open the prefix's directory one component at a time from the
// root without following a symlink, so they neither leave the root nor
// reach another place inside it through a link; a symlink on the way is
// refused.
//
// Errors carry a machine-readable reason (see cdccleaner's Reason
// constants): permanent errors are recorded as failed deletions and never
// retried, all other errors are transient and are retried by the caller.
package local
