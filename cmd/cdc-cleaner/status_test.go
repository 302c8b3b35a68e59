package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/ledger"
	"github.com/cdc-cleaner/cdc-cleaner/provision"
)

func TestStatusHelp(t *testing.T) {
	isolateEnv(t)
	r := runMain(t, "status", "--help")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0\n%s", r.code, r)
	}
	for _, want := range []string{"Usage: cdc-cleaner status [--config FILE] [--json]", "-json", "-config", "Exit codes: 0", "pending", "not as a number of files"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help does not contain %q\n%s", want, r)
		}
	}
	r = runMain(t, "help")
	if !strings.Contains(r.stdout, "  status ") {
		t.Errorf("command list does not show status\n%s", r)
	}
}

// status promises exit codes 0 and 1 only: bad flags, bad configuration and
// an unreachable database are all 1.
func TestStatusFailuresExitOne(t *testing.T) {
	isolateEnv(t)
	const kvPassword = "kv-s3cr3t-Pa55"
	missing := filepath.Join(t.TempDir(), "nonexistent.yaml")
	urlForm := writeConfig(t, closedPortURL, "")
	kvForm := writeConfig(t, "host=127.0.0.1 port=1 user=cleaner password="+kvPassword+" dbname=app connect_timeout=5", "")
	unknownKey := writeConfig(t, closedPortURL, "frobnicate: true\n")
	fromEnv := writeConfig(t, "", "")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in stderr
	}{
		{"unknown flag", []string{"--no-such-flag"}, nil, "no-such-flag"},
		{"unexpected argument", []string{"extra", "--config", urlForm}, nil, `unexpected argument "extra"`},
		{"missing config file", []string{"--config", missing}, nil, missing},
		{"unknown key", []string{"--config", unknownKey}, nil, "frobnicate"},
		{"unreachable, URL", []string{"--config", urlForm}, nil, "127.0.0.1"},
		{"unreachable, URL, --json", []string{"--json", "--config", urlForm}, nil, "127.0.0.1"},
		{"unreachable, key=value", []string{"--config", kvForm}, nil, "127.0.0.1"},
		{"unreachable, DATABASE_URL", []string{"--config", fromEnv}, map[string]string{"DATABASE_URL": closedPortURL}, "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			r := runMain(t, append([]string{"status"}, tt.args...)...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1\n%s", r.code, r)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr does not contain %q\n%s", tt.want, r)
			}
			if r.stdout != "" {
				t.Errorf("unexpected stdout (a script reading --json must get nothing):\n%s", r)
			}
			for _, secret := range []string{password, kvPassword} {
				if strings.Contains(r.stdout+r.stderr, secret) {
					t.Errorf("output contains the password %q\n%s", secret, r)
				}
			}
		})
	}
}

