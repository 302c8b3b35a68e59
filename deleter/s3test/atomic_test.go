package s3test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3"
)

// uploadBetweenCheckAndAct makes a new upload of data at key land once
// the fake has checked the condition of the first request of op and
// before gofakes3 acts on it (the wrapped handler is what the fake calls
// after the check). S3 checks and acts atomically: the upload then lands
// either before the check (which fails) or after the act. The put gets
// wait to complete; while it is blocked (the fake holds the check and the
// act together) the request goes on. It returns a channel that yields the
// put's error once it completed.
func uploadBetweenCheckAndAct(t *testing.T, srv *Server, op, key, data string, wait time.Duration) <-chan error {
	t.Helper()
	var fired atomic.Bool
	done := make(chan error, 1)
	next := srv.fake.next
	srv.fake.next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o, _ := operation(r); o == op && fired.CompareAndSwap(false, true) {
			put := make(chan error, 1)
			go func() { put <- srv.TryPut(context.Background(), key, []byte(data)) }()
			select {
			case err := <-put:
				done <- err
			case <-time.After(wait):
				go func() { done <- <-put }()
			}
		}
		next.ServeHTTP(w, r)
	})
	return done
}

// TestConditionalDeleteIsAtomic: the trash's copy, then a delete on the
// copy's ETag. A new upload landing while the server runs that delete
// must survive (the delete found another ETag, or the upload came after
// it); the fake checked the ETag and then let gofakes3 delete whatever
// was at the key by then, losing the upload (the fault suite's WRONG
// CONTENT: the trash kept the old content, the re-upload was gone).
func TestConditionalDeleteIsAtomic(t *testing.T) {
	for _, tt := range []struct{ name, path, op string }{
		{"DeleteObjects", "a/b.jpg", OpDeleteObjects},
		{"DeleteObject", "a/b\x01.jpg", OpDeleteObject}, // If-Match, key in the URL
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := Start(t, Options{})
			prefix := srv.Prefix() + "store/"
			srv.Put(t, prefix+tt.path, []byte("old"))
			uploaded := uploadBetweenCheckAndAct(t, srv, tt.op, prefix+tt.path, "new upload", 300*time.Millisecond)
			o := srv.Options(prefix)
			o.Trash, o.TrashPrefix, o.MaxAttempts = true, ".trash/", 1
			st, err := s3.New(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			r := st.Delete(context.Background(), []string{tt.path})[0]
			if err := <-uploaded; err != nil {
				t.Fatal(err)
			}
			if r.Outcome != cdccleaner.Deleted || r.Trash != ".trash/"+tt.path {
				t.Fatalf("Delete = %v, trash %q, err %v; want deleted into the trash", r.Outcome, r.Trash, r.Err)
			}
			if got := string(srv.Get(t, prefix+".trash/"+tt.path)); got != "old" {
				t.Errorf("trash holds %q, want %q", got, "old")
			}
			if !srv.Exists(t, prefix+tt.path) {
				t.Fatal("the new upload, landing during the conditional delete of the old object, was deleted")
			}
			if got := string(srv.Get(t, prefix+tt.path)); got != "new upload" {
				t.Errorf("key holds %q, want the new upload", got)
			}
		})
	}
}

// TestCopyIfNoneMatchIsAtomic: a restore copies with If-None-Match: *.
// A new upload landing while the server runs that copy must not be
// replaced by the old content.
func TestCopyIfNoneMatchIsAtomic(t *testing.T) {
	srv := Start(t, Options{})
	prefix := srv.Prefix() + "store/"
	srv.Put(t, prefix+".trash/a.jpg", []byte("old"))
	uploaded := uploadBetweenCheckAndAct(t, srv, OpCopyObject, prefix+"a.jpg", "new upload", 300*time.Millisecond)
	o := srv.Options(prefix)
	o.Trash, o.TrashPrefix, o.MaxAttempts = true, ".trash/", 1
	st, err := s3.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Restore(context.Background(), "a.jpg", ".trash/a.jpg"); err != nil {
		t.Fatal(err)
	}
	if err := <-uploaded; err != nil {
		t.Fatal(err)
	}
	if got := string(srv.Get(t, prefix+"a.jpg")); got != "new upload" {
		t.Errorf("a.jpg holds %q, want the new upload (the restore's copy replaced it)", got)
	}
}
