package s3_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/deletertest"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
)

var _ deletertest.RestoreFixture = (*s3Fixture)(nil)

func (f *s3Fixture) Read(t *testing.T, p string) []byte {
	t.Helper()
	return f.srv.Get(t, f.prefix+p)
}

// newTrashS3 returns a storage with trash on under ".trash/" on a fresh
// fixture whose server has opts.
func newTrashS3(t *testing.T, opts s3test.Options) (*s3.Storage, *s3Fixture) {
	t.Helper()
	fx := newS3Fixture(t, opts)
	o := fx.options()
	o.Trash, o.TrashPrefix = true, ".trash/"
	o.MaxAttempts = 1 // the storage's answer, not the SDK's retries
	t.Cleanup(func() { fx.checkConfined(t) })
	return newS3(t, o), fx
}

func TestS3RestoreContract(t *testing.T) {
	deletertest.RunRestoreContract(t, ".trash/", func(t *testing.T) (deletertest.RestoreStorage, deletertest.RestoreFixture) {
		return newTrashS3(t, s3test.Options{})
	})
}

// trashS3 puts data at p, trashes it and returns where it went.
func trashS3(t *testing.T, st *s3.Storage, fx *s3Fixture, p, data string) string {
	t.Helper()
	fx.Put(t, p, []byte(data))
	r := st.Delete(context.Background(), []string{p})[0]
	if r.Outcome != cdccleaner.Deleted || r.Trash != ".trash/"+p {
		t.Fatalf("Delete(%q) = %v, Trash %q (err %v); want deleted into .trash/", p, r.Outcome, r.Trash, r.Err)
	}
	return r.Trash
}

func wantContentS3(t *testing.T, fx *s3Fixture, p, want string) {
	t.Helper()
	if !fx.Exists(t, p) {
		t.Errorf("%s does not exist, want %q", p, want)
		return
	}
	if got := string(fx.Read(t, p)); got != want {
		t.Errorf("%s = %q, want %q", p, got, want)
	}
}

// TestS3RestoreIfNoneMatch: an object that appears at the path after
// Restore's HEAD, while its copy is on the way, is never replaced: the copy
// carries If-None-Match: *, and the 412 is Occupied.
func TestS3RestoreIfNoneMatch(t *testing.T) {
	var armed atomic.Bool
	uploaded := make(chan error, 1)
	var fx *s3Fixture
	st, fx := newTrashS3(t, s3test.Options{OnRequest: func(op, key string) {
		if op == s3test.OpCopyObject && armed.CompareAndSwap(true, false) {
			uploaded <- fx.srv.TryPut(context.Background(), fx.prefix+"a/b.jpg", []byte("new upload"))
		}
	}})
	fx.srv.RequireFake(t)
	trash := trashS3(t, st, fx, "a/b.jpg", "old")
	armed.Store(true)
	got, err := st.Restore(context.Background(), "a/b.jpg", trash)
	select {
	case err := <-uploaded:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("Restore sent no CopyObject")
	}
	if got != cdccleaner.Occupied || err != nil {
		t.Fatalf("Restore with an upload after the HEAD = %v, %v; want occupied", got, err)
	}
	wantContentS3(t, fx, "a/b.jpg", "new upload")
	wantContentS3(t, fx, trash, "old")

	// The server really enforces the condition, or this test would pass
	// without it: a copy onto an existing key is refused.
	_, err = fx.srv.Client().CopyObject(context.Background(), &awss3.CopyObjectInput{
		Bucket:      aws.String(fx.srv.Bucket()),
		Key:         aws.String(fx.prefix + "a/b.jpg"),
		CopySource:  aws.String(fx.srv.Bucket() + "/" + fx.prefix + trash),
		IfNoneMatch: aws.String("*"),
	})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "PreconditionFailed" {
		t.Fatalf("CopyObject with If-None-Match onto an existing key = %v, want PreconditionFailed", err)
	}
}