func TestPrintStatus(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	cfg := &config.Config{Postgres: config.Postgres{URL: closedPortURL}}
	base := func() *provision.SlotStatus {
		return &provision.SlotStatus{
			Slot: "cdc_cleaner", Exists: true, Plugin: "pgoutput", Database: "app", CurrentDatabase: "app",
			ConfirmedFlushLSN: "0/1A2B3C8", RestartLSN: "0/1A2B390", CurrentWALLSN: "0/2000000",
			RetainedBytes: n(12_900_000), PendingBytes: n(0), WALStatus: "reserved",
			Publication: "cdc_cleaner", PublicationExists: true, PublicationTables: []string{"public.gallery_photo"},
			FailedTableExists: true, FailedDeletions: n(3), FailedLast24h: n(1),
			RecentFailures: []ledger.FailedDeletion{
				{Storage: "media", Path: "../x\n", Reason: "rejected_path", RecordedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)},
			},
			Journal: provision.JournalStatus{TableExists: true, Rows: n(1234), Bytes: n(90_112), Restored: n(2), Occupied: n(1), Dangling: n(3)},
		}
	}
	tests := []struct {
		name   string
		edit   func(*provision.SlotStatus)
		maxLag int64
		want   []string
		not    []string
	}{
		{"inactive", func(*provision.SlotStatus) {}, 1 << 30, []string{
			"slot                 \"cdc_cleaner\" (plugin pgoutput, database app)\n",
			"state                inactive (no cleaner is streaming)\n",
			"confirmed_flush_lsn  0/1A2B3C8\n",
			"retained WAL         12.3 MiB (12900000 bytes)",
			"pending WAL          0 B (0 bytes)",
			"safe_wal_size        unlimited",
			`publication          "cdc_cleaner": public.gallery_photo`,
			"failed deletions     3 in total, 1 in the last 24 hours; newest:\n",
			`  2025-01-02T03:04:05Z  media  "../x\n"  rejected_path`,
			"hint: no cleaner is streaming",
			"hint: 1 deletion failed in the last 24 hours",
			"journal              1234 entries, 88.0 KiB; restored 2, occupied 1 (a new upload won), dangling 3\n",
			"postgres://cleaner:xxxxx@127.0.0.1:1/app",
		}, []string{"problem:", "retains 12.3 MiB"}},
		{"active with lag", func(s *provision.SlotStatus) {
			s.Active, s.ActivePID, s.ActiveApplication, s.ActiveClientAddr = true, 4242, "cdc-cleaner", "127.0.0.1"
		}, 1 << 20, []string{
			"state                active: PID 4242 (the server process streaming the slot, for cdc-cleaner from 127.0.0.1)\n",
			"hint: the slot retains 12.3 MiB of WAL, more than postgres.max_lag_warn (1.0 MiB)",
		}, []string{"inactive", "no cleaner is streaming"}},
		{"missing", func(s *provision.SlotStatus) {
			*s = provision.SlotStatus{Slot: "cdc_cleaner", Publication: "cdc_cleaner", FailedNote: "table cdc_cleaner.failed_deletions does not exist: run cdc-cleaner setup"}
		}, 1 << 30, []string{
			`slot                 "cdc_cleaner" does not exist`,
			`publication          "cdc_cleaner" does not exist`,
			"failed deletions     unknown: table cdc_cleaner.failed_deletions does not exist",
			`problem: replication slot "cdc_cleaner" does not exist: run cdc-cleaner setup`,
		}, []string{"confirmed_flush_lsn", "hint:"}},
		{"lost", func(s *provision.SlotStatus) {
			s.WALStatus, s.Invalidated, s.InvalidationReason, s.RestartLSN, s.RetainedBytes = "lost", true, "wal_removed", "", nil
		}, 1 << 30, []string{
			"wal_status           lost (invalidated: wal_removed)",
			"journal              1234 entries",
			"restart_lsn          none",
			"retained WAL         unknown",
			"problem: replication slot \"cdc_cleaner\" is invalidated",
		}, []string{"safe_wal_size", "hint: no cleaner"}},
	}
	tests = append(tests, []struct {
		name   string
		edit   func(*provision.SlotStatus)
		maxLag int64
		want   []string
		not    []string
	}{
		{"journal estimated", func(s *provision.SlotStatus) {
			s.Journal.Rows, s.Journal.RowsEstimated, s.Journal.Bytes = n(2_500_000), true, n(700<<20)
		}, 1 << 30, []string{
			"journal              about 2500000 entries (estimated), 700.0 MiB; restored 2, occupied 1 (a new upload won), dangling 3\n",
		}, nil},
		{"journal missing", func(s *provision.SlotStatus) {
			s.Journal = provision.JournalStatus{Note: "table cdc_cleaner.journal does not exist: run cdc-cleaner setup (or apply migrations/)"}
		}, 1 << 30, []string{
			"journal              unknown: table cdc_cleaner.journal does not exist: run cdc-cleaner setup",
		}, []string{"problem:", "restored"}},
		{"journal not readable", func(s *provision.SlotStatus) {
			s.Journal = provision.JournalStatus{TableExists: true, Note: "current user may not SELECT from cdc_cleaner.journal: GRANT SELECT ON cdc_cleaner.journal TO ..."}
		}, 1 << 30, []string{
			"journal              unknown: current user may not SELECT from cdc_cleaner.journal",
		}, []string{"problem:", "restored"}},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := base()
			tt.edit(st)
			var b bytes.Buffer
			printStatus(&b, cfg, statusJSON{SlotStatus: st, Problems: st.Problems(), Warnings: st.Warnings(tt.maxLag)})
			out := b.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not contain %q:\n%s", w, out)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(out, w) {
					t.Errorf("output contains %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, password) {
				t.Errorf("output contains the password:\n%s", out)
			}
		})
	}
}

// TestStatusJSONJournal: status --json carries the journal under
// "journal", beside the keys it had before.
func TestStatusJSONJournal(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	st := &provision.SlotStatus{Slot: "cdc_cleaner", Publication: "cdc_cleaner",
		Journal: provision.JournalStatus{TableExists: true, Rows: n(150_000), RowsEstimated: true, Bytes: n(1 << 20), Restored: n(2), Occupied: n(0), Dangling: n(1)}}
	b, err := json.Marshal(statusJSON{SlotStatus: st, Problems: st.Problems(), Warnings: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"table_exists": true, "rows": 150000.0, "rows_estimated": true, "bytes": float64(1 << 20), "restored": 2.0, "occupied": 0.0, "dangling": 1.0}
	j, ok := m["journal"].(map[string]any)
	if !ok {
		t.Fatalf("no journal object: %s", b)
	}
	for k, v := range want {
		if j[k] != v {
			t.Errorf("journal.%s = %#v, want %#v", k, j[k], v)
		}
	}
	for _, k := range []string{"slot", "failed_deletions", "healthy", "problems", "warnings"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no key %q beside journal: %s", k, b)
		}
	}
}
