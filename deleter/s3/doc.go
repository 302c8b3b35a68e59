// Package s3 is the storage on a prefix of an S3 bucket (AWS or an
// S3-compatible server): it implements cdccleaner.Storage, Lister,
// PrefixLister, Statter, Trasher and Restorer. Apart from its test server
// (deleter/s3test), it is the only package that imports the AWS SDK.
//
// Every path is checked by cdccleaner.ValidatePath before it becomes a key
// (Prefix + path). Objects are deleted with batched DeleteObjects requests,
// up to MaxKeysPerRequest keys each and Concurrency requests at once, with
// a Content-MD5 header that older S3-compatible servers require; a key that
// an XML body cannot carry is deleted alone with DeleteObject. A response
// that refuses some keys is examined key by key. With trash on, each object
// is first copied under TrashPrefix and its original deleted only if it is
// still the object copied (a conditional delete on the copy's ETag, so that
// a new upload between the copy and the delete is left in place; a server
// without conditional deletes gets unconditional ones, with a warning), and
// PurgeTrash removes the copies once their retention is over; Restore copies
// one back, never over an object that exists at its path, and deletes it
// from the trash.
//
// Server errors are Error values with the S3 code. Throttling, server
// errors, timeouts and credential trouble are transient and retried by the
// caller; other refusals (AccessDenied, NoSuchBucket) are permanent, with a
// reason made from the code by Reason ("s3_access_denied").
package s3
