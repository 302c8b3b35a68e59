package integration_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/local"
	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
	"github.com/cdc-cleaner/cdc-cleaner/refcheck"
	"github.com/cdc-cleaner/cdc-cleaner/scan"
)

// BenchmarkScanLocal200k scans 200,000 local files (200 directories of
// 1,000) against a 200,000-row table whose rows reference half of them, and
// reports files per second and the peak memory of the scan: the Go heap
// and the Go runtime's memory from the OS (sampled every 5ms), and the
// process's peak resident set (VmHWM).
func BenchmarkScanLocal200k(b *testing.B) {
	const dirs, perDir = 200, 1000
	const n = dirs * perDir
	_, url := cluster.NewDatabase(b)
	root := b.TempDir()
	for d := range dirs {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range perDir {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d.jpg", f)), []byte("x"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Rows reference the even files and as many paths that have no file.
	pgtest.Exec(b, url, `CREATE TABLE photo (id serial PRIMARY KEY, image text NOT NULL);
		INSERT INTO photo (image)
		SELECT format('d%s/f%s.jpg', lpad((i / 1000)::text, 3, '0'), lpad((i % 1000)::text, 4, '0')) FROM generate_series(0, 199999, 2) AS i
		UNION ALL SELECT format('gone/%s.jpg', i) FROM generate_series(1, 100000) AS i;
		CREATE INDEX ON photo (image); ANALYZE photo;`)
	if got := pgtest.QueryString(b, url, "SELECT count(*)::text FROM photo"); got != strconv.Itoa(n) {
		b.Fatalf("%s rows", got)
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	refs, err := refcheck.New(pool, []cdccleaner.Column{{Storage: "media", Schema: "public", Table: "photo", Name: "image", Type: typeText}})
	if err != nil {
		b.Fatal(err)
	}
	st, err := local.New(root, local.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()

	runtime.GC()
	var peakHeap, peakSys uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peakHeap = max(peakHeap, m.HeapInuse)
			peakSys = max(peakSys, m.Sys)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	b.ResetTimer()
	var stats scan.Stats
	for b.Loop() {
		stats, err = scan.Run(ctx, scan.Config{Storage: "media", Files: st, Store: st, Refs: refs, MinAge: 0})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	if stats.Scanned != n || stats.Referenced != n/2 || stats.Orphaned != n/2 {
		b.Fatalf("stats %+v", stats)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(peakSys)/(1<<20), "peak-sys-MB")
	if hwm := vmHWM(); hwm > 0 {
		b.ReportMetric(hwm/(1<<20), "VmHWM-MB")
	}
	if peakSys > 100<<20 {
		b.Errorf("peak memory from the OS %d MB, want under 100 MB", peakSys>>20)
	}
}

// vmHWM returns this process's peak resident set size in bytes, or 0.
func vmHWM() float64 {
	hwm, _ := readHWM("/proc/self/status")
	return hwm
}

// readHWM reads VmHWM, the peak resident set size, from a
// /proc/PID/status file and returns it in bytes.
func readHWM(statusFile string) (float64, error) {
	b, err := os.ReadFile(statusFile)
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("%s: VmHWM %q: %w", statusFile, v, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("%s: no VmHWM", statusFile)
}
