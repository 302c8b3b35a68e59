package provision

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{1024*1024 - 1, "1.0 MiB"}, // not "1024.0 KiB"
		{12_900_000, "12.3 MiB"},
		{1 << 30, "1.0 GiB"},
		{5 << 40, "5.0 TiB"},
		{-2048, "-2.0 KiB"},
	}
	for _, tt := range tests {
		if got := HumanBytes(tt.n); got != tt.want {
			t.Errorf("HumanBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestSlotStatusVerdict(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	healthy := func() *SlotStatus {
		return &SlotStatus{
			Slot: "cdc_cleaner", Exists: true, Plugin: "pgoutput", Database: "app", CurrentDatabase: "app",
			Active: true, ActivePID: 42, WALStatus: "reserved", RetainedBytes: n(100), PendingBytes: n(0),
			Publication: "cdc_cleaner", PublicationExists: true,
			FailedTableExists: true, FailedDeletions: n(0), FailedLast24h: n(0),
		}
	}
	tests := []struct {
		name         string
		edit         func(*SlotStatus)
		maxLag       int64
		wantProblems []string // substrings, one per problem
		wantWarnings []string // substrings, one per warning
	}{
		{"healthy", func(*SlotStatus) {}, 1 << 30, nil, nil},
		{"missing slot", func(s *SlotStatus) {
			*s = SlotStatus{Slot: "cdc_cleaner", Publication: "cdc_cleaner", PublicationExists: true}
		}, 1 << 30,
			[]string{`slot "cdc_cleaner" does not exist: run cdc-cleaner setup`}, nil},
		{"missing slot and publication", func(s *SlotStatus) { *s = SlotStatus{Slot: "s", Publication: "p"} }, 1 << 30,
			[]string{`slot "s" does not exist`, `publication "p" does not exist`}, nil},
		{"lost", func(s *SlotStatus) {
			s.WALStatus, s.Invalidated, s.InvalidationReason, s.Active, s.RetainedBytes = "lost", true, "wal_removed", false, nil
		}, 1 << 30, []string{"invalidated (wal_removed)"}, nil},
		{"other plugin", func(s *SlotStatus) { s.Plugin = "test_decoding" }, 1 << 30, []string{`plugin "test_decoding"`}, nil},
		{"other database", func(s *SlotStatus) { s.Database = "other" }, 1 << 30, []string{`belongs to database "other", not "app"`}, nil},
		{"inactive", func(s *SlotStatus) { s.Active, s.ActivePID = false, 0 }, 1 << 30, nil, []string{"no cleaner is streaming"}},
		{"lag above max_lag_warn", func(s *SlotStatus) { s.RetainedBytes = n(3 << 20) }, 1 << 20, nil,
			[]string{"retains 3.0 MiB of WAL, more than postgres.max_lag_warn (1.0 MiB)"}},
		{"lag equal to max_lag_warn", func(s *SlotStatus) { s.RetainedBytes = n(1 << 20) }, 1 << 20, nil, nil},
		{"unreserved", func(s *SlotStatus) { s.WALStatus = "unreserved" }, 1 << 30, nil, []string{"unreserved"}},
		{"recent failures", func(s *SlotStatus) { s.FailedDeletions, s.FailedLast24h = n(9), n(2) }, 1 << 30, nil,
			[]string{"2 deletions failed in the last 24 hours"}},
		{"old failures only", func(s *SlotStatus) { s.FailedDeletions = n(9) }, 1 << 30, nil, nil},
	}
	check := func(t *testing.T, kind string, got, want []string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s = %q, want %d matching %q", kind, got, len(want), want)
		}
		for i := range want {
			if !strings.Contains(got[i], want[i]) {
				t.Errorf("%s[%d] = %q, want it to contain %q", kind, i, got[i], want[i])
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := healthy()
			tt.edit(s)
			check(t, "Problems()", s.Problems(), tt.wantProblems)
			check(t, "Warnings()", s.Warnings(tt.maxLag), tt.wantWarnings)
		})
	}
}

// The JSON keys are what scripts read: each must be present, even when the
// slot does not exist.
func TestSlotStatusJSONKeys(t *testing.T) {
	b, err := json.Marshal(&SlotStatus{Slot: "s", Publication: "p"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{
		"slot", "exists", "plugin", "active", "active_pid", "confirmed_flush_lsn", "restart_lsn", "current_wal_lsn",
		"retained_bytes", "pending_bytes", "wal_status", "safe_wal_size", "invalidated", "publication",
		"publication_exists", "publication_tables", "failed_deletions_table_exists", "failed_deletions",
		"failed_deletions_24h", "recent_failures", "journal",
	} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON has no key %q: %s", k, b)
		}
	}
	j, _ := m["journal"].(map[string]any)
	for _, k := range []string{"table_exists", "rows", "rows_estimated", "bytes", "restored", "occupied", "dangling"} {
		if _, ok := j[k]; !ok {
			t.Errorf("JSON has no key journal.%s: %s", k, b)
		}
	}
}
