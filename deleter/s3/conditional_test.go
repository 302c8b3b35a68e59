package s3_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/rs/zerolog"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
)

// logLines collects the JSON log lines of a storage, and shows them with
// t.Log.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count returns how many lines at level contain msg.
func (l *logLines) count(level, msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.buf.String(), "\n") {
		if strings.Contains(line, `"level":"`+level+`"`) && strings.Contains(line, msg) {
			n++
		}
	}
	return n
}

// newCondS3 returns a storage with trash on under ".trash/", logging to
// the returned lines, on a fresh in-process server with opts.
func newCondS3(t *testing.T, opts s3test.Options) (*s3.Storage, *s3Fixture, *logLines) {
	t.Helper()
	fx := newS3Fixture(t, opts)
	fx.srv.RequireFake(t)
	logs := new(logLines)
	o := fx.options()
	o.Trash, o.TrashPrefix = true, ".trash/"
	o.MaxAttempts = 1
	o.Log = zerolog.New(zerolog.MultiLevelWriter(zerolog.TestWriter{T: t}, logs))
	t.Cleanup(func() { fx.checkConfined(t) })
	return newS3(t, o), fx, logs
}

const leftMsg = "a new upload replaced the object while it was being trashed"

// wantTrashed checks that Delete reported r as Deleted into .trash/.
func wantTrashed(t *testing.T, r cdccleaner.Result) {
	t.Helper()
	if r.Outcome != cdccleaner.Deleted || r.Err != nil || r.Trash != ".trash/"+r.Path {
		t.Fatalf("Delete(%q) = %v, Trash %q (err %v); want deleted into .trash/", r.Path, r.Outcome, r.Trash, r.Err)
	}
}

// TestS3ReuploadBetweenCopyAndDelete: S3 has no rename, so trashing is a
// copy and then a delete. A new upload to the key between the two must
// stay: the delete carries the copy's ETag, the server refuses it (412),
// and the new upload is left in place while the path is reported trashed
// (the trash holds the old content).
func TestS3ReuploadBetweenCopyAndDelete(t *testing.T) {
	tests := []struct {
		name string
		path string
		op   string // the delete request the upload lands before
	}{
		{name: "DeleteObjects", path: "a/b.jpg", op: s3test.OpDeleteObjects},
		// A key XML cannot carry goes alone, with If-Match.
		{name: "DeleteObject", path: "a/b\x01.jpg", op: s3test.OpDeleteObject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var armed atomic.Bool
			uploaded := make(chan error, 1)
			var fx *s3Fixture
			st, fx, logs := newCondS3(t, s3test.Options{OnRequest: func(op, key string) {
				if op == tt.op && armed.CompareAndSwap(true, false) {
					uploaded <- fx.srv.TryPut(context.Background(), fx.prefix+tt.path, []byte("new upload"))
				}
			}})
			fx.Put(t, tt.path, []byte("old"))
			armed.Store(true)
			r := st.Delete(context.Background(), []string{tt.path})[0]
			select {
			case err := <-uploaded:
				if err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("Delete sent no %s", tt.op)
			}
			wantTrashed(t, r)
			wantContentS3(t, fx, tt.path, "new upload")
			wantContentS3(t, fx, r.Trash, "old")
			if n := logs.count("info", leftMsg); n != 1 {
				t.Errorf("%d info lines saying the new upload was left alone, want 1", n)
			}
			if n := fx.srv.Requests(s3test.OpHeadObject); n != 1 {
				t.Errorf("%d HeadObject requests, want 1 (the look after the 412)", n)
			}
		})
	}
}

