package replication

import (
	"testing"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

func TestTracker(t *testing.T) {
	type step struct {
		op   string // begin, emit, commit, settle, follow
		txn  uint64
		n    int
		lsn  cdccleaner.LSN
		want cdccleaner.LSN // Confirmed after the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"transaction without candidates confirms at commit", []step{
			{op: "begin", txn: 1, want: 100},
			{op: "commit", txn: 1, lsn: 200, want: 200},
		}},
		{"candidates hold the LSN until settled", []step{
			{op: "begin", txn: 1, want: 100},
			{op: "emit", txn: 1, n: 3, want: 100},
			{op: "commit", txn: 1, lsn: 200, want: 100},
			{op: "settle", txn: 1, n: 2, want: 100},
			{op: "settle", txn: 1, n: 1, want: 200},
		}},
		{"settled before commit waits for commit", []step{
			{op: "begin", txn: 1},
			{op: "emit", txn: 1, n: 1},
			{op: "settle", txn: 1, n: 1, want: 100},
			{op: "commit", txn: 1, lsn: 200, want: 200},
		}},
		{"a later transaction settled first does not jump the queue", []step{
			{op: "begin", txn: 1}, {op: "emit", txn: 1, n: 1}, {op: "commit", txn: 1, lsn: 200},
			{op: "begin", txn: 2}, {op: "emit", txn: 2, n: 1}, {op: "commit", txn: 2, lsn: 300},
			{op: "settle", txn: 2, n: 1, want: 100},
			{op: "settle", txn: 1, n: 1, want: 300},
		}},
		{"empty transactions behind a pending one fold into it", []step{
			{op: "begin", txn: 1}, {op: "emit", txn: 1, n: 1}, {op: "commit", txn: 1, lsn: 200},
			{op: "begin", txn: 2}, {op: "commit", txn: 2, lsn: 300},
			{op: "begin", txn: 3}, {op: "commit", txn: 3, lsn: 400, want: 100},
			{op: "settle", txn: 1, n: 1, want: 400},
		}},
		{"server WAL end is followed only when idle", []step{
			{op: "follow", lsn: 150, want: 150},
			{op: "begin", txn: 1}, {op: "emit", txn: 1, n: 1},
			{op: "follow", lsn: 500, want: 150},
			{op: "commit", txn: 1, lsn: 200, want: 150},
			{op: "follow", lsn: 500, want: 150},
			{op: "settle", txn: 1, n: 1, want: 200},
			{op: "follow", lsn: 500, want: 500},
			{op: "follow", lsn: 400, want: 500},
		}},
		{"open transaction without candidates blocks following", []step{
			{op: "begin", txn: 1},
			{op: "follow", lsn: 500, want: 100},
			{op: "commit", txn: 1, lsn: 200, want: 200},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(100)
			for i, s := range tt.steps {
				switch s.op {
				case "begin":
					tr.Begin(s.txn)
				case "emit":
					tr.Emitted(s.txn, s.n)
				case "commit":
					tr.Commit(s.txn, s.lsn)
				case "settle":
					tr.Settled(s.txn, s.n)
				case "follow":
					tr.FollowServer(s.lsn)
				}
				if s.want != 0 && tr.Confirmed() != s.want {
					t.Fatalf("step %d (%s txn %d): confirmed %d, want %d", i, s.op, s.txn, tr.Confirmed(), s.want)
				}
			}
		})
	}
}

// TestTrackerBoundedMemory: a million transactions without candidates behind
// one pending transaction cost one queue entry.
func TestTrackerBoundedMemory(t *testing.T) {
	tr := NewTracker(1)
	tr.Begin(1)
	tr.Emitted(1, 1)
	tr.Commit(1, 10)
	for i := uint64(2); i < 1_000_000; i++ {
		tr.Begin(i)
		tr.Commit(i, cdccleaner.LSN(10+i))
	}
	if n := tr.Pending(); n != 1 {
		t.Fatalf("pending = %d, want 1", n)
	}
	tr.Settled(1, 1)
	if got := tr.Confirmed(); got != 10+999_999 {
		t.Fatalf("confirmed = %d", got)
	}
}

func TestEncodeStatus(t *testing.T) {
	buf := encodeStatus(0x30, 0x20, 0x10, pgEpoch(), true)
	if len(buf) != 1+4+34 || buf[0] != 'd' || buf[5] != 'r' {
		t.Fatalf("frame: %x", buf)
	}
	if buf[13] != 0x30 || buf[21] != 0x20 || buf[29] != 0x10 || buf[len(buf)-1] != 1 {
		t.Fatalf("positions: %x", buf)
	}
}

func pgEpoch() (t time.Time) { return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }
