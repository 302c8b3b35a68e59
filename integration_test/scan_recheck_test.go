package integration_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
)

// TestScanS3ReferenceCommittedDuringLookups: scan --delete on S3 looks at
// each orphan again (HeadObject) before deleting its batch. A row that
// references an orphan, committed while those requests are outstanding
// (here from inside the first HeadObject of the delete phase, which waits
// for the commit), keeps the object: the reference re-check comes after
// the lookups, right before the deletion. Before issue 12 the re-check came
// first and the lookups followed one by one, so the object was deleted.
// The latency only makes the server resemble a remote one; nothing depends
// on it.
func TestScanS3ReferenceCommittedDuringLookups(t *testing.T) {
	const orphans = 300
	rescued := "orphans/150.jpg"
	var (
		mu       sync.Mutex
		dbURL    string
		prefix   string
		fired    bool
		hookErr  error
		insertAt string // the key of the HeadObject the row was committed in
	)
	e, srv, pfx := newS3Env(t, envOptions{schema: photoSchema, watch: photoWatch, noSetup: true}, s3test.Options{
		Latency: func(op string) time.Duration {
			if op == s3test.OpHeadObject {
				return 10 * time.Millisecond
			}
			return 0
		},
		OnRequest: func(op, key string) {
			mu.Lock()
			defer mu.Unlock()
			if op != s3test.OpHeadObject || fired || prefix == "" || !strings.HasPrefix(key, prefix+"orphans/") {
				return
			}
			fired, insertAt = true, key
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			conn, err := pgx.Connect(ctx, dbURL)
			if err != nil {
				hookErr = err
				return
			}
			defer conn.Close(context.Background())
			_, hookErr = conn.Exec(ctx, `INSERT INTO gallery_photo (image) VALUES ($1)`, rescued)
		},
	})
	srv.RequireFake(t)
	mu.Lock()
	dbURL, prefix = e.url, pfx
	mu.Unlock()

	e.exec(`INSERT INTO gallery_photo (image) VALUES ('kept.jpg')`)
	srv.Put(t, pfx+"kept.jpg", []byte("kept"))
	keys := make([]string, orphans)
	for i := range keys {
		keys[i] = fmt.Sprintf("%sorphans/%03d.jpg", pfx, i)
	}
	srv.PutKeys(t, keys, []byte("orphan"))

	// Nearly every file is an orphan here, which the guards take for a
	// wrong configuration: this test is about the re-check.
	out, code := e.cli("scan", "--min-age", "0s", "--delete", "--force")
	if code != 0 {
		t.Fatalf("scan --delete exited %d:\n%s", code, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if !fired || hookErr != nil {
		t.Fatalf("the row was not committed during a HeadObject (fired %v): %v", fired, hookErr)
	}
	t.Logf("row committed during HeadObject %s", insertAt)
	if !srv.Exists(t, pfx+rescued) {
		t.Errorf("%s, referenced by a row committed during the lookups, was deleted", rescued)
	}
	reported := false
	for _, l := range orphanLines(out) {
		if strings.HasPrefix(l, rescued+"\t") {
			reported = strings.HasSuffix(l, "\treferenced")
		}
	}
	if !reported {
		t.Errorf("scan did not report %s as referenced:\n%s", rescued, out)
	}
	if !srv.Exists(t, pfx+"kept.jpg") {
		t.Errorf("kept.jpg was deleted")
	}
	left := srv.Keys(t, pfx+"orphans/")
	if len(left) != 1 {
		t.Errorf("%d orphans left, want only %s: %q", len(left), rescued, left)
	}
	if n := srv.Requests(s3test.OpHeadObject); n < orphans {
		t.Errorf("%d HeadObject requests, want one per orphan (%d)", n, orphans)
	}
}
