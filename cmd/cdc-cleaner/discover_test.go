package main

import (
	"strings"
	"testing"
	"time"

	"github.com/cdc-cleaner/cdc-cleaner/discover"
)

// TestDiscoverProgress: nothing in the first second, then at most a line
// a second, and the last table always.
func TestDiscoverProgress(t *testing.T) {
	var b strings.Builder
	p := &progress{w: &b, start: time.Now()}
	p.report(discover.Progress{Tables: 300, Done: 1})
	if b.Len() != 0 {
		t.Fatalf("progress within the first second: %q", b.String())
	}
	p.start = time.Now().Add(-2 * time.Second)
	p.report(discover.Progress{Tables: 300, Done: 120, Found: 2})
	p.report(discover.Progress{Tables: 300, Done: 121, Found: 2}) // within a second of the last
	p.report(discover.Progress{Tables: 300, Done: 300, Found: 3})
	want := "discover: 120/300 tables, 2 columns found\ndiscover: 300/300 tables, 3 columns found\n"
	if b.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", b.String(), want)
	}
}
