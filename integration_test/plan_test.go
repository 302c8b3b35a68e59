package integration_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRunQueriesNeverParallel: run's queries (the reference check of a
// batch, journal writes, visibility checks) are small and many. On a table
// without statistics the planner gives the reference check a parallel
// plan, which forks two worker processes per batch: make bench's
// big-transaction drain took 3.1 s with them and 2.2 s without. Every plan
// of the cleaner's sessions is logged (auto_explain) and none may gather
// from workers.
func TestRunQueriesNeverParallel(t *testing.T) {
	if cluster.External() {
		t.Skip("reads the server log of the throwaway cluster")
	}
	const n = 100_000
	e := newEnv(t, envOptions{schema: photoSchema + `;
		ALTER TABLE gallery_photo SET (autovacuum_enabled = false);`, watch: photoWatch, logLevel: "info"})
	e.exec(fmt.Sprintf(`INSERT INTO gallery_photo (image) SELECT 'p/' || lpad(i::text, 6, '0') || '.jpg' FROM generate_series(1, %d) AS i`, n))
	e.exec(`ANALYZE gallery_photo`)
	// Which plan the planner picks depends on statistics (make bench's
	// backlog left none fresh); a database whose settings make parallel
	// plans cheap gets them for every query that may have one.
	for _, set := range []string{"parallel_setup_cost = 0", "parallel_tuple_cost = 0", "min_parallel_table_scan_size = 0", "min_parallel_index_scan_size = 0"} {
		e.exec(fmt.Sprintf(`ALTER DATABASE %s SET %s`, e.db, set))
	}
	e.exec(fmt.Sprintf(`ALTER DATABASE %s SET session_preload_libraries = 'auto_explain'`, e.db))
	e.exec(fmt.Sprintf(`ALTER DATABASE %s SET auto_explain.log_min_duration = 0`, e.db))
	p := e.start()
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`DELETE FROM gallery_photo`)
	e.settle()
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	// A parallel plan the test's own session gets: the claim that
	// the cleaner avoids one is empty unless the planner offers it.
	var plan strings.Builder
	conn := e.conn()
	paths := make([]string, 500)
	for i := range paths {
		paths[i] = fmt.Sprintf("p/%06d.jpg", i*37+1)
	}
	rows, err := conn.Query(context.Background(), `EXPLAIN SELECT image::text FROM gallery_photo WHERE image = ANY($1::text[])
		UNION ALL SELECT thumbnail::text FROM gallery_photo WHERE thumbnail = ANY($1::text[])`, paths)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(l + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	if !strings.Contains(plan.String(), "Gather") {
		t.Fatalf("the planner offers no parallel plan for a reference check here, so the test shows nothing:\n%.2000s", plan.String())
	}

	plans := cleanerPlans(t, e.db)
	if len(plans) == 0 {
		t.Fatalf("no plan of the cleaner's sessions in %s", cluster.LogFile())
	}
	checks := 0
	for _, pl := range plans {
		if strings.Contains(pl, "gallery_photo") {
			checks++
		}
		if strings.Contains(pl, "Gather") {
			t.Errorf("a query of the cleaner ran in parallel:\n%.3000s", pl)
		}
	}
	if checks == 0 {
		t.Fatalf("none of the %d plans of the cleaner's sessions is a reference check of gallery_photo", len(plans))
	}
	t.Logf("%d plans of the cleaner's sessions, %d of them reference checks, none parallel", len(plans), checks)
}

// cleanerPlans returns the plans auto_explain logged for the sessions of
// run (application cdc-cleaner) in database db: each is the LOG line and
// the unprefixed lines after it.
func cleanerPlans(t *testing.T, db string) []string {
	t.Helper()
	b, err := os.ReadFile(cluster.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	var plans []string
	var cur *strings.Builder
	mine := "@" + db + " cdc-cleaner: LOG:  duration:"
	for _, l := range strings.Split(string(b), "\n") {
		prefixed := len(l) > 4 && l[:2] == "20" // log_line_prefix starts with %m
		switch {
		case prefixed && strings.Contains(l, mine) && strings.Contains(l, "plan:"):
			if cur != nil {
				plans = append(plans, cur.String())
			}
			cur = &strings.Builder{}
			cur.WriteString(l + "\n")
		case prefixed:
			if cur != nil {
				plans = append(plans, cur.String())
				cur = nil
			}
		case cur != nil:
			cur.WriteString(l + "\n")
		}
	}
	if cur != nil {
		plans = append(plans, cur.String())
	}
	return plans
}
