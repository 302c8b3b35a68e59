package discover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// The verdict: a column references a storage when at least MinShare of
// its sampled valid paths (values, array elements or JSON leaves that name
// a path at all) exist there, and at least MinPresent of them. A column of
// file names mostly exists (a few files go missing in any storage); a
// column of other text that names a file by chance does not reach half.
const (
	MinShare   = 0.5
	MinPresent = 2
)

// Bounds of one search: it reads at most ProbeValues + SampleValues values
// of a column and makes at most MaxLookups lookups, whatever the size of
// the database.
const (
	// ProbeValues is how many non-empty values of every candidate column
	// are read first; their plausible paths are looked up in every
	// storage, and only a column that names a file there is sampled more.
	ProbeValues = 5
	// SampleValues is how many values of such a column are read to judge
	// it.
	SampleValues = 20
	// MaxPaths is how many distinct paths of a column (at one JSON path)
	// are looked up to judge it.
	MaxPaths = 50
	// MaxNames is how many names of a value that is not a canonical path
	// (a URL, an absolute path) are looked up: its readings, shortest
	// first (cdccleaner.CanonicalNames).
	MaxNames = 12
	// MaxLookups bounds the lookups of one search, in all storages
	// together; the search stops, saying so, when they run out.
	MaxLookups = 50_000
	// Workers is how many tables are read at once (a database connection
	// each).
	Workers = 4
	// Concurrency is how many lookups run at once in one storage.
	Concurrency = 8
	// maxLookupErrors is how many lookups of one storage may fail (other
	// than with "does not exist") before the search stops: the storage
	// is not answering.
	maxLookupErrors = 10
)

// Candidate is a column of the database whose type can hold paths.
type Candidate struct {
	// Column names the column; its Type, TypeName, TypeOID and
	// Partitioned are filled from the catalog. Storage is empty.
	cdccleaner.Column
	// Rows is the planner's estimate of the table's rows (of all its
	// partitions, for a partitioned table).
	Rows float64
	// Unreadable is set when the role may not read the column: the
	// search reads nothing of it, and counts it as not searched.
	Unreadable bool
}

// Source is the database as the search reads it.
type Source interface {
	// Candidates lists the columns of the user tables whose type can hold
	// paths (cdccleaner.KindText, KindArray or KindJSON), grouped by
	// table; those the role may not read are listed with Unreadable set.
	Candidates(ctx context.Context) ([]Candidate, error)
	// Probe returns up to n non-empty values, in their text form and
	// drawn at random, of each of cols, columns of one table: out[i] are
	// the values of cols[i]. It reads the table once, not once a column.
	Probe(ctx context.Context, cols []Candidate, n int) ([][]string, error)
	// Sample returns up to n non-empty values of c, drawn at random.
	Sample(ctx context.Context, c Candidate, n int) ([]string, error)
}

// Config is what one search needs.
type Config struct {
	Source Source
	// Storages are the configured storages by name.
	Storages map[string]cdccleaner.Statter
	// Configured are the watched and protect columns
	// (config.Config.Columns), so that findings say which are known.
	Configured []cdccleaner.Column
	// Role names the role the Source reads as, for the note about the
	// columns it may not read.
	Role string
	// Workers is how many tables are read at once (default Workers).
	Workers int
	// Progress, when set, is called after every table, from the
	// goroutines that read them.
	Progress func(Progress)
}

// Progress is how far a search has come.
type Progress struct {
	Tables, Done int // tables to search, tables searched
	Found        int // findings so far
	Elapsed      time.Duration
}

// Finding is a column whose sampled paths exist in a storage.
type Finding struct {
	// Column is the column as sampled; Storage is the storage its paths
	// exist in, JSONPath where they sit in a json column (nil: in the
	// whole value).
	Column cdccleaner.Column
	// Paths is how many distinct valid paths the sample named, Present
	// how many of them exist in the storage. A path whose lookup failed
	// is in neither: it is unknown, not absent.
	Paths, Present int
	// Spelled counts the present paths that exist only under another
	// name than the value's: the column holds URLs or absolute paths
	// ("https://cdn/media/a.jpg" for a.jpg), which run compares exactly.
	Spelled int
	// Example is one such value, Named the name it was found under, and
	// Prefix what precedes that name in the values (the prefix met most),
	// when they share one: what strip_prefix would remove.
	Example, Named, Prefix string
	// OtherPaths are the other JSON paths whose leaves also exist there.
	OtherPaths []cdccleaner.JSONPath
	// Configured is the watch or protect column of the same name, if any.
	Configured *cdccleaner.Column
}

