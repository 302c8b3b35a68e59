package integration_test

import (
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
)

// insertReport holds the figures of the INSERT-heavy workload: every new
// path is compared with the journal (promise 7), which is large.
type insertReport struct {
	n, journalRows int
	workload       time.Duration // the INSERTs, as the client saw them
	caughtUp       time.Duration // from the last commit until the slot confirmed it
	maxLag         int64         // bytes the slot lagged behind, at most, while inserting
	cpu            time.Duration // the cleaner's CPU time, from the first INSERT until caught up
	raw            time.Duration // pg_recvlogical drains the same INSERTs afterwards
}

// perfInserts runs n single-row INSERT transactions of new paths against
// a journal of 3n entries of other paths, and measures whether the
// cleaner keeps up: how far the slot lags, how soon it catches up after
// the last commit, and the cleaner's CPU time.
func perfInserts(t *testing.T, n int, r *report) {
	e := perfEnv(t)
	e.setupCleaner()
	raw := fmt.Sprintf("raw_%08x", crc32.ChecksumIEEE([]byte(e.db)))
	e.exec(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, raw)
	r.inserts.n, r.inserts.journalRows = n, 3*n
	e.exec(`INSERT INTO cdc_cleaner.journal (storage, path, event, location, commit_lsn)
		SELECT 'media', 'old/' || i || '.jpg', 'trashed', '.trash/old/' || i || '.jpg', '0/1' FROM generate_series(1, $1) i`, 3*n)
	e.exec(`ANALYZE cdc_cleaner.journal`)
	p := e.startProfiled("inserts")
	addr := p.httpAddr(t)
	p.waitLog(`"streaming"`, 30*time.Second)

	var wg sync.WaitGroup
	ctx, stop := context.WithCancel(context.Background())
	var maxLag int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			lag, err := strconv.ParseInt(pgtest.QueryString(t, e.url, `SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint::text FROM pg_replication_slots WHERE slot_name = $1`, e.slot), 10, 64)
			if err == nil && lag > maxLag {
				maxLag = lag
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	cpu0 := procCPU(t, p.cmd.Process.Pid)
	start := time.Now()
	e.exec(fmt.Sprintf(`DO $$ BEGIN FOR i IN 1..%d LOOP INSERT INTO gallery_photo (image) VALUES ('ins/' || i || '.jpg'); COMMIT; END LOOP; END $$`, n))
	end := time.Now()
	e.settle()
	caught := time.Now()
	cpu := procCPU(t, p.cmd.Process.Pid) - cpu0
	stop()
	wg.Wait()
	r.inserts.workload, r.inserts.caughtUp, r.inserts.maxLag, r.inserts.cpu = end.Sub(start), caught.Sub(end), maxLag, cpu

	if got := metric(t, addr, `cdc_cleaner_new_references_total{storage="media"}`); got != float64(n) {
		t.Errorf("cdc_cleaner_new_references_total = %v, want %d", got, n)
	}
	if got := metric(t, addr, `cdc_cleaner_restored_total{storage="media"}`); got != 0 {
		t.Errorf("cdc_cleaner_restored_total = %v, want 0", got)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	endpos := pgtest.QueryString(t, e.url, `SELECT pg_logical_emit_message(false, 'cdc-cleaner-bench', 'end')::text`)
	r.inserts.raw = rawDrain(t, e, raw, endpos)
	t.Logf("%d INSERTs in %v; caught up %v after the last commit; max lag %d bytes; cleaner CPU %v", n, r.inserts.workload, r.inserts.caughtUp, maxLag, cpu)
}

// procCPU returns the user plus system CPU time a running process used.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) may hold spaces; fields after ")" are
	// numbered from 3. utime and stime are fields 14 and 15, in clock
	// ticks (USER_HZ, 100 on Linux).
	rest := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, err1 := strconv.ParseInt(rest[11], 10, 64)
	stime, err2 := strconv.ParseInt(rest[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("parse /proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// writeInserts adds the INSERT-heavy rows to the report table.
func (ir insertReport) write(row func(what, result, target string)) {
	if ir.n == 0 {
		return
	}
	what := fmt.Sprintf("%s single-row INSERTs of new paths, journal of %s entries", thousands(ir.n), thousands(ir.journalRows))
	row(what+": the INSERTs took", secs(ir.workload), "")
	row(what+": slot caught up after the last commit", secs(ir.caughtUp), "")
	row(what+": most WAL the slot lagged behind while inserting", mb(float64(ir.maxLag)), "")
	row(what+": cleaner CPU until caught up", fmt.Sprintf("%s (%.1f µs per INSERT)", secs(ir.cpu), float64(ir.cpu.Microseconds())/float64(ir.n)), "")
	row(what+": pg_recvlogical drains the same INSERTs afterwards", secs(ir.raw), "")
}
