// Package s3test runs an S3-compatible server for tests: gofakes3 in-process
// on loopback, or an external endpoint named by CDC_TEST_S3_ENDPOINT.
//
// In-process, the server sits behind a handler that enforces what S3 does
// and gofakes3 ignores (If-None-Match: * on CopyObject, the ETag of an
// object in DeleteObjects and If-Match on DeleteObject), that can inject
// the faults S3-compatible servers show in production (a required
// Content-MD5 header, per-key errors inside a 200 response, throttling,
// connection resets, slow answers, refused requests, refused conditional
// deletes, a copy's ETag other than its source's) and that counts the
// requests of the code under test by operation. Against an external
// endpoint there are no faults and no counters; tests that need them call
// Server.RequireFake.
package s3test
