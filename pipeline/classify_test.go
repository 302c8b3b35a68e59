package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"testing"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// TestClassify: what a storage answered decides each path's fate; a
// storage that breaks its contract never gets a path settled.
func TestClassify(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	denied := fmt.Errorf("unlink a.jpg: %w", fs.ErrPermission)
	transient := errors.New("connection reset")
	rejected := cdccleaner.Permanent(cdccleaner.ReasonRejectedPath, errors.New("bad"))
	res := func(path string, o cdccleaner.Outcome, err error) cdccleaner.Result {
		return cdccleaner.Result{Path: path, Outcome: o, Err: err}
	}
	type want struct {
		deleted, absent, failed, failedReasons, retry, denied []string
		firstErr                                              string
	}
	tests := []struct {
		name        string
		asked       []string
		results     []cdccleaner.Result
		deniedSince map[string]time.Time
		want        want
	}{
		{name: "deleted and absent settle",
			asked:   []string{"a", "b"},
			results: []cdccleaner.Result{res("a", cdccleaner.Deleted, nil), res("b", cdccleaner.Absent, nil)},
			want:    want{deleted: []string{"a"}, absent: []string{"b"}}},
		{name: "a permanent error fails the path",
			asked:   []string{"a"},
			results: []cdccleaner.Result{res("a", cdccleaner.Failed, rejected)},
			want:    want{failed: []string{"a"}, failedReasons: []string{cdccleaner.ReasonRejectedPath}}},
		{name: "a transient error is retried",
			asked:   []string{"a", "b"},
			results: []cdccleaner.Result{res("a", cdccleaner.Failed, transient), res("b", cdccleaner.Deleted, nil)},
			want:    want{deleted: []string{"b"}, retry: []string{"a"}, firstErr: "connection reset"}},
		{name: "a first permission refusal is retried and noted",
			asked:   []string{"a"},
			results: []cdccleaner.Result{res("a", cdccleaner.Failed, denied)},
			want:    want{retry: []string{"a"}, denied: []string{"a"}, firstErr: "unlink a.jpg: permission denied"}},
		{name: "a permission refusal within the patience is retried",
			asked:       []string{"a"},
			results:     []cdccleaner.Result{res("a", cdccleaner.Failed, denied)},
			deniedSince: map[string]time.Time{"a": now.Add(-time.Minute)},
			want:        want{retry: []string{"a"}, firstErr: "unlink a.jpg: permission denied"}},
		{name: "a permission refusal past the patience fails the path",
			asked:       []string{"a"},
			results:     []cdccleaner.Result{res("a", cdccleaner.Failed, denied)},
			deniedSince: map[string]time.Time{"a": now.Add(-time.Hour)},
			want:        want{failed: []string{"a"}, failedReasons: []string{cdccleaner.ReasonPermissionDenied}}},
		{name: "a path without a result is retried",
			asked:   []string{"a", "b"},
			results: []cdccleaner.Result{res("a", cdccleaner.Deleted, nil)},
			want:    want{deleted: []string{"a"}, retry: []string{"b"}, firstErr: `storage "media" returned no result for "b"`}},
		{name: "a result for a path not asked is ignored",
			asked:   []string{"a"},
			results: []cdccleaner.Result{res("a", cdccleaner.Absent, nil), res("kept.jpg", cdccleaner.Deleted, nil)},
			want:    want{absent: []string{"a"}}},
		{name: "nothing asked",
			want: want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := classify("media", tt.asked, tt.results, tt.deniedSince, now, 30*time.Minute)
			var failed, reasons []string
			for _, f := range v.failed {
				failed = append(failed, f.path)
				reasons = append(reasons, cdccleaner.Reason(f.err))
			}
			firstErr := ""
			if v.firstErr != nil {
				firstErr = v.firstErr.Error()
			}
			got := want{deleted: v.deleted, absent: v.absent, failed: failed, failedReasons: reasons, retry: v.retry, denied: v.denied, firstErr: firstErr}
			for _, f := range []struct {
				name      string
				got, want []string
			}{
				{"deleted", got.deleted, tt.want.deleted}, {"absent", got.absent, tt.want.absent},
				{"failed", got.failed, tt.want.failed}, {"failed reasons", got.failedReasons, tt.want.failedReasons},
				{"retry", got.retry, tt.want.retry}, {"denied", got.denied, tt.want.denied},
			} {
				if !slices.Equal(f.got, f.want) {
					t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
				}
			}
			if got.firstErr != tt.want.firstErr {
				t.Errorf("firstErr = %q, want %q", got.firstErr, tt.want.firstErr)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(time.Microsecond, 4*time.Microsecond)
	var got []time.Duration
	for range 4 {
		got = append(got, b.Next())
		if !b.Wait(context.Background()) {
			t.Fatal("Wait returned false")
		}
	}
	if want := []time.Duration{1000, 2000, 4000, 4000}; !slices.Equal(got, want) {
		t.Errorf("delays %v, want %v", got, want)
	}
	if !b.Capped() {
		t.Error("not capped at max")
	}
	b.Reset()
	if b.Next() != time.Microsecond {
		t.Errorf("after Reset: %v", b.Next())
	}
	b.AtLeast(time.Millisecond)
	if b.Next() != time.Millisecond {
		t.Errorf("after AtLeast: %v", b.Next())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if newBackoff(time.Hour, time.Hour).Wait(ctx) {
		t.Error("Wait on an ended context returned true")
	}
}