// TestS3ConditionalDeletesAreEnforced: the test server refuses a delete
// whose condition does not hold, as S3 does and gofakes3 does not, or the
// tests above would pass without the condition.
func TestS3ConditionalDeletesAreEnforced(t *testing.T) {
	fx := newS3Fixture(t, s3test.Options{})
	fx.srv.RequireFake(t)
	fx.Put(t, "a", []byte("a"))
	c := fx.srv.Client()
	ctx := context.Background()
	key := fx.prefix + "a"

	out, err := c.DeleteObjects(ctx, &awss3.DeleteObjectsInput{
		Bucket: aws.String(fx.srv.Bucket()),
		Delete: &types.Delete{Objects: []types.ObjectIdentifier{
			{Key: aws.String(key), ETag: aws.String(`"0123456789abcdef0123456789abcdef"`)},
			{Key: aws.String(fx.prefix + "missing"), ETag: aws.String(`"0123456789abcdef0123456789abcdef"`)},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	for _, e := range out.Errors {
		codes[aws.ToString(e.Key)] = aws.ToString(e.Code)
	}
	if codes[key] != "PreconditionFailed" || codes[fx.prefix+"missing"] != "NoSuchKey" {
		t.Errorf("DeleteObjects with wrong ETags: errors %v, want PreconditionFailed and NoSuchKey", codes)
	}
	_, err = c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(fx.srv.Bucket()), Key: aws.String(key), IfMatch: aws.String(`"0123456789abcdef0123456789abcdef"`)})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "PreconditionFailed" {
		t.Errorf("DeleteObject with a wrong If-Match = %v, want PreconditionFailed", err)
	}
	if !fx.Exists(t, "a") {
		t.Fatal("a conditional delete whose condition failed deleted the object")
	}
	head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(fx.srv.Bucket()), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(fx.srv.Bucket()), Key: aws.String(key), IfMatch: head.ETag}); err != nil {
		t.Errorf("DeleteObject with the right If-Match: %v", err)
	}
	if fx.Exists(t, "a") {
		t.Error("a conditional delete whose condition held left the object")
	}
}

// TestS3CopyWithAnotherETag: the copy's ETag is the source's only for an
// object uploaded in one part, so the delete on it fails (412) for the
// very object copied when it was uploaded in parts. A HEAD then tells an
// older object of the copy's size (deleted, on the ETag the HEAD gave)
// from a new upload (left in place).
func TestS3CopyWithAnotherETag(t *testing.T) {
	const path = "v/movie.mp4"
	old := time.Now().Add(-time.Hour)
	tests := []struct {
		name string
		// modified is the Last-Modified of the original.
		modified time.Time
		// before runs at the request op, before the server answers it.
		op     string
		before func(fx *s3Fixture) error
		want   string // content left at path, "" for none
	}{
		{name: "the object copied", modified: old},
		// The second of the copy itself: see TestOlderThan.
		{name: "dated after the copy", modified: time.Now().Add(time.Hour), want: "old content"},
		{
			// A multipart upload begun before the copy is dated from its
			// start: older than the copy, but not the copy's size.
			name: "an upload begun before the copy, of another size", modified: old,
			op: s3test.OpDeleteObjects, before: func(fx *s3Fixture) error {
				return fx.srv.TryPutModified(fx.prefix+path, []byte("a longer new upload"), old.Add(time.Minute))
			},
			want: "a longer new upload",
		},
		{
			name: "an upload after the look", modified: old,
			op: s3test.OpDeleteObject, before: func(fx *s3Fixture) error {
				return fx.srv.TryPut(context.Background(), fx.prefix+path, []byte("new upload"))
			},
			want: "new upload",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var armed atomic.Bool
			hooked := make(chan error, 1)
			var fx *s3Fixture
			st, fx, logs := newCondS3(t, s3test.Options{
				CopyETag: func(key, etag string) string {
					return strings.TrimSuffix(etag, `"`) + `-2"`
				},
				OnRequest: func(op, key string) {
					if tt.before != nil && op == tt.op && armed.CompareAndSwap(true, false) {
						hooked <- tt.before(fx)
					}
				},
			})
			fx.srv.PutModified(t, fx.prefix+path, []byte("old content"), tt.modified)
			armed.Store(true)
			r := st.Delete(context.Background(), []string{path})[0]
			if tt.before != nil {
				select {
				case err := <-hooked:
					if err != nil {
						t.Fatal(err)
					}
				default:
					t.Fatalf("Delete sent no %s", tt.op)
				}
			}
			wantTrashed(t, r)
			wantContentS3(t, fx, r.Trash, "old content")
			left := 0
			if tt.want == "" {
				if fx.Exists(t, path) {
					t.Errorf("%s, the object copied, is still there: %q", path, fx.Read(t, path))
				}
			} else {
				wantContentS3(t, fx, path, tt.want)
				left = 1
			}
			if n := logs.count("info", leftMsg); n != left {
				t.Errorf("%d info lines saying a new upload was left alone, want %d", n, left)
			}
			if n := fx.srv.Requests(s3test.OpDeleteObject); tt.name == "the object copied" && n != 1 {
				t.Errorf("%d DeleteObject requests, want 1 (on the ETag of the HEAD)", n)
			}
		})
	}
}

