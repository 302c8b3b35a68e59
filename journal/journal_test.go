package journal

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
	"github.com/cdc-cleaner/cdc-cleaner/migrations"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m, &cluster)) }

// newDB creates a database with the cleaner's schema (unless bare) and
// returns its URL.
func newDB(t *testing.T, bare bool) string {
	t.Helper()
	_, url := cluster.NewDatabase(t)
	if !bare {
		pgtest.Exec(t, url, migrations.Schema)
	}
	return url
}

// newPool opens a pool on url, closed when the test ends. With role, every
// connection takes it (SET ROLE), so privileges are the role's. With
// statements, every statement the pool runs is counted there.
func newPool(t *testing.T, url, role string, statements *counter) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if role != "" {
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, "SET ROLE "+pgx.Identifier{role}.Sanitize())
			return err
		}
	}
	if statements != nil {
		cfg.ConnConfig.Tracer = statements
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// counter counts the statements that start with prefix.
type counter struct {
	prefix string
	n      atomic.Int64
}

func (c *counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.HasPrefix(strings.TrimSpace(d.SQL), c.prefix) {
		c.n.Add(1)
	}
	return ctx
}

func (c *counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// newRole creates a role without privileges, dropped when the test ends
// (before its database). It needs a superuser, which the throwaway cluster
// has; an external server's user may not be one.
func newRole(t *testing.T, url string) string {
	t.Helper()
	if pgtest.QueryString(t, url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") != "t" {
		t.Skip("the test server's user is not a superuser, which SET ROLE to a new role needs")
	}
	role := "r_" + pgtest.QueryString(t, url, "SELECT current_database()")
	id := pgx.Identifier{role}.Sanitize()
	pgtest.Exec(t, url, "CREATE ROLE "+id+" NOLOGIN")
	t.Cleanup(func() { pgtest.Exec(t, url, "DROP OWNED BY "+id+"; DROP ROLE "+id) })
	return role
}

func lsn(t *testing.T, s string) cdccleaner.LSN {
	t.Helper()
	l, err := cdccleaner.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func write(t *testing.T, j *Journal, entries ...cdccleaner.JournalEntry) {
	t.Helper()
	if err := j.Write(t.Context(), entries); err != nil {
		t.Fatal(err)
	}
}

// TestColumnsMatchSchema: the columns Write copies into (and
// CheckReadiness checks) are those the migration creates.
func TestColumnsMatchSchema(t *testing.T) {
	create := regexp.MustCompile(`(?s)CREATE TABLE IF NOT EXISTS cdc_cleaner\.journal \((.*?)\n\);`).FindStringSubmatch(migrations.Schema)
	if create == nil {
		t.Fatal("migrations.Schema does not create cdc_cleaner.journal")
	}
	defined := map[string]bool{}
	for _, line := range strings.Split(create[1], "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			defined[f[0]] = true
		}
	}
	for _, c := range columns {
		if !defined[c] {
			t.Errorf("column %q is not in the table migrations create", c)
		}
	}
}

// TestWriteLatest: Latest answers each path with its newest entry at or
// before the path's bound (among equal LSNs the one written last), leaves
// out paths it knows nothing of, and keeps storages apart; every field
// comes back as written, NUL bytes and long paths included.
func TestWriteLatest(t *testing.T) {
	t.Parallel()
	j := New(newPool(t, newDB(t, false), "", nil))
	commit := time.Date(2025, 3, 4, 5, 6, 7, 891000, time.UTC)
	long := strings.Repeat(fmt.Sprintf("%x/", time.Now().UnixNano()), 400) + "x.jpg" // ~7 KB: too large for a btree entry
	const nul = "a\x00b.jpg"
	trashed := cdccleaner.JournalEntry{Storage: "media", Path: "a.jpg", Event: cdccleaner.JournalTrashed, Location: ".trash/a.jpg",
		Source: "public.gallery_photo.image", Xid: 4_000_000_000, CommitLSN: lsn(t, "0/100"), CommitTime: commit, Detail: "vanished"}
	write(t, j,
		trashed,
		cdccleaner.JournalEntry{Storage: "media", Path: "a.jpg", Event: cdccleaner.JournalRestored, CommitLSN: lsn(t, "0/200")},
		cdccleaner.JournalEntry{Storage: "media", Path: "a.jpg", Event: cdccleaner.JournalTrashed, CommitLSN: lsn(t, "0/300")},
		cdccleaner.JournalEntry{Storage: "bucket", Path: "b.jpg", Event: cdccleaner.JournalDeleted, CommitLSN: lsn(t, "0/100")},
		cdccleaner.JournalEntry{Storage: "media", Path: nul, Event: cdccleaner.JournalDeleted, CommitLSN: lsn(t, "0/100"), Detail: "bad \xff byte"},
		cdccleaner.JournalEntry{Storage: "media", Path: long, Event: cdccleaner.JournalAbsent, CommitLSN: lsn(t, "0/100")},
		cdccleaner.JournalEntry{Storage: "media", Path: "max.jpg", Event: cdccleaner.JournalDangling, CommitLSN: lsn(t, "FFFFFFFF/FFFFFFFE")},
	)
	// Written later at the same LSN as the trashed entry of 0/300: the
	// answer among equals.
	write(t, j, cdccleaner.JournalEntry{Storage: "media", Path: "a.jpg", Event: cdccleaner.JournalOccupied, CommitLSN: lsn(t, "0/300")})

	type answer struct {
		event string
		lsn   string
	}
	tests := []struct {
		name    string
		storage string
		paths   []string
		upTo    []string
		want    map[string]answer
	}{
		{"before the first entry", "media", []string{"a.jpg"}, []string{"0/FF"}, map[string]answer{}},
		{"bound at an entry", "media", []string{"a.jpg"}, []string{"0/100"}, map[string]answer{"a.jpg": {"trashed", "0/100"}}},
		{"between entries", "media", []string{"a.jpg"}, []string{"0/2FF"}, map[string]answer{"a.jpg": {"restored", "0/200"}}},
		{"equal LSNs: the one written last", "media", []string{"a.jpg"}, []string{"0/300"}, map[string]answer{"a.jpg": {"occupied", "0/300"}}},
		{"highest bound", "media", []string{"a.jpg"}, []string{"FFFFFFFF/FFFFFFFF"}, map[string]answer{"a.jpg": {"occupied", "0/300"}}},
		{"unknown path", "media", []string{"nothing.jpg"}, []string{"1/0"}, map[string]answer{}},
		{"another storage's path", "media", []string{"b.jpg"}, []string{"1/0"}, map[string]answer{}},
		{"unknown storage", "elsewhere", []string{"a.jpg"}, []string{"1/0"}, map[string]answer{}},
		{"NUL in the path", "media", []string{nul}, []string{"1/0"}, map[string]answer{nul: {"deleted", "0/100"}}},
		{"long path", "media", []string{long}, []string{"1/0"}, map[string]answer{long: {"absent", "0/100"}}},
		{"LSN with the top bit set", "media", []string{"max.jpg"}, []string{"FFFFFFFF/FFFFFFFF"}, map[string]answer{"max.jpg": {"dangling", "FFFFFFFF/FFFFFFFE"}}},
		{"several paths, each its bound", "media",
			[]string{"a.jpg", "nothing.jpg", nul, "max.jpg", "b.jpg"}, []string{"0/200", "1/0", "0/FF", "FFFFFFFF/FFFFFFFF", "1/0"},
			map[string]answer{"a.jpg": {"restored", "0/200"}, "max.jpg": {"dangling", "FFFFFFFF/FFFFFFFE"}}},
		{"a path twice: its highest bound", "media", []string{"a.jpg", "a.jpg", "a.jpg"}, []string{"0/100", "0/200", "0/FF"},
			map[string]answer{"a.jpg": {"restored", "0/200"}}},
		{"no paths", "media", nil, nil, map[string]answer{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upTo := make([]cdccleaner.LSN, len(tt.upTo))
			for i, s := range tt.upTo {
				upTo[i] = lsn(t, s)
			}
			got, err := j.Latest(t.Context(), tt.storage, tt.paths, upTo)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatal("Latest returned a nil map")
			}
			for p, e := range got {
				w, ok := tt.want[p]
				if !ok {
					t.Errorf("%q: unexpected %s at %s", p, e.Event, e.CommitLSN)
					continue
				}
				if e.Event != w.event || e.CommitLSN.String() != w.lsn || e.Path != p || e.Storage != tt.storage {
					t.Errorf("%q: %s %s %q at %s, want %s %q at %s", p, e.Storage, e.Event, e.Path, e.CommitLSN, tt.storage, w.event, w.lsn)
				}
			}
			for p := range tt.want {
				if _, ok := got[p]; !ok {
					t.Errorf("%q: no entry, want %v", p, tt.want[p])
				}
			}
		})
	}

	t.Run("every field", func(t *testing.T) {
		got, err := j.Latest(t.Context(), "media", []string{"a.jpg", nul}, []cdccleaner.LSN{lsn(t, "0/100"), lsn(t, "0/100")})
		if err != nil {
			t.Fatal(err)
		}
		e := got["a.jpg"]
		if e.At.IsZero() || time.Since(e.At) > time.Hour || time.Since(e.At) < -time.Hour {
			t.Errorf("At = %v, want about now", e.At)
		}
		if !e.CommitTime.Equal(commit) {
			t.Errorf("CommitTime = %v, want %v", e.CommitTime, commit)
		}
		e.At, e.CommitTime = time.Time{}, time.Time{}
		want := trashed
		want.CommitTime = time.Time{}
		if e != want {
			t.Errorf("entry\n%+v\nwant\n%+v", e, want)
		}
		// Unknown fields stay zero.
		if n := got[nul]; n.Xid != 0 || !n.CommitTime.IsZero() || n.Location != "" || n.Detail != "bad \uFFFD byte" {
			t.Errorf("entry of %q: %+v", nul, n)
		}
	})

	// A removal replayed after a restart is journaled again with its own,
	// lower LSN, after a restore of a later LSN: it is what was done to the
	// file last, so it is the answer for every bound it is under; a
	// bound below it still sees only what came before.
	write(t, j, trashed)
	for bound, want := range map[string]string{"0/100": "trashed", "0/2FF": "trashed", "1/0": "trashed", "0/FF": ""} {
		got, err := j.Latest(t.Context(), "media", []string{"a.jpg"}, []cdccleaner.LSN{lsn(t, bound)})
		if err != nil {
			t.Fatal(err)
		}
		if e := got["a.jpg"]; e.Event != want {
			t.Errorf("after a replayed removal, bound %s: %q, want %q", bound, e.Event, want)
		}
	}
}

// TestWriteRefuses: an unknown event is refused before anything is
// written; Latest wants one bound per path.
func TestWriteRefuses(t *testing.T) {
	t.Parallel()
	url := newDB(t, false)
	j := New(newPool(t, url, "", nil))
	err := j.Write(t.Context(), []cdccleaner.JournalEntry{
		{Storage: "media", Path: "a.jpg", Event: cdccleaner.JournalDeleted, CommitLSN: 1},
		{Storage: "media", Path: "b.jpg", Event: "vanished", CommitLSN: 1},
	})
	if err == nil || !strings.Contains(err.Error(), `unknown event "vanished"`) {
		t.Errorf("Write with an unknown event: %v", err)
	}
	if n := pgtest.QueryString(t, url, "SELECT count(*) FROM cdc_cleaner.journal"); n != "0" {
		t.Errorf("%s entries written, want none", n)
	}
	if err := j.Write(t.Context(), nil); err != nil {
		t.Errorf("Write(nil): %v", err)
	}
	if _, err := j.Latest(t.Context(), "media", []string{"a.jpg", "b.jpg"}, []cdccleaner.LSN{1}); err == nil {
		t.Error("Latest with fewer bounds than paths: no error")
	}
}

// TestPlans: on a table of enough rows, analyzed, Latest reads the path
// index (never the whole table), the counts of status read the partial
// index, and pruning finds old rows through the BRIN index.
func TestPlans(t *testing.T) {
	t.Parallel()
	url := newDB(t, false)
	// 200 000 entries over 50 000 paths and two storages, written over a
	// day, a few of them re-references.
	pgtest.Exec(t, url, `INSERT INTO cdc_cleaner.journal (storage, path, event, commit_lsn, at)
		SELECT CASE WHEN i % 10 = 0 THEN 'bucket' ELSE 'media' END, 'photos/' || (i % 50000) || '.jpg',
			CASE WHEN i % 1000 = 0 THEN 'restored' WHEN i % 1000 = 1 THEN 'dangling' ELSE 'trashed' END,
			('0/0'::pg_lsn + i * 100), now() - interval '1 day' + i * interval '400 ms'
		FROM generate_series(1, 200000) i;
		ANALYZE cdc_cleaner.journal`)
	pool := newPool(t, url, "", nil)
	explain := func(t *testing.T, sql string, args ...any) string {
		t.Helper()
		rows, err := pool.Query(t.Context(), "EXPLAIN "+sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		t.Logf("plan:\n%s", plan)
		return plan
	}
	t.Run("Latest", func(t *testing.T) {
		var paths, bounds []string
		for i := range 100 {
			paths = append(paths, fmt.Sprintf("photos/%d.jpg", i*7))
			bounds = append(bounds, "0/1000000")
		}
		plan := explain(t, latestSQL, "media", paths, bounds)
		if !strings.Contains(plan, "journal_path_idx") || strings.Contains(plan, "Seq Scan on journal") {
			t.Errorf("Latest does not read journal_path_idx alone")
		}
		// And the answer is right on this table too.
		j := New(pool)
		got, err := j.Latest(t.Context(), "media", []string{"photos/1.jpg"}, []cdccleaner.LSN{lsn(t, "0/1000000")})
		if err != nil {
			t.Fatal(err)
		}
		// photos/1.jpg is written for i = 1, 50001, 100001, 150001
		// (LSN i*100 = 0x...); the newest up to 0x1000000 is i=150001.
		if e := got["photos/1.jpg"]; e.CommitLSN != 150001*100 {
			t.Errorf("Latest on the large table: %+v", e)
		}
	})
	t.Run("history", func(t *testing.T) {
		plan := explain(t, `SELECT `+selectColumns+` FROM `+Table+` j
			WHERE j.path = $1 AND ($2 = '' OR j.storage = $2)
			ORDER BY j.at DESC, j.id DESC`, "photos/1.jpg", "")
		if !strings.Contains(plan, "journal_path_idx") {
			t.Errorf("History does not read journal_path_idx")
		}
	})
	t.Run("counts", func(t *testing.T) {
		plan := explain(t, `SELECT count(*) FROM `+Table+` WHERE event NOT IN ('trashed', 'deleted', 'absent')`)
		if !strings.Contains(plan, "journal_reference_idx") {
			t.Errorf("the counts do not read journal_reference_idx")
		}
		c, err := Count(t.Context(), pool)
		if err != nil {
			t.Fatal(err)
		}
		if c.Rows != 200000 || !c.RowsEstimated || c.Restored != 200 || c.Dangling != 200 || c.Occupied != 0 {
			t.Errorf("Count = %+v, want an estimate of 200000 rows, 200 restored, 200 dangling", c)
		}
	})
	t.Run("prune", func(t *testing.T) {
		plan := explain(t, pruneSQL, "media", time.Now().Add(-23*time.Hour), 1000)
		if !strings.Contains(plan, "journal_at_idx") {
			t.Errorf("Prune does not read journal_at_idx")
		}
	})
}

// TestPrune deletes the old entries of one storage, at most batch per
// statement, and leaves the rest.
func TestPrune(t *testing.T) {
	t.Parallel()
	url := newDB(t, false)
	deletes := &counter{prefix: "DELETE"}
	j := New(newPool(t, url, "", deletes))
	var entries []cdccleaner.JournalEntry
	for i := range 10 {
		entries = append(entries, cdccleaner.JournalEntry{Storage: "media", Path: fmt.Sprintf("old/%d", i), Event: cdccleaner.JournalTrashed, CommitLSN: 1})
	}
	for i := range 3 {
		entries = append(entries, cdccleaner.JournalEntry{Storage: "bucket", Path: fmt.Sprintf("old/%d", i), Event: cdccleaner.JournalTrashed, CommitLSN: 1})
	}
	write(t, j, entries...)
	pgtest.Exec(t, url, `UPDATE cdc_cleaner.journal SET at = now() - interval '2 days'`)
	write(t, j,
		cdccleaner.JournalEntry{Storage: "media", Path: "new/0", Event: cdccleaner.JournalTrashed, CommitLSN: 2},
		cdccleaner.JournalEntry{Storage: "media", Path: "new/1", Event: cdccleaner.JournalRestored, CommitLSN: 3})

	before := time.Now().Add(-24 * time.Hour)
	if _, err := j.Prune(t.Context(), "media", before, 0); err == nil {
		t.Error("Prune with batch 0: no error")
	}
	n, err := j.Prune(t.Context(), "media", before, 3)
	if err != nil {
		t.Fatal(err)
	}
	if n != 10 {
		t.Errorf("Prune deleted %d entries, want 10", n)
	}
	if got := deletes.n.Load(); got != 4 {
		t.Errorf("Prune ran %d DELETE statements, want 4 (3+3+3+1)", got)
	}
	got := pgtest.QueryString(t, url, `SELECT string_agg(storage || ' ' || path, ', ' ORDER BY storage, path) FROM cdc_cleaner.journal`)
	if want := "bucket old/0, bucket old/1, bucket old/2, media new/0, media new/1"; got != want {
		t.Errorf("left %s, want %s", got, want)
	}
	n, err = j.Prune(t.Context(), "media", before, 3)
	if n != 0 || err != nil {
		t.Errorf("Prune again: %d, %v; want 0, nil", n, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := j.Prune(ctx, "bucket", before, 1); err == nil {
		t.Error("Prune with an ended context: no error")
	}
}

// TestHistory returns every entry of a path, newest first, of one storage
// or of all.
func TestHistory(t *testing.T) {
	t.Parallel()
	url := newDB(t, false)
	pool := newPool(t, url, "", nil)
	j := New(pool)
	const nul = "x\x00.jpg"
	// One Write is one transaction: its entries share at, and are
	// ordered by id.
	write(t, j,
		cdccleaner.JournalEntry{Storage: "media", Path: "x.jpg", Event: cdccleaner.JournalTrashed, CommitLSN: 10, Source: "public.photo.image"},
		cdccleaner.JournalEntry{Storage: "media", Path: "x.jpg", Event: cdccleaner.JournalRestored, CommitLSN: 20},
		cdccleaner.JournalEntry{Storage: "bucket", Path: "x.jpg", Event: cdccleaner.JournalDeleted, CommitLSN: 5},
		cdccleaner.JournalEntry{Storage: "media", Path: "y.jpg", Event: cdccleaner.JournalDeleted, CommitLSN: 5},
		cdccleaner.JournalEntry{Storage: "media", Path: nul, Event: cdccleaner.JournalAbsent, CommitLSN: 5},
	)
	// Written later with an older LSN: history orders by when it was
	// written.
	write(t, j, cdccleaner.JournalEntry{Storage: "media", Path: "x.jpg", Event: cdccleaner.JournalDangling, CommitLSN: 1, Detail: "gone"})
	tests := []struct {
		name, path, storage string
		want                []string // storage event lsn
	}{
		{"all storages", "x.jpg", "", []string{"media dangling 0/1", "bucket deleted 0/5", "media restored 0/14", "media trashed 0/A"}},
		{"one storage", "x.jpg", "media", []string{"media dangling 0/1", "media restored 0/14", "media trashed 0/A"}},
		{"other storage", "x.jpg", "bucket", []string{"bucket deleted 0/5"}},
		{"unknown path", "z.jpg", "", nil},
		{"unknown storage", "x.jpg", "elsewhere", nil},
		{"NUL in the path", nul, "", []string{"media absent 0/5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := History(t.Context(), pool, tt.path, tt.storage)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				got = append(got, fmt.Sprintf("%s %s %s", e.Storage, e.Event, e.CommitLSN))
				if e.At.IsZero() {
					t.Errorf("%+v: At is zero", e)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	// Without the table, History fails.
	if _, err := History(t.Context(), newPool(t, newDB(t, true), "", nil), "x.jpg", ""); err == nil {
		t.Error("History without the table: no error")
	}
}

// TestCount: exact counts on a small table, the estimate on a large one,
// and a missing table or a role that may not read it said so, not as an
// error.
func TestCount(t *testing.T) {
	t.Parallel()
	t.Run("no table", func(t *testing.T) {
		c, err := Count(t.Context(), newPool(t, newDB(t, true), "", nil))
		if err != nil || c != (Counts{}) {
			t.Errorf("Count without the table = %+v, %v; want zero, nil", c, err)
		}
	})
	url := newDB(t, false)
	pool := newPool(t, url, "", nil)
	var entries []cdccleaner.JournalEntry
	for event, n := range map[string]int{"trashed": 4, "deleted": 1, "absent": 1, "restored": 2, "occupied": 1, "dangling": 3} {
		for i := range n {
			entries = append(entries, cdccleaner.JournalEntry{Storage: "media", Path: fmt.Sprintf("%s/%d", event, i), Event: event, CommitLSN: 1})
		}
	}
	write(t, New(pool), entries...)
	c, err := Count(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if c.Bytes <= 0 {
		t.Errorf("Bytes = %d, want the table's size", c.Bytes)
	}
	c.Bytes = 0
	if want := (Counts{Exists: true, CanSelect: true, Rows: 12, Restored: 2, Occupied: 1, Dangling: 3}); c != want {
		t.Errorf("Count = %+v, want %+v", c, want)
	}

	t.Run("estimated", func(t *testing.T) {
		// As ANALYZE would leave it on a large table.
		pgtest.Exec(t, url, `UPDATE pg_class SET reltuples = 1234567 WHERE oid = 'cdc_cleaner.journal'::regclass`)
		c, err := Count(t.Context(), pool)
		if err != nil {
			t.Fatal(err)
		}
		if c.Rows != 1234567 || !c.RowsEstimated || c.Dangling != 3 {
			t.Errorf("Count = %+v, want 1234567 estimated rows", c)
		}
	})
	t.Run("no SELECT", func(t *testing.T) {
		role := newRole(t, url)
		pgtest.Exec(t, url, "GRANT USAGE ON SCHEMA cdc_cleaner TO "+pgx.Identifier{role}.Sanitize())
		c, err := Count(t.Context(), newPool(t, url, role, nil))
		if err != nil || c != (Counts{Exists: true}) {
			t.Errorf("Count as a role that may not read the table = %+v, %v; want only Exists", c, err)
		}
	})
}

// TestCheckReadiness reads what the role may do with the table, and a
// role with INSERT alone on Write's columns (no SELECT, no grant on the
// identity's sequence) can write.
func TestCheckReadiness(t *testing.T) {
	t.Parallel()
	r, err := CheckReadiness(t.Context(), newPool(t, newDB(t, true), "", nil))
	if err != nil || r != (Readiness{}) {
		t.Errorf("CheckReadiness without the table = %+v, %v; want zero, nil", r, err)
	}
	url := newDB(t, false)
	role := newRole(t, url)
	who := pgx.Identifier{role}.Sanitize()
	pool := newPool(t, url, role, nil)
	steps := []struct {
		name  string
		grant string
		want  Readiness
	}{
		{"nothing", "GRANT USAGE ON SCHEMA cdc_cleaner TO " + who, Readiness{Exists: true}},
		{"INSERT on some columns", "GRANT INSERT (storage, path, event, commit_lsn) ON cdc_cleaner.journal TO " + who, Readiness{Exists: true}},
		// COPY needs nothing more: no SELECT, no sequence.
		{"INSERT on Write's columns", "GRANT INSERT (" + strings.Join(columns, ", ") + ") ON cdc_cleaner.journal TO " + who, Readiness{Exists: true, CanInsert: true}},
		{"SELECT and DELETE", "GRANT SELECT, DELETE ON cdc_cleaner.journal TO " + who, Readiness{Exists: true, CanInsert: true, CanSelect: true, CanDelete: true}},
	}
	j := New(pool)
	entry := cdccleaner.JournalEntry{Storage: "media", Path: "a.jpg", Event: cdccleaner.JournalTrashed, CommitLSN: 1, Xid: 9, CommitTime: time.Now()}
	for _, s := range steps {
		pgtest.Exec(t, url, s.grant)
		r, err := CheckReadiness(t.Context(), pool)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if r != s.want {
			t.Errorf("%s: CheckReadiness = %+v, want %+v", s.name, r, s.want)
		}
		// Write works exactly when CheckReadiness says it does.
		err = j.Write(t.Context(), []cdccleaner.JournalEntry{entry})
		if r.CanInsert != (err == nil) {
			t.Errorf("%s: CanInsert %v, but Write: %v", s.name, r.CanInsert, err)
		}
	}
	pgtest.Exec(t, url, "REVOKE DELETE ON cdc_cleaner.journal FROM "+who)
	if r, err := CheckReadiness(t.Context(), pool); err != nil || r.CanDelete || !r.CanInsert {
		t.Errorf("after REVOKE DELETE: %+v, %v", r, err)
	}
}
