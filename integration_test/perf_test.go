package integration_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sys/unix"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
	"github.com/cdc-cleaner/cdc-cleaner/refcheck"
)

// The performance report. `go test ./...` runs it small (N = 10,000) to
// keep it working and checks only correctness; `make bench` runs it at full
// size and prints the table. Times are reported, never asserted.
var (
	perfN        = flag.Int("perf.n", 10_000, "rows and files of the drain benchmark (make bench: 100000)")
	perfBig      = flag.Int("perf.big", 0, "rows of the single-transaction DELETE whose peak memory is measured (default 10 × perf.n)")
	perfBigPairs = flag.Int("perf.bigpairs", 1, "alternating pg_recvlogical and cleaner drains of the perf.big-row DELETE (make bench: 3)")
	perfRate     = flag.Int("perf.rate", 500, "single-row transactions per second of the latency benchmark")
	perfLatTx    = flag.Int("perf.latency-tx", 0, "transactions of the latency benchmark (default perf.n / 10, at least 1,000)")
	perfReport   = flag.String("perf.report", "", "also write the report (Markdown) to `FILE`")
	perfPairs    = flag.Int("perf.pairs", 1, "alternating pg_recvlogical and cleaner drains of the same backlog; the report gives the median ratio (make bench: 5)")
	perfB        = flag.String("perf.b", "", "environment settings (`KEY=VALUE ...`, e.g. CDC_CLEANER_STORAGES_MEDIA_TRASH=false) of the cleaner in every second drain pair; the report gives the two medians apart")
	perfTrash    = flag.Bool("perf.trash", true, "trash on in the cleaner's storage (the default); false measures deleting at once")
	perfProfile  = flag.String("perf.cpuprofile", "", "write CPU profiles of the cleaner (drainN.pprof, bigtxN.pprof, bigN.pprof, latency.pprof) to `DIR`")
	perfRecord   = flag.String("perf.record", "", "record every cleaner drain run system-wide with Linux perf (perf record -a -g: the walsender, the backends and the kernel too) into `DIR`/NAME.perf.data")
)