// TestS3ConditionalDeleteRefused: a server without conditional deletes
// refuses the condition (NotImplemented, or InvalidArgument naming it);
// the storage then deletes without one from then on, and says once that
// a new upload during trashing is then lost. A refusal that does not
// name the condition is an ordinary failure.
func TestS3ConditionalDeleteRefused(t *testing.T) {
	tests := []struct {
		name string
		opts func(*atomic.Bool) s3test.Options
		path string // "" for the batch a, b
		// requests: the delete requests of the first Delete, and of the
		// second (without conditions by then).
		op             string
		first, second  int
		fails          bool
		wantedWarnings int
	}{
		{
			name: "DeleteObjects NotImplemented",
			opts: func(*atomic.Bool) s3test.Options { return s3test.Options{RefuseConditions: "NotImplemented"} },
			op:   s3test.OpDeleteObjects, first: 2, second: 1, wantedWarnings: 1,
		},
		{
			name: "DeleteObjects InvalidArgument",
			opts: func(*atomic.Bool) s3test.Options { return s3test.Options{RefuseConditions: "InvalidArgument"} },
			op:   s3test.OpDeleteObjects, first: 2, second: 1, wantedWarnings: 1,
		},
		{
			name: "DeleteObject NotImplemented", path: "ctl\x01.jpg",
			opts: func(*atomic.Bool) s3test.Options { return s3test.Options{RefuseConditions: "NotImplemented"} },
			op:   s3test.OpDeleteObject, first: 2, second: 1, wantedWarnings: 1,
		},
		{
			name: "per key NotImplemented",
			opts: func(once *atomic.Bool) s3test.Options {
				return s3test.Options{KeyError: func(key string) (string, string) {
					if !strings.Contains(key, ".trash/") && once.CompareAndSwap(false, true) {
						return "NotImplemented", "A header you provided implies functionality that is not implemented"
					}
					return "", ""
				}}
			},
			op: s3test.OpDeleteObjects, first: 2, second: 1, wantedWarnings: 1,
		},
		{
			name: "InvalidArgument about something else",
			opts: func(on *atomic.Bool) s3test.Options {
				return s3test.Options{RequestError: func(op string) (int, string) {
					if op == s3test.OpDeleteObjects && on.CompareAndSwap(false, true) {
						return http.StatusBadRequest, "InvalidArgument"
					}
					return 0, ""
				}}
			},
			op: s3test.OpDeleteObjects, first: 1, second: 1, fails: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var flag atomic.Bool
			st, fx, logs := newCondS3(t, tt.opts(&flag))
			first, second := []string{"a", "b"}, []string{"c"}
			if tt.path != "" {
				first, second = []string{tt.path}, []string{tt.path + "2"}
			}
			for _, p := range append(append([]string(nil), first...), second...) {
				fx.Put(t, p, []byte(p))
			}
			for _, r := range st.Delete(context.Background(), first) {
				switch {
				case tt.fails && (r.Outcome != cdccleaner.Failed || !cdccleaner.IsPermanent(r.Err)):
					t.Errorf("Delete(%q) = %v (err %v), want failed for good", r.Path, r.Outcome, r.Err)
				case tt.fails:
				default:
					wantTrashed(t, r)
				}
				if got, want := fx.Exists(t, r.Path), tt.fails; got != want {
					t.Errorf("%s exists = %v, want %v", r.Path, got, want)
				}
			}
			if n := fx.srv.Requests(tt.op); n != tt.first {
				t.Errorf("%d %s requests for the first Delete, want %d", n, tt.op, tt.first)
			}
			for _, r := range st.Delete(context.Background(), second) {
				wantTrashed(t, r)
				if fx.Exists(t, r.Path) {
					t.Errorf("%s still exists", r.Path)
				}
			}
			if n := fx.srv.Requests(tt.op) - tt.first; n != tt.second {
				t.Errorf("%d %s requests for the second Delete, want %d", n, tt.op, tt.second)
			}
			if n := logs.count("warn", "deleted unconditionally"); n != tt.wantedWarnings {
				t.Errorf("%d warnings about unconditional deletes, want %d", n, tt.wantedWarnings)
			}
		})
	}
}
