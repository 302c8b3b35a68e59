package cdccleaner

import "testing"

func TestRemovalIntentAndCorrection(t *testing.T) {
	if e, l := RemovalIntent("a/b.jpg", ".trash/"); e != JournalTrashed || l != ".trash/a/b.jpg" {
		t.Errorf("RemovalIntent with trash = %q %q", e, l)
	}
	for _, p := range []string{"a/b.jpg", ".trash/x.jpg"} {
		trash := ""
		if p == ".trash/x.jpg" {
			trash = ".trash/"
		}
		if e, l := RemovalIntent(p, trash); e != JournalDeleted || l != "" {
			t.Errorf("RemovalIntent(%q, %q) = %q %q, want deleted", p, trash, e, l)
		}
	}
	tests := []struct {
		name     string
		r        Result
		location string
		want     string // "" for no correction
	}{
		{"trashed as said", Result{Outcome: Deleted, Trash: ".trash/a"}, ".trash/a", ""},
		{"deleted as said", Result{Outcome: Deleted}, "", ""},
		{"found in the trash on a replay", Result{Outcome: Absent, Trash: ".trash/a"}, ".trash/a", ""},
		{"already absent", Result{Outcome: Absent}, ".trash/a", JournalAbsent},
		{"absent without trash", Result{Outcome: Absent}, "", JournalAbsent},
		{"deleted, not trashed", Result{Outcome: Deleted}, ".trash/a", JournalDeleted},
		{"failed", Result{Outcome: Failed}, ".trash/a", ""},
	}
	for _, tt := range tests {
		e, _, _, ok := RemovalCorrection(tt.r, tt.location)
		if got := map[bool]string{true: e, false: ""}[ok]; got != tt.want {
			t.Errorf("%s: correction %q, want %q", tt.name, got, tt.want)
		}
	}
}