// Share is the share of the sampled paths that exist.
func (f Finding) Share() float64 {
	if f.Paths == 0 {
		return 0
	}
	return float64(f.Present) / float64(f.Paths)
}

// Known reports whether the reference check of the finding's storage sees
// the column: it is watched or protected for that storage.
func (f Finding) Known() bool {
	return f.Configured != nil && f.Configured.Storage == f.Column.Storage
}

// Result is what a search found.
type Result struct {
	// Storages are the storages searched, by name.
	Storages []string
	// Tables and Columns count the tables and candidate columns read.
	Tables, Columns int
	// Lookups counts the lookups made in the storages.
	Lookups int
	// Findings are the columns referencing a storage, by table, column
	// and storage.
	Findings []Finding
	// Unreadable counts the candidate columns the role may not read, and
	// the tables that hold them: the search did not see them.
	Unreadable struct{ Tables, Columns int }
	// Notes say what the search could not do: columns the role may not
	// read, tables it could not read, lookups that failed, a bound it
	// reached. A search with no note is complete.
	Notes   []string
	Elapsed time.Duration
}

// Complete reports whether the search read every candidate column it
// listed and had every lookup answered: when it did not, a column
// missing from its findings may still reference a storage (Notes say
// why).
func (r *Result) Complete() bool { return len(r.Notes) == 0 }

// Unconfigured returns the findings of columns that no watch or protect
// entry names: for each such column, the finding of the storage where
// most of its paths exist (a column is listed once in a configuration).
func (r *Result) Unconfigured() []Finding {
	var out []Finding
	index := map[string]int{}
	for _, f := range r.Findings {
		if f.Configured != nil {
			continue
		}
		k := columnKey(f.Column)
		if i, ok := index[k]; ok {
			if better(f, out[i]) {
				out[i] = f
			}
			continue
		}
		index[k] = len(out)
		out = append(out, f)
	}
	return out
}

// Misfiled returns the findings of columns configured for another
// storage: the reference check of the finding's storage does not see
// them, and a column can be listed only once.
func (r *Result) Misfiled() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Configured != nil && !f.Known() {
			out = append(out, f)
		}
	}
	return out
}

// better reports whether a is a stronger finding than b.
func better(a, b Finding) bool {
	if a.Present != b.Present {
		return a.Present > b.Present
	}
	if a.Share() != b.Share() {
		return a.Share() > b.Share()
	}
	return a.Column.Storage < b.Column.Storage
}

func sameColumn(a, b cdccleaner.Column) bool {
	return a.Schema == b.Schema && a.Table == b.Table && a.Name == b.Name
}

// skippable reports whether err, from reading one table, concerns that
// table only (a statement timeout, a value that cannot be read), so the
// search goes on without it; the connection's errors end the search.
func skippable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && !strings.HasPrefix(pgErr.Code, "08") && !strings.HasPrefix(pgErr.Code, "57P")
}

// absent reports whether a lookup's error means that no file has that
// name: it does not exist, or cannot (a file where a directory would be, a
// name too long).
func absent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) ||
		errors.Is(err, syscall.ENAMETOOLONG) || errors.Is(err, syscall.EILSEQ) || errors.Is(err, syscall.EINVAL)
}

// reachableProbe is a name no storage holds: looking it up checks that a
// storage answers before the search relies on its answers.
const reachableProbe = ".cdc-cleaner-discover-probe/absent"