// TestPerformance measures the cleaner against the limits the issue sets
// (drain ratio against pg_recvlogical, peak memory, commit-to-deletion
// latency, reference check cost, S3 throughput) and prints one table. Not
// parallel: the measurements need the machine to themselves.
func TestPerformance(t *testing.T) {
	if cluster.External() {
		t.Skip("the performance report needs the throwaway cluster (pg_recvlogical beside it, no other load)")
	}
	n := *perfN
	big := *perfBig
	if big <= 0 {
		big = 10 * n
	}
	latTx := *perfLatTx
	if latTx <= 0 {
		latTx = max(n/10, 1000)
	}
	r := &report{n: n, goVersion: runtime.Version(), cpu: cpuModel(), pgVersion: fmt.Sprintf("%d.%d", cluster.Version()/10000, cluster.Version()%10000)}
	r.noise = &drainSeries{what: fmt.Sprintf("%s noise UPDATE transactions + a %s-row DELETE", thousands(n), thousands(n)), target: 1.3, files: n}
	r.bigUpdate = &drainSeries{what: fmt.Sprintf("a %s-row UPDATE + a %s-row DELETE", thousands(n), thousands(n)), target: 1.2, files: n}
	r.bigDelete = &drainSeries{what: fmt.Sprintf("a %s-row DELETE", thousands(big)), target: 1.15, files: big}
	ok := t.Run("drain", func(t *testing.T) { perfDrain(t, n, r.noise) })
	ok = t.Run("big update", func(t *testing.T) { perfBigUpdate(t, n, r.bigUpdate) }) && ok
	ok = t.Run("big transaction", func(t *testing.T) { perfBigDelete(t, big, r.bigDelete) }) && ok
	ok = t.Run("latency", func(t *testing.T) { perfLatency(t, latTx, *perfRate, r) }) && ok
	ok = t.Run("reference check", func(t *testing.T) { perfRefcheck(t, 10*n, r) }) && ok
	ok = t.Run("s3", func(t *testing.T) { perfS3(t, max(n/5, 1000), r) }) && ok
	ok = t.Run("inserts", func(t *testing.T) { perfInserts(t, n, r) }) && ok
	if !ok {
		return
	}
	var out strings.Builder
	r.write(&out)
	fmt.Print("\n" + out.String())
	if *perfReport != "" {
		if err := os.WriteFile(*perfReport, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// report collects the figures of one run.
type report struct {
	n                         int
	noise, bigUpdate          *drainSeries
	bigDelete                 *drainSeries // its peak memory is the one with a target
	latTx, latRate            int
	achievedRate              float64
	p50, p90, p99, pMax       time.Duration
	refRows                   int
	refIndexed, refSeq        time.Duration // per candidate
	refBatchIdx, refBatchSeq  time.Duration // per batch of refBatch paths
	s3Objects                 int
	s3Time                    time.Duration
	inserts                   insertReport
	pgVersion, goVersion, cpu string
}

const refBatch = 500 // the pipeline's batch size

func (r *report) write(w io.Writer) {
	fmt.Fprintf(w, "cdc-cleaner performance report, %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "machine: %s, %d cores; %s; PostgreSQL %s (throwaway cluster, fsync off)\n", r.cpu, runtime.NumCPU(), r.goVersion, r.pgVersion)
	if *perfTrash {
		fmt.Fprintln(w, "the cleaner runs with its defaults: trash on (removed files are moved to .trash/), every removal journaled")
	} else {
		fmt.Fprintln(w, "the cleaner runs with trash: false (removed files are deleted at once), every removal journaled")
	}
	if pgtest.RaceEnabled() {
		fmt.Fprintln(w, "the race detector is on (go test -race): the cleaner runs several times slower, so times and targets mean nothing here; run make bench")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| measurement | result | target |")
	fmt.Fprintln(w, "| --- | --- | --- |")
	row := func(what, result, target string) { fmt.Fprintf(w, "| %s | %s | %s |\n", what, result, target) }
	r.noise.write(row, "drain ratio")
	r.bigUpdate.write(row, "big-transaction drain ratio")
	if d := r.bigDelete; d.files > 0 && len(d.drain) > 0 {
		d.write(row, "big-DELETE drain ratio")
		row(fmt.Sprintf("peak RSS of the cleaner, %s-row DELETE in one transaction", thousands(d.files)), mb(d.rss),
			verdict(d.files < 1_000_000 || d.rss < 64<<20, "< 64 MB at 1,000,000 rows"))
	}
	if r.latTx > 0 {
		row(fmt.Sprintf("commit to deletion, p50, %s single-row tx at %d/s (achieved %.0f/s)", thousands(r.latTx), r.latRate, r.achievedRate),
			ms(r.p50), verdict(r.p50 < 50*time.Millisecond, "< 50 ms"))
		row("commit to deletion, p90", ms(r.p90), "")
		row("commit to deletion, p99", ms(r.p99), verdict(r.p99 < 250*time.Millisecond, "< 250 ms"))
		row("commit to deletion, max", ms(r.pMax), "")
	}
	if r.refRows > 0 {
		row(fmt.Sprintf("reference check per candidate, indexed column, %s rows", thousands(r.refRows)),
			fmt.Sprintf("%.1f µs (%s per batch of %d)", float64(r.refIndexed.Nanoseconds())/1e3, ms(r.refBatchIdx), refBatch), "")
		row(fmt.Sprintf("reference check per candidate, no index, %s rows", thousands(r.refRows)),
			fmt.Sprintf("%.1f µs (%s per batch of %d)", float64(r.refSeq.Nanoseconds())/1e3, ms(r.refBatchSeq), refBatch), "")
	}
	if r.s3Objects > 0 {
		row(fmt.Sprintf("S3 deletes/s, batched, loopback gofakes3, %s objects, commit to last deleted", thousands(r.s3Objects)),
			thousands(int(float64(r.s3Objects)/r.s3Time.Seconds())), "")
	}
	r.inserts.write(row)
}

// write adds the rows of one drain series to the report: both drains,
// the ratio (A/B apart under -perf.b), CPU and peak memory.
func (d *drainSeries) write(row func(what, result, target string), ratioName string) {
	if d == nil || len(d.drain) == 0 {
		return
	}
	row(fmt.Sprintf("pg_recvlogical drains %s (%s)", d.what, runs(len(d.raw))), spread(d.raw)+fmt.Sprintf("; %.2f cores busy", median(d.busyRaw)), "")
	for _, v := range d.variants() {
		ratios := make([]float64, len(v.drain))
		for i := range v.drain {
			ratios[i] = v.drain[i].Seconds() / v.raw[i].Seconds()
		}
		ratio := median(ratios)
		row("cdc-cleaner run"+v.name+" drains the same, until every file is gone", spread(v.drain)+fmt.Sprintf("; %.2f cores busy, cleaner CPU %s", median(v.busy), spread(v.cpu)), "")
		row(fmt.Sprintf("%s%s (%s, each against the pg_recvlogical run beside it)", ratioName, v.name, runs(len(ratios))),
			fmt.Sprintf("%.2f%s", ratio, ratioRange(ratios)), verdict(ratio <= d.target, fmt.Sprintf("≤ %.2f", d.target)))
	}
	row(fmt.Sprintf("peak RSS of the cleaner, %s", d.what), mb(d.rss), "")
}

// drainVariant is the cleaner's drain runs under one set of settings, with
// the pg_recvlogical run of each one's pair.
type drainVariant struct {
	name       string
	drain, raw []time.Duration
	cpu        []time.Duration
	busy       []float64
}

// variants splits the pairs by -perf.b: all of them when it is not set,
// else the even pairs (defaults) and the odd ones (its settings).
func (d *drainSeries) variants() []drainVariant {
	if *perfB == "" {
		return []drainVariant{{drain: d.drain, raw: d.raw, cpu: d.cpu, busy: d.busyDrain}}
	}
	a := drainVariant{name: " (A: defaults)"}
	b := drainVariant{name: fmt.Sprintf(" (B: %s)", *perfB)}
	for i := range d.drain {
		v := &a
		if i%2 == 1 {
			v = &b
		}
		v.drain, v.raw = append(v.drain, d.drain[i]), append(v.raw, d.raw[i])
		v.cpu, v.busy = append(v.cpu, d.cpu[i]), append(v.busy, d.busyDrain[i])
	}
	return []drainVariant{a, b}
}

func runs(n int) string {
	if n == 1 {
		return "1 run"
	}
	return fmt.Sprintf("median of %d runs", n)
}

// median is the middle value of v (the mean of the two middle ones for an
// even count).
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread is the median of ds and, for several, their range.
func spread(ds []time.Duration) string {
	v := make([]float64, len(ds))
	for i, d := range ds {
		v[i] = d.Seconds()
	}
	out := fmt.Sprintf("%.2f s", median(v))
	if len(v) > 1 {
		out += fmt.Sprintf(" (%.2f–%.2f)", slices.Min(v), slices.Max(v))
	}
	return out
}

func ratioRange(v []float64) string {
	if len(v) < 2 {
		return ""
	}
	return fmt.Sprintf(" (%.2f–%.2f)", slices.Min(v), slices.Max(v))
}

func verdict(ok bool, target string) string {
	if ok {
		return target + ": met"
	}
	return target + ": **missed**"
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
func ms(d time.Duration) string   { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1e3) }
func mb(b float64) string         { return fmt.Sprintf("%.1f MB", b/(1<<20)) }

func thousands(v int) string {
	s := strconv.Itoa(v)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// perfEnv is a scenario with metrics on a loopback port and info logs (a
// debug line per deletion would measure the log pipe).
func perfEnv(t *testing.T) *env {
	return newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, noSetup: true, httpListen: "127.0.0.1:0", logLevel: "info", media: fmt.Sprintf("    trash: %t", *perfTrash)})
}

// putTree creates n empty files dir/DDD/NNNNNNN.jpg (10,000 a directory)
// and a row referencing each.
func putTree(t *testing.T, e *env, dir string, n int) {
	t.Helper()
	putFiles(t, e, dir, n)
	e.exec(fmt.Sprintf(`INSERT INTO gallery_photo (image)
		SELECT '%s/' || lpad((i / %d)::text, 3, '0') || '/' || lpad(i::text, 7, '0') || '.jpg' FROM generate_series(0, %d) AS i`, dir, treePerDir, n-1))
}

const treePerDir = 10_000

// putFiles creates the files of putTree, without rows.
func putFiles(t *testing.T, e *env, dir string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, runtime.NumCPU())
	for w := range runtime.NumCPU() {
		wg.Go(func() {
			for d := w; d*treePerDir < n; d += runtime.NumCPU() {
				sub := filepath.Join(e.root, dir, fmt.Sprintf("%03d", d))
				if err := os.MkdirAll(sub, 0o755); err != nil {
					errs <- err
					return
				}
				for i := d * treePerDir; i < min((d+1)*treePerDir, n); i++ {
					if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("%07d.jpg", i)), nil, 0o644); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func countTree(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// setupCleaner runs `cdc-cleaner setup`, which creates the slot.
func (e *env) setupCleaner() {
	e.t.Helper()
	if out, code := e.cli("setup"); code != 0 {
		e.t.Fatalf("setup exited %d:\n%s", code, out)
	}
}

// startProfiled starts the cleaner, with a CPU profile named name when
// -perf.cpuprofile is set.
func (e *env) startProfiled(name string) *proc {
	e.t.Helper()
	if *perfProfile == "" {
		return e.start()
	}
	if err := os.MkdirAll(*perfProfile, 0o755); err != nil {
		e.t.Fatal(err)
	}
	abs, err := filepath.Abs(filepath.Join(*perfProfile, name+".pprof"))
	if err != nil {
		e.t.Fatal(err)
	}
	return e.start("--cpuprofile", abs)
}

// waitDeleted polls the cleaner's metrics until it counted want deletions
// of storage media, and returns when it saw them. It polls every 20ms: a
// scrape costs the cleaner a little CPU.
func waitDeleted(t *testing.T, p *proc, addr string, want int, timeout time.Duration) time.Time {
	t.Helper()
	return waitMetric(t, p, addr, `cdc_cleaner_deleted_total{storage="media"}`, float64(want), timeout, 20*time.Millisecond)
}

// waitMetric polls the cleaner's metrics every interval until metric is
// at least want, and returns when it saw it.
func waitMetric(t *testing.T, p *proc, addr, metric string, want float64, timeout, every time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, body := get(t, "http://"+addr+"/metrics")
		now := time.Now()
		last := metricValue(body, metric)
		if last >= want {
			return now
		}
		if now.After(deadline) {
			t.Fatalf("%s was %v, below %v, after %s:\n%s", metric, last, want, timeout, tail(p.Logs(), 40))
		}
		select {
		case <-p.done:
			t.Fatalf("the cleaner exited (%v) with %s at %v, below %v:\n%s", p.err, metric, last, want, tail(p.Logs(), 40))
		case <-time.After(every):
		}
	}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// procHWM returns the peak resident set size of a running process in bytes.
func procHWM(t *testing.T, pid int) float64 {
	t.Helper()
	hwm, err := readHWM(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	return hwm
}

// rawDrain drains slot with pg_recvlogical into /dev/null, with the
// cleaner's options (pgoutput protocol 1, the publication, messages), until
// endpos, and returns how long it took.
func rawDrain(t *testing.T, e *env, slot, endpos string) time.Duration {
	t.Helper()
	tool, err := cluster.ClientTool("pg_recvlogical")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, "--dbname", e.url, "--slot", slot, "--start", "--no-loop",
		"--endpos", endpos, "--file", "/dev/null",
		"--option", "proto_version=1", "--option", "publication_names="+e.pub)
	if cluster.Version() >= 140000 {
		// As the cleaner asks; pgoutput knows the option from 14 on.
		cmd.Args = append(cmd.Args, "--option", "messages=true")
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		t.Fatalf("pg_recvlogical: %v\n%s", err, out)
	}
	if got := pgtest.QueryString(t, e.url, `SELECT (confirmed_flush_lsn >= $1::pg_lsn)::text FROM pg_replication_slots WHERE slot_name = $2`, endpos, slot); got != "true" {
		t.Fatalf("pg_recvlogical exited before reaching %s (slot %s confirmed_flush_lsn >= endpos: %s)\n%s", endpos, slot, got, out)
	}
	return d
}

// drainSeries is one backlog drained several times, by pg_recvlogical
// and by the cleaner in alternation, each run from a slot of its own set
// before the backlog, so that every run reads the same WAL.
type drainSeries struct {
	what   string  // the backlog, for the report
	target float64 // the ratio to meet
	files  int
	raw    []time.Duration
	drain  []time.Duration // one of each per pair, in order
	// cpu is the cleaner's own CPU time (user + system) per cleaner run;
	// busyRaw and busyDrain are the machine's busy cores, on average over
	// each run (the walsender, the backends and the cleaner together).
	cpu                []time.Duration
	busyRaw, busyDrain []float64
	// pgCPU is the CPU time of PostgreSQL's processes per cleaner run, by
	// kind: the walsender, the backends (the cleaner's queries), the rest.
	pgCPU []pgCPU
	// startup is how long each cleaner run took from its start to
	// streaming (cdc_cleaner_streaming 1, polled every 5ms).
	startup []time.Duration
	rss     float64 // bytes, the highest of the cleaner's runs
}

// drainBacklog sets up one backlog in e and drains it pairs times (see
// drainSeries). files are the n files of dir (putTree) the backlog
// deletes; workload writes the backlog after the slots are made; keep are
// the files that must stay.
func drainBacklog(t *testing.T, e *env, s *drainSeries, dir string, pairs int, workload func(), keep []string) {
	t.Helper()
	e.setupCleaner()
	pairs = max(pairs, 1)
	tag := crc32.ChecksumIEEE([]byte(e.db))
	raw, clean := make([]string, pairs), make([]string, pairs)
	for i := range pairs {
		raw[i], clean[i] = fmt.Sprintf("raw%d_%08x", i, tag), fmt.Sprintf("clean%d_%08x", i, tag)
		e.exec(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, raw[i])
		e.exec(`SELECT pg_copy_logical_replication_slot($1, $2)`, e.slot, clean[i])
		// Recorded as setup records its own slot, which run requires.
		e.exec(`INSERT INTO cdc_cleaner.slots (slot_name, publication) SELECT $2, publication FROM cdc_cleaner.slots WHERE slot_name = $1`, e.slot, clean[i])
	}
	workload()
	endpos := pgtest.QueryString(t, e.url, `SELECT pg_logical_emit_message(false, 'cdc-cleaner-bench', 'end')::text`)
	rawRun := func(i int) {
		busy := startBusy(t)
		s.raw = append(s.raw, rawDrain(t, e, raw[i], endpos))
		s.busyRaw = append(s.busyRaw, busy.cores(t))
	}
	for i := range pairs {
		if i%2 == 0 {
			rawRun(i)
			cleanerDrain(t, e, s, dir, clean[i], i, keep)
		} else {
			cleanerDrain(t, e, s, dir, clean[i], i, keep)
			rawRun(i)
		}
		t.Logf("%s, pair %d: pg_recvlogical %v (%.2f cores busy), cleaner %v (streaming after %v, %.2f cores busy, CPU: cleaner %v, %s), ratio %.2f",
			s.what, i+1, s.raw[i], s.busyRaw[i], s.drain[i], s.startup[i].Round(time.Millisecond), s.busyDrain[i], s.cpu[i], s.pgCPU[i], s.drain[i].Seconds()/s.raw[i].Seconds())
	}
	t.Logf("%s: peak RSS %s", s.what, mb(s.rss))
}

// perfDrain: n single-row UPDATE transactions that change no file column,
// then one DELETE of every file row (and of one of the two rows sharing a
// path, whose file stays).
func perfDrain(t *testing.T, n int, s *drainSeries) {
	e := perfEnv(t)
	putTree(t, e, "drain", n)
	e.put("kept/shared.jpg")
	e.exec(`INSERT INTO gallery_photo (image) VALUES ('kept/shared.jpg'), ('kept/shared.jpg')`)
	drainBacklog(t, e, s, "drain", *perfPairs, func() {
		e.exec(fmt.Sprintf(`DO $$ BEGIN FOR i IN 1..%d LOOP UPDATE gallery_photo SET title = 'noise ' || i WHERE id = i; COMMIT; END LOOP; END $$`, n))
		e.exec(`DELETE FROM gallery_photo WHERE image LIKE 'drain/%' OR id = (SELECT min(id) FROM gallery_photo WHERE image = 'kept/shared.jpg')`)
	}, []string{"kept/shared.jpg"})
}

// perfBigUpdate: one n-row UPDATE that changes no file column, then one
// n-row DELETE of files: two big transactions.
func perfBigUpdate(t *testing.T, n int, s *drainSeries) {
	e := perfEnv(t)
	putTree(t, e, "bigtx", n)
	drainBacklog(t, e, s, "bigtx", *perfPairs, func() {
		e.exec(`UPDATE gallery_photo SET title = 'noise ' || id`)
		e.exec(`DELETE FROM gallery_photo WHERE image LIKE 'bigtx/%'`)
	}, nil)
}

// perfBigDelete: one n-row DELETE of files, whose peak memory is measured.
func perfBigDelete(t *testing.T, n int, s *drainSeries) {
	e := perfEnv(t)
	putTree(t, e, "big", n)
	drainBacklog(t, e, s, "big", *perfBigPairs, func() {
		e.exec(`DELETE FROM gallery_photo WHERE image LIKE 'big/%'`)
	}, nil)
}

// cleanerDrain runs the cleaner on slot until it deleted the s.files files
// of dir, and records how long that took from its start. Before every run
// but the first the files are put back, the trash emptied and the journal
// truncated; the file system is synced.
func cleanerDrain(t *testing.T, e *env, s *drainSeries, dir, slot string, run int, keep []string) {
	t.Helper()
	n := s.files
	if run > 0 {
		putFiles(t, e, dir, n)
		if err := os.RemoveAll(filepath.Join(e.root, ".trash")); err != nil {
			t.Fatal(err)
		}
		e.exec(`TRUNCATE cdc_cleaner.journal`)
	}
	unix.Sync()
	saved := e.env
	e.env = append(slices.Clone(e.env), "CDC_CLEANER_POSTGRES_SLOT="+slot)
	if run%2 == 1 {
		e.env = append(e.env, strings.Fields(*perfB)...)
	}
	defer func() { e.env = saved }()
	stopRecord := perfRecordAll(t, fmt.Sprintf("%s%d", dir, run+1))
	busy := startBusy(t)
	pgBefore := postgresCPU()
	start := time.Now()
	p := e.startProfiled(fmt.Sprintf("%s%d", dir, run+1))
	addr := p.httpAddr(t)
	streaming := waitMetric(t, p, addr, "cdc_cleaner_streaming", 1, time.Minute, 5*time.Millisecond)
	s.startup = append(s.startup, streaming.Sub(start))
	done := waitDeleted(t, p, addr, n, 30*time.Minute)
	stopRecord()
	s.busyDrain = append(s.busyDrain, busy.cores(t))
	s.pgCPU = append(s.pgCPU, postgresCPU().since(pgBefore))
	s.drain = append(s.drain, done.Sub(start))
	s.cpu = append(s.cpu, procCPU(t, p.cmd.Process.Pid))
	s.rss = max(s.rss, procHWM(t, p.cmd.Process.Pid))
	pgtest.WaitSettled(t, e.url, slot, 60*time.Second)
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if left := countTree(t, filepath.Join(e.root, dir)); left != 0 {
		t.Fatalf("%d of %d files left", left, n)
	}
	e.expect(keep, nil)
}

// perfRecordAll starts `perf record -a -g` into -perf.record's directory
// when that is set, and returns what stops it.
func perfRecordAll(t *testing.T, name string) (stop func()) {
	t.Helper()
	if *perfRecord == "" {
		return func() {}
	}
	if err := os.MkdirAll(*perfRecord, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(*perfRecord, name+".perf.data")
	cmd := exec.Command("perf", "record", "-a", "-g", "-F", "999", "-o", out)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("perf record (-perf.record; apt-get install linux-perf): %v", err)
	}
	time.Sleep(300 * time.Millisecond) // let it start recording
	return func() {
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Logf("perf record: %v\n%s", err, log.String())
		}
	}
}

// busyMeter measures how many of the machine's cores were busy, on
// average, from its start (/proc/stat: all but idle and iowait).
type busyMeter struct {
	busy, total uint64
	start       time.Time
}

func startBusy(t *testing.T) busyMeter {
	t.Helper()
	busy, total := cpuTicks(t)
	return busyMeter{busy, total, time.Now()}
}

// cores is the average number of busy cores since the start.
func (b busyMeter) cores(t *testing.T) float64 {
	t.Helper()
	busy, total := cpuTicks(t)
	if total == b.total {
		return 0
	}
	return float64(busy-b.busy) / float64(total-b.total) * float64(runtime.NumCPU())
}

// cpuTicks reads the busy and total ticks of all cores from /proc/stat.
func cpuTicks(t *testing.T) (busy, total uint64) {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		t.Fatalf("/proc/stat starts %q", line)
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("/proc/stat: %q: %v", line, err)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}

// perfLatency runs tx single-row DELETE transactions at rate per second
// (open loop: each starts at its scheduled time, whatever the ones before
// did) and measures, per file, from the moment the client saw its COMMIT
// acknowledged to the moment inotify saw the file leave its path (unlinked,
// or moved to the trash, which is on by default).
func perfLatency(t *testing.T, tx, rate int, r *report) {
	e := perfEnv(t)
	e.put("lat/keep.jpg") // keeps the watched directory from being pruned
	files := make([]string, tx)
	for i := range tx {
		files[i] = fmt.Sprintf("%06d.jpg", i)
		if err := os.WriteFile(filepath.Join(e.root, "lat", files[i]), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.exec(fmt.Sprintf(`INSERT INTO gallery_photo (id, image) SELECT i, 'lat/' || lpad(i::text, 6, '0') || '.jpg' FROM generate_series(0, %d) AS i`, tx-1))
	e.setupCleaner()
	w := watchDeletes(t, filepath.Join(e.root, "lat"))
	p := e.startProfiled("latency")
	p.waitLog(`"streaming"`, 30*time.Second)

	const clients = 8
	conns := make([]*pgx.Conn, clients)
	for i := range conns {
		conns[i] = e.conn()
		// The throwaway cluster turns synchronous_commit off for speed; then
		// a commit reaches the walsender only when the WAL writer flushes
		// it (every wal_writer_delay, 200ms). Production's default is on.
		if _, err := conns[i].Exec(context.Background(), `SET synchronous_commit = on`); err != nil {
			t.Fatal(err)
		}
	}
	committed := make([]time.Time, tx)
	jobs := make(chan int, tx)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			for i := range jobs {
				if _, err := conns[c].Exec(context.Background(), `DELETE FROM gallery_photo WHERE id = $1`, i); err != nil {
					errs <- err
					return
				}
				committed[i] = time.Now()
			}
		})
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range tx {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	r.achievedRate = float64(tx) / time.Since(start).Seconds()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	e.settle()
	deleted := w.stop()
	if code := p.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	lat := make([]time.Duration, 0, tx)
	for i, name := range files {
		at, ok := deleted[name]
		if !ok {
			t.Fatalf("no deletion of lat/%s seen (%d of %d seen)", name, len(deleted), tx)
		}
		// The walsender may send the commit before the client reads the
		// acknowledgement: such a file was deleted "before" its commit.
		lat = append(lat, max(0, at.Sub(committed[i])))
	}
	e.expect([]string{"lat/keep.jpg"}, nil)
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	r.latTx, r.latRate = tx, rate
	r.p50, r.p90, r.p99, r.pMax = q(0.50), q(0.90), q(0.99), lat[len(lat)-1]
	t.Logf("%d transactions at %.0f/s: p50 %v p90 %v p99 %v max %v", tx, r.achievedRate, r.p50, r.p90, r.p99, r.pMax)
}

// deleteWatcher records when each file of one directory is unlinked.
type deleteWatcher struct {
	t    *testing.T
	f    *os.File
	mu   sync.Mutex
	seen map[string]time.Time
	done chan struct{}
	err  error
}

func watchDeletes(t *testing.T, dir string) *deleteWatcher {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify_init1: %v", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_DELETE|unix.IN_MOVED_FROM); err != nil {
		unix.Close(fd)
		t.Fatalf("inotify_add_watch %s: %v", dir, err)
	}
	w := &deleteWatcher{t: t, f: os.NewFile(uintptr(fd), "inotify"), seen: map[string]time.Time{}, done: make(chan struct{})}
	go w.read()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *deleteWatcher) read() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		now := time.Now()
		if err != nil {
			if !strings.Contains(err.Error(), "closed") {
				w.err = err
			}
			return
		}
		w.mu.Lock()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			mask := uint32(buf[off+4]) | uint32(buf[off+5])<<8 | uint32(buf[off+6])<<16 | uint32(buf[off+7])<<24
			l := int(uint32(buf[off+12]) | uint32(buf[off+13])<<8 | uint32(buf[off+14])<<16 | uint32(buf[off+15])<<24)
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+l]), "\x00")
			if mask&unix.IN_Q_OVERFLOW != 0 {
				w.err = fmt.Errorf("inotify queue overflowed")
			}
			if mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 {
				w.seen[name] = now
			}
			off += unix.SizeofInotifyEvent + l
		}
		w.mu.Unlock()
	}
}

// stop ends the watch and returns what it saw.
func (w *deleteWatcher) stop() map[string]time.Time {
	w.f.Close()
	<-w.done
	if w.err != nil {
		w.t.Fatalf("watch deletions: %v", w.err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen
}

// perfRefcheck times the reference check the pipeline runs per batch of
// 500 paths (half referenced) on a table of rows rows, without and with an
// index on the column, and checks its answers.
func perfRefcheck(t *testing.T, rows int, r *report) {
	_, url := cluster.NewDatabase(t)
	pgtest.Exec(t, url, fmt.Sprintf(`CREATE TABLE ref_photo (id bigserial PRIMARY KEY, image text NOT NULL);
		INSERT INTO ref_photo (image) SELECT 'r/' || lpad(i::text, 7, '0') || '.jpg' FROM generate_series(0, %d) AS i`, rows-1))
	pgtest.Exec(t, url, `VACUUM ANALYZE ref_photo`)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	refs, err := refcheck.New(pool, []cdccleaner.Column{{Storage: "media", Schema: "public", Table: "ref_photo", Name: "image", Type: typeText}})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	measure := func(minTime time.Duration, maxBatches int) time.Duration {
		var total time.Duration
		batches := 0
		for batches < maxBatches && (batches < 3 || total < minTime) {
			paths := make([]string, refBatch)
			want := map[string]bool{}
			for i := range paths {
				if i%2 == 0 {
					paths[i] = fmt.Sprintf("r/%07d.jpg", rng.IntN(rows))
					want[paths[i]] = true
				} else {
					paths[i] = fmt.Sprintf("r/absent/%07d.jpg", rng.IntN(rows))
				}
			}
			start := time.Now()
			got, err := refs.Referenced(ctx, "media", paths)
			total += time.Since(start)
			batches++
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d paths referenced, want %d", len(got), len(want))
			}
			for p := range want {
				if !got[p] {
					t.Fatalf("%s is referenced; the check missed it", p)
				}
			}
		}
		return total / time.Duration(batches)
	}
	r.refRows = rows
	r.refBatchSeq = measure(3*time.Second, 20)
	pgtest.Exec(t, url, `CREATE INDEX ON ref_photo (image); ANALYZE ref_photo`)
	measure(0, 5) // warm the index
	r.refBatchIdx = measure(3*time.Second, 2000)
	r.refSeq, r.refIndexed = r.refBatchSeq/refBatch, r.refBatchIdx/refBatch
	t.Logf("per batch of %d: %v without index, %v with", refBatch, r.refBatchSeq, r.refBatchIdx)
}

// perfS3 deletes objects through the cleaner on the in-process S3 server.
// Not parallel: s3test.Start sets the AWS_* variables.
func perfS3(t *testing.T, n int, r *report) {
	e, srv, prefix := newS3Env(t, envOptions{schema: photoSchema, watch: photoWatch, noSetup: true, httpListen: "127.0.0.1:0", logLevel: "info"}, s3test.Options{})
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%ss3/%07d.jpg", prefix, i)
	}
	srv.PutKeys(t, keys, []byte("x"))
	e.exec(fmt.Sprintf(`INSERT INTO gallery_photo (image) SELECT 's3/' || lpad(i::text, 7, '0') || '.jpg' FROM generate_series(0, %d) AS i`, n-1))
	e.setupCleaner()
	p := e.start()
	addr := p.httpAddr(t)
	p.waitLog(`"streaming"`, 30*time.Second)
	e.exec(`DELETE FROM gallery_photo`)
	committed := time.Now()
	done := waitDeleted(t, p, addr, n, 10*time.Minute)
	r.s3Objects, r.s3Time = n, done.Sub(committed)
	e.settle()
	if left := srv.Keys(t, prefix+"s3/"); len(left) != 0 {
		t.Fatalf("%d of %d objects left", len(left), n)
	}
}

// pgCPU is CPU time of PostgreSQL's processes, by kind.
type pgCPU map[string]time.Duration

func (c pgCPU) String() string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(c)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %v", k, c[k].Round(10*time.Millisecond))
	}
	return b.String()
}

// pgProcs is the CPU time used so far by each PostgreSQL process.
type pgProcs map[int]pgProc

type pgProc struct {
	kind string
	cpu  time.Duration
}

// postgresCPU reads the CPU time of every PostgreSQL process of the
// machine: "walsender", "backend" (a client's), "server" (the rest). Only
// the throwaway cluster runs during make bench.
func postgresCPU() pgProcs {
	out := pgProcs{}
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.HasPrefix(cmd, []byte("postgres: ")) {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		kind := "server"
		switch {
		case bytes.Contains(cmd, []byte("walsender")):
			kind = "walsender"
		case bytes.Contains(cmd, []byte("(")) || bytes.Contains(cmd, []byte("[local]")):
			kind = "backend"
		}
		out[pid] = pgProc{kind, time.Duration(utime+stime) * 10 * time.Millisecond} // USER_HZ is 100
	}
	return out
}

// since is the CPU time used by kind since before, counting processes
// started since then whole.
func (now pgProcs) since(before pgProcs) pgCPU {
	c := pgCPU{}
	for pid, p := range now {
		c[p.kind] += p.cpu - before[pid].cpu
	}
	return c
}
