// Package scan finds files in a storage that no watched or protect column
// references, and removes them on request.
//
// A scan streams the storage's listing (deleter.Lister) and asks the
// reference checker about the files in batches, so memory does not grow
// with the number of files or rows. Files younger than MinAge (an upload
// whose row is not committed yet), excluded files, keep files and paths that
// are not valid relative paths are never candidates. With Delete, the
// orphans are spooled to a temporary file while listing; only when the
// listing has completed are they looked at again in the storage (several
// at once) and then checked again against the database, batch by batch,
// right before the storage deletes them (honouring trash), so a listing
// that fails deletes nothing and a file referenced or rewritten since it
// was listed is kept.
package scan