// Search samples the candidate columns of cfg.Source against every
// storage of cfg.Storages. It fails when the database cannot be read or a
// storage does not answer; a table it cannot read, or a bound it reaches,
// is noted in the result.
func Search(ctx context.Context, cfg Config) (*Result, error) {
	start := time.Now()
	s := &search{cfg: cfg, cache: map[lookupKey]*lookupEntry{}, sems: map[string]chan struct{}{}, errs: map[string]int{}, firstErrs: map[string]error{}}
	res := &Result{}
	for name := range cfg.Storages {
		res.Storages = append(res.Storages, name)
		s.sems[name] = make(chan struct{}, Concurrency)
	}
	sort.Strings(res.Storages)
	s.storages = res.Storages
	for _, name := range res.Storages {
		if _, err := cfg.Storages[name].Stat(reachableProbe); err != nil && !absent(err) {
			return nil, fmt.Errorf("storage %q: %w", name, err)
		}
	}
	s.configured = map[string]*cdccleaner.Column{}
	for i := range cfg.Configured {
		c := &cfg.Configured[i]
		names := []string{c.Name}
		if c.Template != nil {
			names = c.Template.Columns() // each column a template reads is configured
		}
		for _, name := range names {
			k := columnKey(cdccleaner.Column{Schema: c.Schema, Table: c.Table, Name: name})
			if _, dup := s.configured[k]; !dup {
				s.configured[k] = c
			}
		}
	}
	listed, err := cfg.Source.Candidates(ctx)
	if err != nil {
		return nil, err
	}
	var cands []Candidate
	unreadable := map[string]bool{} // tables with a column the role may not read
	for _, c := range listed {
		if c.Unreadable {
			res.Unreadable.Columns++
			unreadable[c.Schema+"."+c.Table] = true
			continue
		}
		cands = append(cands, c)
	}
	if res.Unreadable.Tables = len(unreadable); res.Unreadable.Columns > 0 {
		role := "the role"
		if cfg.Role != "" {
			role = "role " + strconv.Quote(cfg.Role)
		}
		s.note("%s may not read %s of %s whose values could be paths, so the search did not look at them and is incomplete: run check or discover as a role that can read the application's tables (the owner's, or one granted SELECT on them)",
			role, plural(res.Unreadable.Columns, "column"), plural(res.Unreadable.Tables, "table"))
	}
	var tables [][]Candidate
	for i, c := range cands {
		if i == 0 || c.Schema != cands[i-1].Schema || c.Table != cands[i-1].Table {
			tables = append(tables, nil)
		}
		tables[len(tables)-1] = append(tables[len(tables)-1], c)
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = Workers
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	var done atomic.Int64
	perTable := make([][]Finding, len(tables))
	searched := make([]bool, len(tables))
	for range min(workers, max(len(tables), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				found, err := s.table(ctx, tables[i])
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					continue
				}
				perTable[i], searched[i] = found, true
				n := int(done.Add(1))
				s.found.Add(int64(len(found)))
				if cfg.Progress != nil {
					cfg.Progress(Progress{Tables: len(tables), Done: n, Found: int(s.found.Load()), Elapsed: time.Since(start)})
				}
			}
		}()
	}
feed:
	for i := range tables {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if errors.Is(firstErr, errBudget) {
		s.note("the search stopped after %d lookups (MaxLookups): %d of %d tables were searched", MaxLookups, done.Load(), len(tables))
		firstErr = nil
	}
	if firstErr != nil {
		return nil, firstErr
	}
	for i, t := range tables {
		if searched[i] {
			res.Tables++
			res.Columns += len(t)
		}
		res.Findings = append(res.Findings, perTable[i]...)
	}
	res.Lookups = int(s.lookups.Load())
	for _, name := range res.Storages {
		if n := s.errs[name]; n > 0 {
			s.note("%d lookups in storage %q failed (%v): those paths are unknown, and were left out of the shares", n, name, s.firstErrs[name])
		}
	}
	res.Notes = s.notes
	res.Elapsed = time.Since(start)
	return res, nil
}

func columnKey(c cdccleaner.Column) string { return c.Schema + "\x00" + c.Table + "\x00" + c.Name }