// TestS3RestoreRequestErrors: how Restore answers when one of its requests
// fails.
func TestS3RestoreRequestErrors(t *testing.T) {
	tests := []struct {
		name      string
		op        string
		status    int
		code      string
		want      cdccleaner.RestoreOutcome // 0: an error
		permanent bool
		restored  bool // the object is at its path afterwards
		inTrash   bool // the trash copy is left
	}{
		// A HEAD answer has no body: the SDK names the code after the status.
		{name: "HEAD refused", op: s3test.OpHeadObject, status: http.StatusForbidden, code: "Forbidden", permanent: true, inTrash: true},
		{name: "HEAD 500", op: s3test.OpHeadObject, status: http.StatusInternalServerError, code: "InternalServerError", inTrash: true},
		{name: "copy refused", op: s3test.OpCopyObject, status: http.StatusForbidden, code: "AccessDenied", permanent: true, inTrash: true},
		{name: "copy throttled", op: s3test.OpCopyObject, status: http.StatusServiceUnavailable, code: "SlowDown", inTrash: true},
		{name: "copy precondition failed", op: s3test.OpCopyObject, status: http.StatusPreconditionFailed, code: "PreconditionFailed", want: cdccleaner.Occupied, inTrash: true},
		{name: "copy conditional conflict", op: s3test.OpCopyObject, status: http.StatusConflict, code: "ConditionalRequestConflict", inTrash: true},
		{name: "copy source missing", op: s3test.OpCopyObject, status: http.StatusNotFound, code: "NoSuchKey", want: cdccleaner.NotInTrash, inTrash: true},
		{name: "bucket missing", op: s3test.OpCopyObject, status: http.StatusNotFound, code: "NoSuchBucket", permanent: true, inTrash: true},
		// The restore is done once the copy is made.
		{name: "trash delete refused", op: s3test.OpDeleteObject, status: http.StatusForbidden, code: "AccessDenied", want: cdccleaner.Restored, restored: true, inTrash: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var on atomic.Bool
			st, fx := newTrashS3(t, s3test.Options{RequestError: func(op string) (int, string) {
				if on.Load() && op == tt.op {
					return tt.status, tt.code
				}
				return 0, ""
			}})
			fx.srv.RequireFake(t)
			trash := trashS3(t, st, fx, "a/b.jpg", "b")
			on.Store(true)
			got, err := st.Restore(context.Background(), "a/b.jpg", trash)
			on.Store(false)
			switch {
			case tt.want != 0 && (got != tt.want || err != nil):
				t.Errorf("Restore = %v, %v; want %v", got, err, tt.want)
			case tt.want == 0 && (err == nil || got != 0):
				t.Errorf("Restore = %v, %v; want an error", got, err)
			case tt.want == 0 && cdccleaner.IsPermanent(err) != tt.permanent:
				t.Errorf("Restore error %v: permanent %v, want %v", err, cdccleaner.IsPermanent(err), tt.permanent)
			case tt.want == 0 && (s3Err(err) == nil || s3Err(err).Code != tt.code):
				t.Errorf("Restore error %v does not carry the S3 code %s", err, tt.code)
			}
			if got := fx.Exists(t, "a/b.jpg"); got != tt.restored {
				t.Errorf("a/b.jpg exists = %v, want %v", got, tt.restored)
			}
			if got := fx.Exists(t, trash); got != tt.inTrash {
				t.Errorf("%s exists = %v, want %v", trash, got, tt.inTrash)
			}
		})
	}
}

// TestS3DeleteCannotLookInTrash: an absent object whose trash copy cannot
// be looked at fails, rather than claiming that nothing of it is left.
func TestS3DeleteCannotLookInTrash(t *testing.T) {
	st, fx := newTrashS3(t, s3test.Options{RequestError: func(op string) (int, string) {
		if op == s3test.OpHeadObject {
			return http.StatusInternalServerError, "InternalError"
		}
		return 0, ""
	}})
	fx.srv.RequireFake(t)
	r := st.Delete(context.Background(), []string{"gone.jpg"})[0]
	if r.Outcome != cdccleaner.Failed || cdccleaner.IsPermanent(r.Err) || r.Trash != "" {
		t.Fatalf("Delete of a missing object, HEAD failing = %v, Trash %q (err %v); want failed, transient", r.Outcome, r.Trash, r.Err)
	}
	if !strings.Contains(r.Err.Error(), fx.prefix+".trash/gone.jpg") {
		t.Errorf("error %q does not name the trash key", r.Err)
	}
}

// TestS3DeleteFailedHasNoTrash: when the original cannot be deleted after
// its copy, the result fails and names no trash: the object is still at
// its path.
func TestS3DeleteFailedHasNoTrash(t *testing.T) {
	st, fx := newTrashS3(t, s3test.Options{KeyError: func(key string) (string, string) {
		if strings.HasSuffix(key, "/denied.jpg") && !strings.Contains(key, ".trash/") {
			return "AccessDenied", "Access Denied"
		}
		return "", ""
	}})
	fx.srv.RequireFake(t)
	fx.Put(t, "denied.jpg", []byte("d"))
	r := st.Delete(context.Background(), []string{"denied.jpg"})[0]
	if r.Outcome != cdccleaner.Failed || r.Trash != "" {
		t.Fatalf("Delete refused after the copy = %v, Trash %q (err %v); want failed, no Trash", r.Outcome, r.Trash, r.Err)
	}
	if !fx.Exists(t, "denied.jpg") {
		t.Error("denied.jpg is gone")
	}
}

func TestS3DeleteWithoutTrashHasNoTrash(t *testing.T) {
	fx := newS3Fixture(t, s3test.Options{})
	fx.Put(t, "a", []byte("a"))
	fx.Put(t, ".trash/b", []byte("b"))
	for _, r := range newS3(t, fx.options()).Delete(context.Background(), []string{"a", "b"}) {
		if r.Trash != "" {
			t.Errorf("Delete(%q) without trash: Trash %q", r.Path, r.Trash)
		}
	}
}

// TestS3RestoreOccupiedSendsNoCopy: Restore looks before it copies, so
// that a server ignoring If-None-Match on CopyObject still never replaces
// an object that exists when the restore starts.
func TestS3RestoreOccupiedSendsNoCopy(t *testing.T) {
	st, fx := newTrashS3(t, s3test.Options{})
	fx.srv.RequireFake(t)
	trash := trashS3(t, st, fx, "a/b.jpg", "old")
	fx.Put(t, "a/b.jpg", []byte("new upload"))
	copies := fx.srv.Requests(s3test.OpCopyObject)
	if got, err := st.Restore(context.Background(), "a/b.jpg", trash); got != cdccleaner.Occupied || err != nil {
		t.Fatalf("Restore onto an existing object = %v, %v; want occupied", got, err)
	}
	if n := fx.srv.Requests(s3test.OpCopyObject) - copies; n != 0 {
		t.Errorf("%d CopyObject requests for an occupied path, want none", n)
	}
	wantContentS3(t, fx, "a/b.jpg", "new upload")
	wantContentS3(t, fx, trash, "old")
}
