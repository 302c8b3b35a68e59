package scan_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/scan"
)

// spellingReader serves non-canonical values from memory.
type spellingReader struct {
	mu     sync.Mutex
	values []string
	reads  int
	err    error
}

func (r *spellingReader) Read(_ context.Context, storage string, fn func(column, value string) error) error {
	r.mu.Lock()
	r.reads++
	values, err := slices.Clone(r.values), r.err
	r.mu.Unlock()
	if err != nil {
		return err
	}
	for _, v := range values {
		if err := fn("public.t.file", v); err != nil {
			return err
		}
	}
	return nil
}

func (r *spellingReader) add(v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.values = append(r.values, v)
}

func spellingFixture() (*store, *refs, *spellingReader) {
	st := &store{files: []cdccleaner.File{
		old("dot.jpg", 1), old("sub/dbl.jpg", 1), old("abs.jpg", 1), old("obj.jpg", 1),
		old("orphan.jpg", 1), old("ref.jpg", 1),
	}}
	return st, &refs{paths: map[string]bool{"ref.jpg": true}},
		&spellingReader{values: []string{"./dot.jpg", "sub//dbl.jpg", "/media/abs.jpg", "http://127.0.0.1:9000/bucket/media/obj.jpg"}}
}

// TestSpellingsKeepWhatTheyCouldName: the rows, in a dry run and
// with Delete: the same orphans, and only the true orphan deleted.
func TestSpellingsKeepWhatTheyCouldName(t *testing.T) {
	for _, del := range []bool{false, true} {
		st, r, sp := spellingFixture()
		cfg := config(st, r)
		cfg.Spellings, cfg.Delete = sp, del
		var orphans []string
		cfg.Report = func(o scan.Orphan) error { orphans = append(orphans, o.Path); return nil }
		stats, err := scan.Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(orphans, []string{"orphan.jpg"}) {
			t.Errorf("delete=%v: orphans %q, want only orphan.jpg", del, orphans)
		}
		wantDeleted := []string(nil)
		if del {
			wantDeleted = []string{"orphan.jpg"}
		}
		if !slices.Equal(st.deleted, wantDeleted) {
			t.Errorf("delete=%v: deleted %q, want %q", del, st.deleted, wantDeleted)
		}
		if stats.Referenced != 5 || stats.Spelled != 4 || stats.Spellings != 4 {
			t.Errorf("delete=%v: stats %+v", del, stats)
		}
	}
}

// TestSpellingsReadAgainBeforeDeletion: a non-canonical value written
// after the listing keeps its file: the values are read again before the
// deletion, and again before a batch once the last read is older than
// SpellingsMaxAge.
func TestSpellingsReadAgainBeforeDeletion(t *testing.T) {
	st, r, sp := spellingFixture()
	st.files = append(st.files, old("late1.jpg", 1), old("late2.jpg", 1), old("late3.jpg", 1))
	clock := now
	var mu sync.Mutex
	cfg := config(st, r)
	cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	cfg.Spellings, cfg.Delete, cfg.BatchSize = sp, true, 1
	cfg.AfterList = func(context.Context) error { sp.add("/late1.jpg"); return nil }
	outcomes := map[string]string{}
	cfg.Report = func(o scan.Orphan) error {
		outcomes[o.Path] = o.Outcome
		if o.Path == "orphan.jpg" {
			// Deleted first: a value written now is read before the
			// next batch because 30s have passed.
			sp.add("late2.jpg/")
			mu.Lock()
			clock = clock.Add(scan.DefaultSpellingsMaxAge)
			mu.Unlock()
		}
		return nil
	}
	stats, err := scan.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"orphan.jpg": "deleted", "late1.jpg": "referenced", "late2.jpg": "referenced", "late3.jpg": "deleted"}
	for p, o := range want {
		if outcomes[p] != o {
			t.Errorf("%s: %q, want %q (all: %v)", p, outcomes[p], o, outcomes)
		}
	}
	if stats.Rescued != 2 {
		t.Errorf("stats %+v", stats)
	}
	// Before the listing, before the deletion, once after 30s.
	if sp.reads != 3 {
		t.Errorf("%d reads of the values, want 3", sp.reads)
	}
}

// TestSpellingsErrorDeletesNothing: values that cannot be read (a column
// over the bounds, the database down) stop the scan before it deletes.
func TestSpellingsErrorDeletesNothing(t *testing.T) {
	st, r, sp := spellingFixture()
	sp.err = errors.New("public.t.file holds more than 100000 distinct values")
	cfg := config(st, r)
	cfg.Spellings, cfg.Delete = sp, true
	if _, err := scan.Run(context.Background(), cfg); !errors.Is(err, sp.err) {
		t.Errorf("Run = %v, want the reader's error", err)
	}
	if len(st.deleted) != 0 {
		t.Errorf("deleted %q", st.deleted)
	}
	// Failing only when read again before the deletion.
	st, r, sp = spellingFixture()
	cfg = config(st, r)
	cfg.Spellings, cfg.Delete = sp, true
	cfg.AfterList = func(context.Context) error { sp.err = errors.New("connection refused"); return nil }
	if _, err := scan.Run(context.Background(), cfg); err == nil {
		t.Error("Run succeeded although the values could not be read again")
	}
	if len(st.deleted) != 0 {
		t.Errorf("deleted %q", st.deleted)
	}
}
