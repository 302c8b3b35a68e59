package s3_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/deletertest"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
)

func TestS3List(t *testing.T) {
	fx := newS3Fixture(t, s3test.Options{})
	const n = 2100 // three pages
	var keys []string
	for i := range n {
		keys = append(keys, fx.prefix+"many/"+strconv.Itoa(i))
	}
	fx.srv.PutKeys(t, keys, []byte("x"))
	fx.Put(t, "a b/été.jpg", []byte("hello"))
	fx.Put(t, ".trash/old.jpg", []byte("trashed"))
	fx.Put(t, "folder/", nil)
	fx.PutOutside(t, "outside.jpg")
	fx.PutOutside(t, "storeish.jpg")
	opts := fx.options()
	opts.TrashPrefix = ".trash/"
	st := newS3(t, opts)

	got := deletertest.ListAll(t, st)
	if len(got) != n+1 {
		t.Errorf("listed %d files, want %d", len(got), n+1)
	}
	f, ok := got["a b/été.jpg"]
	if !ok || f.Size != 5 || time.Since(f.ModTime) > time.Hour {
		t.Errorf("a b/été.jpg = %+v, %v", f, ok)
	}
	for _, p := range []string{".trash/old.jpg", "folder/", "outside.jpg", "../outside.jpg"} {
		if _, ok := got[p]; ok {
			t.Errorf("%q was listed", p)
		}
	}
}

func TestS3ListMissingBucket(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	opts := srv.Options(srv.Prefix())
	opts.Bucket = "cdc-missing-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	err := newS3(t, opts).List(context.Background(), func(cdccleaner.File) error { return nil })
	if err == nil || !strings.Contains(err.Error(), opts.Bucket) {
		t.Errorf("List of a missing bucket = %v, want an error naming it", err)
	}
}
