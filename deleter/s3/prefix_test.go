package s3_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/deletertest"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
)

func TestS3PrefixListContract(t *testing.T) {
	for _, pageSize := range []int32{0, 2} {
		t.Run(fmt.Sprintf("page=%d", pageSize), func(t *testing.T) {
			deletertest.RunPrefixListContract(t, "media/.trash/", func(t *testing.T) (cdccleaner.PrefixLister, deletertest.Fixture) {
				fx := newS3Fixture(t, s3test.Options{})
				opts := fx.options()
				opts.Trash, opts.TrashPrefix = true, "media/.trash/"
				st := newS3(t, opts)
				if pageSize > 0 {
					s3.SetListPageSize(st, pageSize)
				}
				return st, fx
			})
		})
	}
}

// TestS3ListPrefixPages: a listing of several pages lists every object
// below the prefix once, whatever lies around it in key order (a sibling
// sharing the prefix's start, the trash, keys outside the storage), with
// paths relative to the storage.
func TestS3ListPrefixPages(t *testing.T) {
	fx := newS3Fixture(t, s3test.Options{})
	var want, around []string
	for i := range 7 {
		want = append(want, fmt.Sprintf("media/va/k1/v%d", i))
		around = append(around, fmt.Sprintf("media/.trash/va/k1/v%d", i), fmt.Sprintf("media/va/k1x/v%d", i))
	}
	fx.srv.PutKeys(t, fx.keys(want...), []byte("v"))
	fx.srv.PutKeys(t, fx.keys(around...), []byte("a"))
	fx.PutOutside(t, "media/va/k1/outside")
	opts := fx.options()
	opts.TrashPrefix = "media/.trash/"
	st := newS3(t, opts)
	s3.SetListPageSize(st, 2)

	before := fx.srv.Requests(s3test.OpListObjects)
	got := deletertest.ListPrefixAll(t, st, "media/va/k1/")
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want) {
		t.Errorf("listed %q, want %q", keys, want)
	}
	if f := got["media/va/k1/v3"]; f.Size != 1 || f.ETag == "" || f.ModTime.IsZero() {
		t.Errorf("media/va/k1/v3 = %+v, want size 1, an ETag and a time", f)
	}
	if fx.srv.Fake() {
		if n := fx.srv.Requests(s3test.OpListObjects) - before; n != 4 {
			t.Errorf("%d ListObjects requests for 7 keys in pages of 2, want 4", n)
		}
	}
	// The trash's place of the prefix, over several pages too.
	trash := deletertest.ListPrefixAll(t, st, "media/.trash/va/k1/")
	if len(trash) != 7 {
		t.Errorf("listed %d trashed objects, want 7: %q", len(trash), slices.Sorted(maps.Keys(trash)))
	}
	// A prefix above the trash skips it, over several pages.
	all := deletertest.ListPrefixAll(t, st, "media/")
	if len(all) != 14 {
		t.Errorf("listed %d objects below media/, want 14 (the trash skipped): %q", len(all), slices.Sorted(maps.Keys(all)))
	}
}

// TestS3ListPrefixEmpty: a prefix with only folder markers below it (what
// consoles make for an empty "directory") lists nothing.
func TestS3ListPrefixEmpty(t *testing.T) {
	fx := newS3Fixture(t, s3test.Options{})
	fx.Put(t, "va/empty/", nil)
	fx.Put(t, "va/empty/sub/", nil)
	st := newS3(t, fx.options())
	if got := deletertest.ListPrefixAll(t, st, "va/empty/"); len(got) != 0 {
		t.Errorf("listed %q", slices.Sorted(maps.Keys(got)))
	}
}

// TestS3ListPrefixAsksOnlyInsideThePrefix: the server is asked for
// Prefix+prefix, never for anything wider.
func TestS3ListPrefixAsksOnlyInsideThePrefix(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	fx := newS3Fixture(t, s3test.Options{})
	fx.srv.RequireFake(t)
	fx.Put(t, "va/k1/a", []byte("a"))
	// A CA bundle from the environment needs the SDK's own HTTP client;
	// this one talks to a loopback server over plain HTTP.
	t.Setenv("AWS_CA_BUNDLE", "")
	opts := fx.options()
	opts.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodGet && r.URL.Query().Has("list-type") {
			mu.Lock()
			asked = append(asked, r.URL.Query().Get("prefix"))
			mu.Unlock()
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	st := newS3(t, opts)
	deletertest.ListPrefixAll(t, st, "va/k1/")
	st.ListPrefix(context.Background(), "../", func(cdccleaner.File) error { return nil })
	mu.Lock()
	defer mu.Unlock()
	if want := []string{fx.prefix + "va/k1/"}; !slices.Equal(asked, want) {
		t.Errorf("listed with prefixes %q, want %q", asked, want)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestS3ListPrefixErrors: a refused listing is an error naming the
// prefix, classified as for Delete.
func TestS3ListPrefixErrors(t *testing.T) {
	tests := []struct {
		status    int
		code      string
		permanent bool
	}{
		{http.StatusForbidden, "AccessDenied", true},
		{http.StatusNotFound, "NoSuchBucket", true},
		{http.StatusServiceUnavailable, "SlowDown", false},
		{http.StatusInternalServerError, "InternalError", false},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			fx := newS3Fixture(t, s3test.Options{RequestError: func(op string) (int, string) {
				if op == s3test.OpListObjects {
					return tt.status, tt.code
				}
				return 0, ""
			}})
			fx.Put(t, "va/k1/a", []byte("a"))
			opts := fx.options()
			opts.MaxAttempts = 1 // the classification, not the SDK's retries
			called := false
			err := newS3(t, opts).ListPrefix(context.Background(), "va/k1/", func(cdccleaner.File) error { called = true; return nil })
			if err == nil || called || cdccleaner.IsPermanent(err) != tt.permanent || !strings.Contains(err.Error(), fx.prefix+"va/k1/") {
				t.Fatalf("ListPrefix = %v (listed something: %v), want an error naming the prefix, permanent=%v", err, called, tt.permanent)
			}
			if tt.permanent && cdccleaner.Reason(err) != s3.Reason(tt.code) {
				t.Errorf("reason = %q, want %q", cdccleaner.Reason(err), s3.Reason(tt.code))
			}
			if e := s3Err(err); e == nil || e.Code != tt.code {
				t.Errorf("error %v does not carry %s", err, tt.code)
			}
		})
	}
}
