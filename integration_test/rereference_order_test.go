package integration_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
)

// Races of promise 7 that the fault suite (TestFaultSuite) found, made
// deterministic.

// TestReferencedThenRemovedInOneTransaction: a transaction references a
// path and then, before it commits, removes it again (a row created and
// its file replaced at once, a row inserted and deleted). At the commit
// the file is an orphan: it goes to the trash, and stays there. The
// re-reference of the same commit must not bring it back: the removal's
// reference check already saw the whole transaction.
func TestReferencedThenRemovedInOneTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("a.jpg", "b.jpg", "c.jpg")
	e.start()
	e.exec(`BEGIN; INSERT INTO gallery_photo (id, image) VALUES (1, 'a.jpg'); UPDATE gallery_photo SET image = 'b.jpg' WHERE id = 1; COMMIT`)
	e.exec(`BEGIN; INSERT INTO gallery_photo (id, image) VALUES (2, 'c.jpg'); DELETE FROM gallery_photo WHERE id = 2; COMMIT`)
	e.settle()
	for _, p := range []string{"a.jpg", "c.jpg"} {
		if e.exists(p) || !e.exists(".trash/"+p) {
			t.Errorf("%s: at its path %v, in the trash %v, want only in the trash; journal %q", p, e.exists(p), e.exists(".trash/"+p), e.journal(p))
		}
	}
	e.expect([]string{"b.jpg"}, nil)
}

// TestS3ReuploadDuringTrashing: S3 has no rename, so trashing an object
// is a copy to the trash and then a delete. An application that uploads
// new content under the same key and re-creates its row between the two
// (here from inside the DeleteObjects request, which waits for it) must
// keep its new upload: the delete must not remove it, and the restore
// must not bring the old copy back in its place.
func TestS3ReuploadDuringTrashing(t *testing.T) {
	var (
		mu      sync.Mutex
		srv     *s3test.Server
		dbURL   string
		prefix  string
		fired   bool
		hookErr error
	)
	e, s, pfx := newS3Env(t, envOptions{schema: photoSchema, watch: photoWatch}, s3test.Options{
		OnRequest: func(op, key string) {
			mu.Lock()
			defer mu.Unlock()
			if op != s3test.OpDeleteObjects || fired || prefix == "" {
				return
			}
			fired = true
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if hookErr = srv.TryPut(ctx, prefix+"avatars/42.jpg", []byte("new upload")); hookErr != nil {
				return
			}
			conn, err := pgx.Connect(ctx, dbURL)
			if err != nil {
				hookErr = err
				return
			}
			defer conn.Close(context.Background())
			_, hookErr = conn.Exec(ctx, `INSERT INTO gallery_photo (id, image) VALUES (42, 'avatars/42.jpg')`)
		},
	})
	s.RequireFake(t)
	s.Put(t, pfx+"avatars/42.jpg", []byte("old upload"))
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (42, 'avatars/42.jpg')`)
	mu.Lock()
	srv, dbURL, prefix = s, e.url, pfx
	mu.Unlock()
	e.start()
	e.exec(`DELETE FROM gallery_photo WHERE id = 42`)
	e.settle()
	mu.Lock()
	if !fired || hookErr != nil {
		mu.Unlock()
		t.Fatalf("no upload during the DeleteObjects request (fired %v): %v", fired, hookErr)
	}
	mu.Unlock()
	e.settle() // the re-created row too
	switch {
	case !s.Exists(t, pfx+"avatars/42.jpg"):
		t.Errorf("avatars/42.jpg, referenced, is missing; journal %q", e.journal("avatars/42.jpg"))
	case string(s.Get(t, pfx+"avatars/42.jpg")) != "new upload":
		t.Errorf("avatars/42.jpg holds %q, want the new upload; journal %q", s.Get(t, pfx+"avatars/42.jpg"), e.journal("avatars/42.jpg"))
	}
}
