package integration_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/local"
	"github.com/cdc-cleaner/cdc-cleaner/discover"
	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
)

// discoverBenchSchema builds 300 tables of 1,000,000 rows in all: two of
// 200,000 rows (read through TABLESAMPLE), 298 of about 2,000. Every
// table has a title, a slug, a JSON document and tags that name no file;
// every 20th an image column of paths of existing files, every 50th a
// jsonb column with paths at files[*].path; one in 30 of the others holds
// text with dots and slashes that names no file.
const discoverBenchSchema = `DO $$
DECLARE
	n int;
	extra text;
BEGIN
	FOR i IN 1..300 LOOP
		n := CASE WHEN i <= 2 THEN 200000 ELSE (600000 * (i - 2)) / 298 - (600000 * (i - 3)) / 298 END;
		extra := '';
		IF i % 20 = 0 THEN extra := extra || ', image varchar(100)'; END IF;
		IF i % 50 = 0 THEN extra := extra || ', attachments jsonb'; END IF;
		IF i % 30 = 1 THEN extra := extra || ', note text'; END IF;
		EXECUTE format('CREATE TABLE bench_%s (id int PRIMARY KEY, title text, slug varchar(80), created timestamptz DEFAULT now(), data jsonb, tags text[]%s)', i, extra);
		EXECUTE format('INSERT INTO bench_%s (id, title, slug, data, tags) SELECT g, ''Item number '' || g, ''item-'' || g, jsonb_build_object(''k'', g, ''label'', ''x'' || g), ARRAY[''red'', ''blue''] FROM generate_series(1, %s) AS g', i, n);
		IF i % 20 = 0 THEN EXECUTE format('UPDATE bench_%s SET image = ''photos/'' || (id %% 2000) || ''.jpg''', i); END IF;
		IF i % 50 = 0 THEN EXECUTE format('UPDATE bench_%s SET attachments = jsonb_build_object(''files'', jsonb_build_array(jsonb_build_object(''path'', ''photos/'' || ((id + 7) %% 2000) || ''.jpg'')))', i); END IF;
		IF i % 30 = 1 THEN EXECUTE format('UPDATE bench_%s SET note = ''v1.'' || id || '' see a/b''', i); END IF;
	END LOOP;
END $$`

// BenchmarkDiscover300Tables searches a database of 300 tables and
// 1,000,000 rows against a local storage of 2,000 files, in the process
// (search) and as the command (command: process start, connection,
// output), and reports the time of one search. Times are reported, never
// asserted:
//
//	go test -run '^$' -bench BenchmarkDiscover300Tables -benchtime 5x ./integration_test/
func BenchmarkDiscover300Tables(b *testing.B) {
	_, url := cluster.NewDatabase(b)
	root := b.TempDir()
	for i := range 2000 {
		p := filepath.Join(root, "photos", fmt.Sprintf("%d.jpg", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	pgtest.Exec(b, url, discoverBenchSchema)
	pgtest.Exec(b, url, "VACUUM ANALYZE")
	if got := pgtest.QueryString(b, url, `SELECT sum(n_live_tup)::text FROM pg_stat_user_tables WHERE relname LIKE 'bench\_%'`); got != "1000000" {
		b.Logf("pg_stat_user_tables counts %s live rows", got)
	}
	b.Logf("built 300 tables of 1,000,000 rows in %s", time.Since(start).Round(time.Millisecond))
	// 15 image columns and 6 attachments columns reference the files.
	const wantFound = 15 + 6

	b.Run("search", func(b *testing.B) {
		ctx := context.Background()
		poolCfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			b.Fatal(err)
		}
		poolCfg.MaxConns = discover.Workers
		pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		st, err := local.New(root, local.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		var res *discover.Result
		for b.Loop() {
			res, err = discover.Search(ctx, discover.Config{Source: discover.NewDB(pool), Storages: map[string]cdccleaner.Statter{"media": st}})
			if err != nil {
				b.Fatal(err)
			}
		}
		if res.Tables != 300 || len(res.Findings) != wantFound || len(res.Notes) != 0 {
			var sb strings.Builder
			res.WriteYAML(&sb)
			b.Fatalf("%d tables, %d findings (want 300, %d):\n%s", res.Tables, len(res.Findings), wantFound, sb.String())
		}
		b.ReportMetric(float64(res.Columns), "columns")
		b.ReportMetric(float64(res.Lookups), "lookups")
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/search")
	})

	b.Run("command", func(b *testing.B) {
		cfgPath := filepath.Join(b.TempDir(), "cdc-cleaner.yaml")
		cfg := fmt.Sprintf("postgres:\n  url: %s\nstorages:\n  media:\n    type: local\n    root: %s\nwatch:\n  - table: public.bench_20\n    columns: [image]\n    storage: media\n", url, root)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			b.Fatal(err)
		}
		bin := binary(b)
		var out []byte
		for b.Loop() {
			cmd := exec.Command(bin, "discover", "--config", cfgPath)
			cmd.Env = cleanEnv()
			cmd.Stderr = nil
			var err error
			if out, err = cmd.Output(); err != nil {
				b.Fatalf("discover: %v\n%s", err, out)
			}
		}
		if !strings.Contains(string(out), "(already watched)") || strings.Count(string(out), "NOT configured") != wantFound-1 {
			b.Fatalf("discover printed:\n%s", out)
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/search")
	})
}
