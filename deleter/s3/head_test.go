package s3

import (
	"testing"
	"time"
)

// TestOlderThan: Last-Modified has one-second resolution and the copy's
// time has milliseconds, so an object is older than the copy only in an
// earlier second; one of the copy's own second counts as a new upload
// (left in place: an orphan at worst), and so does an unknown time.
func TestOlderThan(t *testing.T) {
	copyAt := time.Date(2026, 5, 1, 12, 0, 7, 300e6, time.UTC)
	tests := []struct {
		name     string
		modified time.Time
		copyAt   time.Time
		want     bool
	}{
		{"a second before", time.Date(2026, 5, 1, 12, 0, 6, 0, time.UTC), copyAt, true},
		{"an hour before", copyAt.Add(-time.Hour), copyAt, true},
		{"the copy's second, before it", time.Date(2026, 5, 1, 12, 0, 7, 0, time.UTC), copyAt, false},
		{"the copy's second, after it", time.Date(2026, 5, 1, 12, 0, 7, 900e6, time.UTC), copyAt, false},
		{"another zone, the same second", copyAt.In(time.FixedZone("X", 3600)).Truncate(time.Second), copyAt, false},
		{"later", copyAt.Add(time.Second), copyAt, false},
		{"unknown modified time", time.Time{}, copyAt, false},
		{"unknown copy time", copyAt.Add(-time.Hour), time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (objectHead{found: true, modified: tt.modified}).olderThan(tt.copyAt); got != tt.want {
				t.Errorf("olderThan = %v, want %v", got, tt.want)
			}
		})
	}
}
