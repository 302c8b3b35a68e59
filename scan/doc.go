// Package scan finds files in a storage that no watched or protect column
// references, and removes them on request.
//
// A scan streams the storage's listing (cdccleaner.Lister) and asks the
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
//
// A file counts as referenced also when a column value that is not a
// canonical path ("./a.jpg", "/media/a.jpg", a URL) could name it
// (cdccleaner.CanonicalNames): such values are read with a query per
// column before the listing and again before and during the deletion, and
// a scan refuses when there are more of them than it holds in memory.
package scan