// search is the state of one Search, shared by its workers.
type search struct {
	cfg        Config
	storages   []string // names, sorted
	configured map[string]*cdccleaner.Column
	found      atomic.Int64
	lookups    atomic.Int64
	sems       map[string]chan struct{} // per storage: lookups in flight

	mu        sync.Mutex
	cache     map[lookupKey]*lookupEntry
	errs      map[string]int // per storage: failed lookups
	firstErrs map[string]error
	notes     []string
}

type lookupKey struct{ storage, name string }

// lookupEntry is one lookup, made once for every worker that needs it:
// found and failed are set before done is closed. A failed lookup (an
// error other than "does not exist", or one never made because the
// search was ending) says nothing of the file.
type lookupEntry struct {
	done          chan struct{}
	found, failed bool
}

var errBudget = errors.New("lookup budget spent")

func (s *search) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

// table searches the candidate columns of one table: it probes them all
// in one read, then samples and judges those that named a file.
func (s *search) table(ctx context.Context, cols []Candidate) ([]Finding, error) {
	vals, err := s.cfg.Source.Probe(ctx, cols, ProbeValues)
	if err != nil {
		if skippable(err) {
			s.note("%s.%s was not searched: %v", cols[0].Schema, cols[0].Table, err)
			return nil, nil
		}
		return nil, err
	}
	// Every plausible leaf of every column, in every storage, at once.
	probe := make([][]group, len(cols))
	want := map[string][]string{}
	for i, c := range cols {
		probe[i] = groups(c.Type, vals[i], ProbeValues)
		for _, g := range probe[i] {
			for _, leaf := range g.Leaves {
				if plausible(leaf) {
					for _, st := range s.storages {
						want[st] = append(want[st], names(leaf)...)
					}
				}
			}
		}
	}
	if err := s.lookup(ctx, want); err != nil {
		return nil, err
	}
	var out []Finding
	for i, c := range cols {
		// The groups (JSON paths) that named a file, per storage.
		hits := map[string][]string{}
		for _, st := range s.storages {
			for _, g := range probe[i] {
				for _, leaf := range g.Leaves {
					if name, _ := s.exists(st, leaf); plausible(leaf) && name != "" {
						hits[st] = append(hits[st], g.key())
						break
					}
				}
			}
		}
		if len(hits) == 0 {
			continue
		}
		found, err := s.judge(ctx, c, hits)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
}

// judge samples column c, whose probe named files of the storages in hits
// (at the JSON paths listed), and returns a finding for each storage
// where the sample passes the verdict.
func (s *search) judge(ctx context.Context, c Candidate, hits map[string][]string) ([]Finding, error) {
	vals, err := s.cfg.Source.Sample(ctx, c, SampleValues)
	if err != nil {
		if skippable(err) {
			s.note("%s was not sampled: %v", c.Source(), err)
			return nil, nil
		}
		return nil, err
	}
	gs := groups(c.Type, vals, MaxPaths)
	byKey := map[string]group{}
	want := map[string][]string{}
	for st, keys := range hits {
		for _, g := range gs {
			if !slices.Contains(keys, g.key()) {
				continue
			}
			byKey[g.key()] = g
			for _, leaf := range g.Leaves {
				if plausible(leaf) {
					want[st] = append(want[st], names(leaf)...)
				}
			}
		}
	}
	if err := s.lookup(ctx, want); err != nil {
		return nil, err
	}
	var out []Finding
	for _, st := range s.storages {
		var passed []Finding
		for _, k := range hits[st] {
			g, ok := byKey[k]
			if !ok {
				continue
			}
			f := s.tally(c, st, g)
			if f.Present >= MinPresent && f.Share() >= MinShare {
				passed = append(passed, f)
			}
		}
		if len(passed) == 0 {
			continue
		}
		sort.SliceStable(passed, func(i, j int) bool {
			if passed[i].Present != passed[j].Present {
				return passed[i].Present > passed[j].Present
			}
			if passed[i].Share() != passed[j].Share() {
				return passed[i].Share() > passed[j].Share()
			}
			return len(passed[i].Column.JSONPath.String()) < len(passed[j].Column.JSONPath.String())
		})
		best := passed[0]
		for _, p := range passed[1:] {
			best.OtherPaths = append(best.OtherPaths, p.Column.JSONPath)
		}
		best.Configured = s.configured[columnKey(c.Column)]
		out = append(out, best)
	}
	return out, nil
}

// tally counts which of g's leaves exist in storage st.
func (s *search) tally(c Candidate, st string, g group) Finding {
	col := c.Column
	col.Storage, col.JSONPath = st, g.Path
	f := Finding{Column: col}
	prefixes := map[string]int{}
	for _, leaf := range g.Leaves {
		if len(names(leaf)) == 0 {
			continue // names no path at all ("/", "..")
		}
		if !plausible(leaf) {
			f.Paths++
			continue
		}
		name, unknown := s.exists(st, leaf)
		if unknown {
			continue // its lookup failed: neither present nor absent
		}
		f.Paths++
		if name == "" {
			continue
		}
		f.Present++
		if name == leaf {
			continue
		}
		f.Spelled++
		if f.Example == "" {
			f.Example, f.Named = leaf, name
		}
		if strings.HasSuffix(leaf, name) {
			prefixes[leaf[:len(leaf)-len(name)]]++
		}
	}
	most := 0
	for p, n := range prefixes {
		if n > most || n == most && p < f.Prefix {
			f.Prefix, most = p, n
		}
	}
	return f
}

// exists returns the name under which leaf exists in storage st (the
// longest, when several do), or "" when none does, from lookups made;
// unknown reports that none was found but a lookup of one of its names
// failed, so leaf may exist.
func (s *search) exists(st, leaf string) (found string, unknown bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names(leaf) {
		e := s.cache[lookupKey{st, n}]
		if e == nil {
			continue
		}
		select {
		case <-e.done:
			if e.found && len(n) > len(found) {
				found = n
			}
			unknown = unknown || e.failed
		default:
		}
	}
	return found, unknown && found == ""
}

// lookup looks up in each storage the names listed for it, Concurrency
// at a time per storage; a name looked up before (or being looked up by
// another worker) is not looked up again, its answer is awaited.
func (s *search) lookup(ctx context.Context, want map[string][]string) error {
	type job struct {
		st    cdccleaner.Statter
		key   lookupKey
		entry *lookupEntry
	}
	var jobs []job
	var await []*lookupEntry
	s.mu.Lock()
	for st, ns := range want {
		for _, n := range ns {
			k := lookupKey{st, n}
			if e, ok := s.cache[k]; ok {
				await = append(await, e)
				continue
			}
			e := &lookupEntry{done: make(chan struct{})}
			s.cache[k] = e
			jobs = append(jobs, job{s.cfg.Storages[st], k, e})
		}
	}
	s.mu.Unlock()
	if s.lookups.Add(int64(len(jobs))) > MaxLookups {
		for _, j := range jobs {
			j.entry.failed = true
			close(j.entry.done)
		}
		return errBudget
	}
	var wg sync.WaitGroup
	var stop error
	for _, j := range jobs {
		sema := s.sems[j.key.storage]
		select {
		case sema <- struct{}{}:
		case <-ctx.Done():
			j.entry.failed = true // never looked up: unknown to whoever waits
			close(j.entry.done)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sema; wg.Done() }()
			_, err := j.st.Stat(j.key.name)
			s.mu.Lock()
			defer s.mu.Unlock()
			switch {
			case err == nil:
				j.entry.found = true
			case absent(err):
			default:
				j.entry.failed = true
				s.errs[j.key.storage]++
				if s.firstErrs[j.key.storage] == nil {
					s.firstErrs[j.key.storage] = err
				}
				if s.errs[j.key.storage] >= maxLookupErrors && stop == nil {
					stop = fmt.Errorf("storage %q does not answer: %d lookups failed, the last: %w", j.key.storage, s.errs[j.key.storage], err)
				}
			}
			close(j.entry.done)
		}()
	}
	wg.Wait()
	for _, e := range await {
		select {
		case <-e.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if stop != nil {
		return stop
	}
	return ctx.Err()
}
