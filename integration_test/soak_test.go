package integration_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
)

// The fault suite. `go test ./...` runs it short (about a minute, at least
// two faults of each kind); `make soak` runs it for 25 minutes with at
// least 50 faults of each kind and 30-second S3 hangs.
var (
	soakDuration  = flag.Duration("soak.duration", 60*time.Second, "how long the workload and the faults run (make soak: 25m)")
	soakMinFaults = flag.Int("soak.min-faults", 2, "each kind of fault is injected at least this often; the run goes on past soak.duration until it was (make soak: 50)")
	soakHang      = flag.Duration("soak.hang", 10*time.Second, "how long the S3 endpoint hangs in a hang fault (make soak: 30s)")
	soakSeed      = flag.Uint64("soak.seed", 0, "seed of the workload and fault schedule (0: from the clock; the seed used is logged)")
	soakMinRerefs = flag.Int("soak.min-rereferences", 5, "each kind of re-reference (re-sync, stale save, same-key re-upload) must be made at least this often, or the run proves nothing about promise 7")
	soakReport    = flag.String("soak.report", "", "also write the report (Markdown) to `FILE`")
)

const (
	soakSchema = `CREATE TABLE gallery_photo (
	id bigserial PRIMARY KEY,
	title text NOT NULL DEFAULT '',
	image varchar(200) NOT NULL DEFAULT '',
	thumbnail varchar(200) NOT NULL DEFAULT ''
);
CREATE INDEX ON gallery_photo (image);
CREATE INDEX ON gallery_photo (thumbnail);
CREATE TABLE blog_post (id bigserial PRIMARY KEY, cover text);
CREATE INDEX ON blog_post (cover);
CREATE TABLE docs_document (id bigserial PRIMARY KEY, file text NOT NULL);
CREATE INDEX ON docs_document (file);
CREATE TABLE legacy_upload (id bigserial PRIMARY KEY, file text NOT NULL);
CREATE INDEX ON legacy_upload (file);
-- The workload's ledger: every path a transaction put into a watched
-- column, written in that same transaction, so it commits exactly when the
-- change does (an ambiguous COMMIT, a crash, a savepoint or a prepared
-- transaction rolled back included).
CREATE TABLE wl_committed (storage text NOT NULL, path text NOT NULL);
-- Paths that went into the protect-only column: its changes are not
-- watched, so a path whose last reference left from there is the
-- business of scan, and either outcome is right for it.
CREATE TABLE wl_protected (path text NOT NULL);
-- Same-key re-uploads whose row came back: written in the transaction that
-- re-creates the row, so the check knows whether a committed row
-- referenced the new content.
CREATE TABLE wl_reupload (storage text NOT NULL, path text NOT NULL, n bigint NOT NULL);`

	soakWatch = `watch:
  - table: public.gallery_photo
    columns: [image, thumbnail]
    storage: media
  - table: public.blog_post
    columns: [cover]
    storage: media
  - table: public.docs_document
    columns: [file]
    storage: docs
protect:
  - table: public.legacy_upload
    columns: [file]
    storage: media`

	defaultAvatar = "defaults/avatar.png" // kept by the keep rule
	soakDirs      = 16                    // media/dNN directories
)

// hostilePaths are paths rows may hold that must never be deleted; the
// first resolves to the sentinel beside the root.
var hostilePaths = []string{"../outside/sentinel.txt", "/etc/hostname", "d01/../../outside/sentinel.txt", "d02/./x.jpg", "d03//y.jpg"}

// TestFaultSuite runs a randomized Django-like workload (inserts, updates,
// deletes, shared paths across rows and tables, swaps, moves, rollbacks,
// savepoint rollbacks, prepared transactions committed and rolled back,
// big transactions, hostile paths, and re-references: re-syncs, stale
// saves, same-key re-uploads) against the cleaner, with one local and one
// S3 storage, both with the default trash, while injecting faults: kill -9
// of the cleaner, the walsender terminated, PostgreSQL restarted in
// immediate mode, the S3 endpoint refusing or hanging (a proxy on
// loopback), and a directory of the local storage made read-only for a
// while. Then, once the cleaner has settled, it checks the promises
// against the workload's ledger and the rows at the end: every referenced
// file present with the content last written there, every orphan gone
// from its path and in the trash. Not parallel: it restarts the server and
// sets the AWS_* variables.
func TestFaultSuite(t *testing.T) {
	if cluster.External() {
		t.Skip("the fault suite restarts PostgreSQL; it needs the throwaway cluster, not CDC_TEST_DATABASE_URL")
	}
	seed := *soakSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -args -soak.seed=%d)", seed, seed)

	srv := s3test.Start(t, s3test.Options{})
	u, err := url.Parse(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	proxy := startFaultProxy(t, u.Host)
	docsPrefix := srv.Prefix() + "docs/"
	e := newEnv(t, envOptions{
		schema: soakSchema,
		watch:  soakWatch,
		storages: fmt.Sprintf(`storages:
  media:
    type: local
    root: {{root}}
    prune_empty_dirs: true
    keep: ["defaults/*"]
  docs:
    type: s3
    bucket: %s
    prefix: %s
    region: %s
    endpoint: http://%s
    path_style: true`, srv.Bucket(), docsPrefix, srv.Region(), proxy.Addr()),
		extra:     "",
		logLevel:  "info",
		otherUser: true,
	})
	e.env = srv.Env()

	s := &soak{t: t, e: e, srv: srv, proxy: proxy, docsPrefix: docsPrefix, seed: seed,
		created: map[fileKey]bool{}, faults: map[string]*atomic.Int64{},
		uploads: map[fileKey]upload{}, busy: map[fileKey]bool{}, rerefs: map[string]*rerefCount{}}
	for _, k := range rerefKinds {
		s.rerefs[k] = &rerefCount{}
	}
	for _, k := range append(faultKinds, "S3 refusing", "S3 hanging") {
		s.faults[k] = &atomic.Int64{}
	}
	s.prepare()
	s.cleaner = newSupervisor(t, e)
	defer s.cleaner.stop()

	ctx, stopWorkload := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	for w := range 3 {
		workers.Go(func() { s.work(ctx, w) })
	}
	start := time.Now()
	var injectors sync.WaitGroup
	for i, kind := range faultKinds {
		injectors.Go(func() { s.inject(kind, rand.New(rand.NewPCG(seed, uint64(100+i)))) })
	}
	progress := time.NewTicker(time.Minute)
	injected := make(chan struct{})
	go func() { injectors.Wait(); close(injected) }()
wait:
	for {
		select {
		case <-injected:
			break wait
		case <-progress.C:
			var f []string
			for _, k := range faultKinds {
				f = append(f, fmt.Sprintf("%s %d", k, s.faults[k].Load()))
			}
			t.Logf("%s: %d transactions committed, %d rolled back; faults: %s", time.Since(start).Round(time.Second),
				s.committed.Load(), s.rolledBack.Load(), strings.Join(f, ", "))
		}
	}
	progress.Stop()
	stopWorkload()
	workers.Wait()
	s.ran = time.Since(start)
	t.Logf("workload and faults ran %s; settling", s.ran.Round(time.Second))

	s.finish()
	s.verify()
}

// faultKinds are the kinds of fault of the issue; the S3 endpoint refuses
// and hangs in turn, and each is counted too.
var faultKinds = []string{"kill -9 of the cleaner", "walsender terminated", "PostgreSQL immediate restart", s3Fault, "local directory read-only"}

const s3Fault = "S3 endpoint refusing or hanging"

type fileKey struct{ storage, path string }

type soak struct {
	t          *testing.T
	e          *env
	srv        *s3test.Server
	proxy      *faultProxy
	docsPrefix string
	seed       uint64
	cleaner    *supervisor
	ran        time.Duration
	settled    time.Duration
	slotReport string

	seq     atomic.Int64
	mu      sync.Mutex
	created map[fileKey]bool   // every file the workload created
	gids    map[string]bool    // prepared transactions: commit (true) or roll back
	uploads map[fileKey]upload // the last same-key re-upload at a path
	busy    map[fileKey]bool   // paths a same-key re-upload is working on
	rerefs  map[string]*rerefCount
	windows []faultWindow // when each fault was on, for evidence

	faults                                                map[string]*atomic.Int64
	committed, rolledBack, preparedCommitted, preparedRB  atomic.Int64
	savepoints, big, ambiguous, failedTx, deadlocks, errs atomic.Int64
}

// prepare creates the sentinels outside the storages, the default file the
// keep rule covers, and a first population of rows.
func (s *soak) prepare() {
	t := s.t
	if err := os.WriteFile(filepath.Join(s.e.outside, "sentinel.txt"), []byte("never deleted"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.srv.Put(t, s.srv.Prefix()+"outside.pdf", []byte("never deleted"))
	s.srv.Put(t, s.srv.Prefix()+"docsx/1.pdf", []byte("never deleted")) // shares the prefix's letters
	if err := s.createFile("media", defaultAvatar); err != nil {
		t.Fatal(err)
	}
	c := s.e.conn()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(s.seed, 1))
	for range 20 {
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		for range 50 {
			if err := s.insertPhoto(ctx, c, rng); err != nil {
				t.Fatal(err)
			}
		}
		for range 10 {
			if err := s.insertDoc(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
	}
}

// newPath returns a path never used before.
func (s *soak) newPath(storage string, rng *rand.Rand) string {
	n := s.seq.Add(1)
	if storage == "docs" {
		return fmt.Sprintf("%d/%06d.pdf", n%7, n)
	}
	name := fmt.Sprintf("%06d.jpg", n)
	switch rng.IntN(10) {
	case 0:
		name = fmt.Sprintf("été %06d ✓.jpg", n)
	case 1:
		name = fmt.Sprintf("with space+plus %06d.jpg", n)
	}
	return fmt.Sprintf("d%02d/%s", rng.IntN(soakDirs), name)
}

// createFile creates the file of a new path before any row names it, and
// remembers it unless creating it failed.
func (s *soak) createFile(storage, p string) error {
	k := fileKey{storage, p}
	s.mu.Lock()
	s.created[k] = true
	s.mu.Unlock()
	err := s.writeFile(storage, p, []byte(p))
	if err != nil {
		s.mu.Lock()
		delete(s.created, k)
		s.mu.Unlock()
	}
	return err
}

// writeFile writes content at p: a new file, or a new upload under an
// existing name.
func (s *soak) writeFile(storage, p string, content []byte) error {
	if storage == "docs" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return s.srv.TryPut(ctx, s.docsPrefix+p, content)
	}
	full := filepath.Join(s.e.root, filepath.FromSlash(p))
	for attempt := 0; ; attempt++ {
		err := os.WriteFile(full, content, 0o644)
		if err == nil {
			return nil
		}
		if attempt > 50 {
			return err
		}
		if errors.Is(err, fs.ErrNotExist) {
			// The cleaner may prune the directory between these calls.
			dir := filepath.Dir(full)
			if err := os.Mkdir(dir, 0o777); err == nil {
				os.Chmod(dir, 0o777)
			}
			continue
		}
		return err
	}
}

// place creates a new file and records, in the current transaction, that
// its path is going into a watched column.
func (s *soak) place(ctx context.Context, c *pgx.Conn, storage string, rng *rand.Rand) (string, error) {
	p := s.newPath(storage, rng)
	for attempt := 0; ; attempt++ {
		err := s.createFile(storage, p)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrPermission) || attempt > 20 {
			return "", fmt.Errorf("create %s: %w", p, err)
		}
		// Not root, and the directory is read-only for now: another one.
		p = s.newPath(storage, rng)
	}
	return p, s.ledger(ctx, c, storage, p)
}

func (s *soak) ledger(ctx context.Context, c *pgx.Conn, storage, p string) error {
	_, err := c.Exec(ctx, `INSERT INTO wl_committed VALUES ($1, $2)`, storage, p)
	return err
}

func (s *soak) insertPhoto(ctx context.Context, c *pgx.Conn, rng *rand.Rand) error {
	img, err := s.place(ctx, c, "media", rng)
	if err != nil {
		return err
	}
	thumb := ""
	if rng.IntN(2) == 0 {
		if thumb, err = s.place(ctx, c, "media", rng); err != nil {
			return err
		}
	}
	_, err = c.Exec(ctx, `INSERT INTO gallery_photo (image, thumbnail) VALUES ($1, $2)`, img, thumb)
	return err
}

func (s *soak) insertDoc(ctx context.Context, c *pgx.Conn) error {
	p, err := s.place(ctx, c, "docs", nil)
	if err != nil {
		return err
	}
	_, err = c.Exec(ctx, `INSERT INTO docs_document (file) VALUES ($1)`, p)
	return err
}

// randomRow locks a random row of table and returns its id, or 0.
func randomRow(ctx context.Context, c *pgx.Conn, table string, rng *rand.Rand) (int64, error) {
	var id int64
	err := c.QueryRow(ctx, fmt.Sprintf(`SELECT id FROM %s WHERE id >= (SELECT floor(max(id) * $1::float8) FROM %s) ORDER BY id LIMIT 1 FOR UPDATE`, table, table), rng.Float64()).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return id, err
}

// sharedPath returns the image of a random photo, locked FOR SHARE so that
// no concurrent transaction can remove it before this one commits: copying
// a path another transaction is deleting would be the application's race.
func sharedPath(ctx context.Context, c *pgx.Conn, rng *rand.Rand) (string, error) {
	var p string
	err := c.QueryRow(ctx, `SELECT image FROM gallery_photo WHERE id >= (SELECT floor(max(id) * $1::float8) FROM gallery_photo) AND image <> '' ORDER BY id LIMIT 1 FOR SHARE`, rng.Float64()).Scan(&p)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return p, err
}

// step is one random change inside the current transaction.
func (s *soak) step(ctx context.Context, c *pgx.Conn, rng *rand.Rand) error {
	switch r := rng.IntN(100); {
	case r < 22:
		for range 1 + rng.IntN(3) {
			if err := s.insertPhoto(ctx, c, rng); err != nil {
				return err
			}
		}
		return nil
	case r < 30:
		return s.insertDoc(ctx, c)
	case r < 36: // a post sharing a photo's image, or with its own cover
		p, err := sharedPath(ctx, c, rng)
		if err == nil && (p == "" || rng.IntN(3) == 0) {
			p, err = s.place(ctx, c, "media", rng)
		}
		if err != nil {
			return err
		}
		_, err = c.Exec(ctx, `INSERT INTO blog_post (cover) VALUES ($1)`, p)
		return err
	case r < 37: // a protect-only reference to a shared path
		p, err := sharedPath(ctx, c, rng)
		if err != nil || p == "" {
			return err
		}
		if _, err := c.Exec(ctx, `INSERT INTO wl_protected VALUES ($1)`, p); err != nil {
			return err
		}
		_, err = c.Exec(ctx, `INSERT INTO legacy_upload (file) VALUES ($1)`, p)
		return err
	case r < 39:
		id, err := randomRow(ctx, c, "legacy_upload", rng)
		if err != nil || id == 0 {
			return err
		}
		_, err = c.Exec(ctx, `DELETE FROM legacy_upload WHERE id = $1`, id)
		return err
	case r < 55: // replace a photo's image (and sometimes its thumbnail)
		id, err := randomRow(ctx, c, "gallery_photo", rng)
		if err != nil || id == 0 {
			return err
		}
		img, err := s.place(ctx, c, "media", rng)
		if err != nil {
			return err
		}
		if rng.IntN(4) == 0 {
			_, err = c.Exec(ctx, `UPDATE gallery_photo SET image = $1, thumbnail = '' WHERE id = $2`, img, id)
		} else {
			_, err = c.Exec(ctx, `UPDATE gallery_photo SET image = $1 WHERE id = $2`, img, id)
		}
		return err
	case r < 60:
		id, err := randomRow(ctx, c, "docs_document", rng)
		if err != nil || id == 0 {
			return err
		}
		p, err := s.place(ctx, c, "docs", nil)
		if err != nil {
			return err
		}
		_, err = c.Exec(ctx, `UPDATE docs_document SET file = $1 WHERE id = $2`, p, id)
		return err
	case r < 72:
		for range 1 + rng.IntN(3) {
			id, err := randomRow(ctx, c, "gallery_photo", rng)
			if err != nil || id == 0 {
				return err
			}
			if _, err := c.Exec(ctx, `DELETE FROM gallery_photo WHERE id = $1`, id); err != nil {
				return err
			}
		}
		return nil
	case r < 76:
		id, err := randomRow(ctx, c, "docs_document", rng)
		if err != nil || id == 0 {
			return err
		}
		_, err = c.Exec(ctx, `DELETE FROM docs_document WHERE id = $1`, id)
		return err
	case r < 80:
		id, err := randomRow(ctx, c, "blog_post", rng)
		if err != nil || id == 0 {
			return err
		}
		_, err = c.Exec(ctx, `DELETE FROM blog_post WHERE id = $1`, id)
		return err
	case r < 85: // swap two photos' images
		a, err := randomRow(ctx, c, "gallery_photo", rng)
		if err != nil || a == 0 {
			return err
		}
		b, err := randomRow(ctx, c, "gallery_photo", rng)
		if err != nil || b == 0 || a == b {
			return err
		}
		_, err = c.Exec(ctx, `UPDATE gallery_photo g SET image = o.image FROM gallery_photo o
			WHERE (g.id, o.id) IN (($1::bigint, $2::bigint), ($2::bigint, $1::bigint))`, a, b)
		return err
	case r < 88: // move a's image to b (b's old image vanishes), a gets a new one
		a, err := randomRow(ctx, c, "gallery_photo", rng)
		if err != nil || a == 0 {
			return err
		}
		b, err := randomRow(ctx, c, "gallery_photo", rng)
		if err != nil || b == 0 || a == b {
			return err
		}
		img, err := s.place(ctx, c, "media", rng)
		if err != nil {
			return err
		}
		if _, err := c.Exec(ctx, `UPDATE gallery_photo SET image = (SELECT image FROM gallery_photo WHERE id = $1) WHERE id = $2`, a, b); err != nil {
			return err
		}
		_, err = c.Exec(ctx, `UPDATE gallery_photo SET image = $1 WHERE id = $2`, img, a)
		return err
	case r < 91: // the model's default file, which the keep rule protects
		id, err := randomRow(ctx, c, "gallery_photo", rng)
		if err != nil || id == 0 {
			return err
		}
		if err := s.ledger(ctx, c, "media", defaultAvatar); err != nil {
			return err
		}
		_, err = c.Exec(ctx, `UPDATE gallery_photo SET image = $1 WHERE id = $2`, defaultAvatar, id)
		return err
	case r < 93: // a hostile path, later deleted like any row
		p := hostilePaths[rng.IntN(len(hostilePaths))]
		if err := s.ledger(ctx, c, "media", p); err != nil {
			return err
		}
		_, err := c.Exec(ctx, `INSERT INTO gallery_photo (image) VALUES ($1)`, p)
		return err
	default: // no file column changes
		id, err := randomRow(ctx, c, "gallery_photo", rng)
		if err != nil || id == 0 {
			return err
		}
		_, err = c.Exec(ctx, `UPDATE gallery_photo SET title = md5(random()::text) WHERE id = $1`, id)
		return err
	}
}

// bigStep deletes or replaces many rows in one transaction.
func (s *soak) bigStep(ctx context.Context, c *pgx.Conn, rng *rand.Rand) error {
	n := 200 + rng.IntN(800)
	if rng.IntN(2) == 0 {
		paths := make([]string, n)
		for i := range paths {
			p := s.newPath("media", rng)
			if err := s.createFile("media", p); err != nil {
				return err
			}
			paths[i] = p
		}
		if _, err := c.Exec(ctx, `INSERT INTO wl_committed SELECT 'media', unnest($1::text[])`, paths); err != nil {
			return err
		}
		_, err := c.Exec(ctx, `INSERT INTO gallery_photo (image) SELECT unnest($1::text[])`, paths)
		return err
	}
	_, err := c.Exec(ctx, `DELETE FROM gallery_photo WHERE id IN (SELECT id FROM gallery_photo WHERE id % 7 = $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, rng.IntN(7), n)
	return err
}

// work runs transactions until ctx ends, reconnecting after errors.
func (s *soak) work(ctx context.Context, w int) {
	rng := rand.New(rand.NewPCG(s.seed, uint64(10+w)))
	var c *pgx.Conn
	defer func() {
		if c != nil {
			c.Close(context.Background())
		}
	}()
	for ctx.Err() == nil {
		if c == nil {
			var err error
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, err = pgx.Connect(cctx, s.e.url)
			cancel()
			if err != nil {
				c = nil
				sleep(ctx, 200*time.Millisecond)
				continue
			}
			// Acknowledged commits must survive an immediate restart.
			if _, err := c.Exec(ctx, `SET synchronous_commit = on; SET lock_timeout = '5s'`); err != nil {
				c.Close(context.Background())
				c = nil
				continue
			}
			s.resolvePrepared(ctx, c, w)
		}
		if err := s.transaction(ctx, c, rng, w); err != nil {
			if c.IsClosed() || ctx.Err() != nil {
				c.Close(context.Background())
				c = nil
			} else if _, rerr := c.Exec(context.Background(), "ROLLBACK"); rerr != nil {
				c.Close(context.Background())
				c = nil
			}
		}
		sleep(ctx, time.Duration(5+rng.IntN(40))*time.Millisecond)
	}
}

// resolvePrepared finishes the prepared transactions of worker w that a
// fault left pending: they hold their row locks until then.
func (s *soak) resolvePrepared(ctx context.Context, c *pgx.Conn, w int) {
	prefix := fmt.Sprintf("soak_%d_", w)
	s.mu.Lock()
	pending := map[string]bool{}
	for gid, commit := range s.gids {
		if strings.HasPrefix(gid, prefix) {
			pending[gid] = commit
		}
	}
	s.mu.Unlock()
	for gid, commit := range pending {
		var exists bool
		if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = $1)`, gid).Scan(&exists); err != nil {
			return
		}
		if exists {
			end := "ROLLBACK PREPARED '" + gid + "'"
			if commit {
				end = "COMMIT PREPARED '" + gid + "'"
			}
			if _, err := c.Exec(ctx, end); err != nil {
				return
			}
			if commit {
				s.preparedCommitted.Add(1)
			} else {
				s.preparedRB.Add(1)
			}
		}
		s.mu.Lock()
		delete(s.gids, gid)
		s.mu.Unlock()
	}
}

// count counts how a transaction of worker w on c failed, and returns err.
func (s *soak) count(c *pgx.Conn, w int, err error) error {
	var pgErr interface{ SQLState() string }
	switch {
	case err == nil:
	case errors.As(err, &pgErr) && (pgErr.SQLState() == "40P01" || pgErr.SQLState() == "55P03" || pgErr.SQLState() == "40001"):
		s.deadlocks.Add(1) // deadlock or lock timeout: rolled back
	case c.IsClosed():
		s.ambiguous.Add(1) // the server went away: the ledger knows
	default:
		s.failedTx.Add(1)
		if s.errs.Add(1) <= 5 {
			s.t.Logf("workload %d: %v", w, err)
		}
	}
	return err
}

// transaction runs one random transaction: committed, rolled back, with a
// savepoint rolled back, prepared and then committed or rolled back, or big;
// or a re-reference, which takes two or three.
func (s *soak) transaction(ctx context.Context, c *pgx.Conn, rng *rand.Rand, w int) error {
	count := func(err error) error { return s.count(c, w, err) }
	kind := rng.IntN(100)
	if kind >= 95 {
		err := s.rereference(ctx, c, rng, w)
		if errors.Is(err, errNothing) {
			return nil
		}
		return err
	}
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		return count(err)
	}
	steps := 1 + rng.IntN(3)
	switch {
	case kind < 2:
		if err := s.bigStep(ctx, c, rng); err != nil {
			return count(err)
		}
		s.big.Add(1)
	case kind < 10: // savepoint: the middle part is rolled back
		for range steps {
			if err := s.step(ctx, c, rng); err != nil {
				return count(err)
			}
		}
		if _, err := c.Exec(ctx, "SAVEPOINT sp"); err != nil {
			return count(err)
		}
		for range steps {
			if err := s.step(ctx, c, rng); err != nil {
				return count(err)
			}
		}
		if _, err := c.Exec(ctx, "ROLLBACK TO SAVEPOINT sp"); err != nil {
			return count(err)
		}
		if err := s.step(ctx, c, rng); err != nil {
			return count(err)
		}
		s.savepoints.Add(1)
	default:
		for range steps {
			if err := s.step(ctx, c, rng); err != nil {
				return count(err)
			}
		}
	}
	switch {
	case kind >= 10 && kind < 20:
		_, err := c.Exec(ctx, "ROLLBACK")
		if err == nil {
			s.rolledBack.Add(1)
		}
		return count(err)
	case kind >= 20 && kind < 26:
		gid := fmt.Sprintf("soak_%d_%d", w, s.seq.Add(1))
		commit := rng.IntN(2) == 0
		s.mu.Lock()
		if s.gids == nil {
			s.gids = map[string]bool{}
		}
		s.gids[gid] = commit
		s.mu.Unlock()
		if _, err := c.Exec(ctx, "PREPARE TRANSACTION '"+gid+"'"); err != nil {
			return count(err)
		}
		sleep(ctx, time.Duration(rng.IntN(30))*time.Millisecond)
		end := "ROLLBACK PREPARED '" + gid + "'"
		if commit {
			end = "COMMIT PREPARED '" + gid + "'"
		}
		if _, err := c.Exec(context.Background(), end); err != nil {
			return count(err) // finish resolves it
		}
		s.mu.Lock()
		delete(s.gids, gid)
		s.mu.Unlock()
		if commit {
			s.preparedCommitted.Add(1)
		} else {
			s.preparedRB.Add(1)
		}
		return nil
	default:
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			return count(err)
		}
		s.committed.Add(1)
		return nil
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// inject injects faults of one kind until the run's time is up and at
// least soak.min-faults were injected.
func (s *soak) inject(kind string, rng *rand.Rand) {
	end := time.Now().Add(*soakDuration)
	base := *soakDuration / time.Duration(*soakMinFaults+1)
	gap := func(lo, hi float64) time.Duration {
		return time.Duration((lo + rng.Float64()*(hi-lo)) * float64(base))
	}
	n := s.faults[kind]
	refusals, hangs := s.faults["S3 refusing"], s.faults["S3 hanging"]
	for time.Now().Before(end) || n.Load() < int64(*soakMinFaults) {
		switch kind {
		case "kill -9 of the cleaner":
			time.Sleep(gap(0.3, 1))
			from := time.Now()
			s.cleaner.kill9(time.Duration(rng.IntN(1000)) * time.Millisecond)
			s.window(kind, from)
			n.Add(1)
		case "walsender terminated":
			time.Sleep(gap(0.3, 1))
			from := time.Now()
			if s.terminateWalsender() {
				s.window(kind, from)
				n.Add(1)
			}
		case "PostgreSQL immediate restart":
			time.Sleep(gap(0.3, 1))
			from := time.Now()
			s.cleaner.databaseDown(true)
			err := cluster.Restart("immediate")
			s.cleaner.databaseDown(false)
			s.window(kind, from)
			if err != nil {
				s.t.Errorf("restart PostgreSQL: %v", err)
				return
			}
			n.Add(1)
		case s3Fault: // refusing and hanging in turn
			time.Sleep(gap(0.05, 0.25))
			from := time.Now()
			if refusals.Load() <= hangs.Load() {
				s.proxy.set(proxyRefuse)
				time.Sleep(time.Duration(1000+rng.IntN(4000)) * time.Millisecond)
				s.proxy.set(proxyPass)
				s.window("S3 refusing", from)
				refusals.Add(1)
			} else {
				s.proxy.set(proxyHang)
				time.Sleep(*soakHang)
				s.proxy.set(proxyPass)
				s.window("S3 hanging", from)
				hangs.Add(1)
			}
			n.Add(1)
		case "local directory read-only":
			time.Sleep(gap(0.2, 0.8))
			dir := filepath.Join(s.e.root, fmt.Sprintf("d%02d", rng.IntN(soakDirs)))
			from := time.Now()
			if os.Chmod(dir, 0o555) != nil {
				continue // pruned just now
			}
			time.Sleep(time.Duration(1000+rng.IntN(5000)) * time.Millisecond)
			os.Chmod(dir, 0o777)
			s.window(kind+" ("+filepath.Base(dir)+")", from)
			n.Add(1)
		}
	}
}

// faultWindow is when one fault was on.
type faultWindow struct {
	kind     string
	from, to time.Time
}

// window records that a fault of kind was on from from until now.
func (s *soak) window(kind string, from time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.windows = append(s.windows, faultWindow{kind, from, time.Now()})
}

// windowsNear lists the faults that were on within 15 seconds of [from, to].
func (s *soak) windowsNear(from, to time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := &strings.Builder{}
	for _, w := range s.windows {
		if w.to.After(from.Add(-15*time.Second)) && w.from.Before(to.Add(15*time.Second)) {
			fmt.Fprintf(b, "      %s %s to %s\n", w.kind, clock(w.from), clock(w.to))
		}
	}
	return b.String()
}

// clock formats t for evidence, to the microsecond, in UTC like the logs.
func clock(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("15:04:05.000000")
}

// terminateWalsender ends the cleaner's replication connection, and
// reports whether there was one.
func (s *soak) terminateWalsender() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.e.url)
	if err != nil {
		return false
	}
	defer c.Close(context.Background())
	var ok bool
	err = c.QueryRow(ctx, `SELECT coalesce(bool_or(pg_terminate_backend(active_pid)), false) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, s.e.slot).Scan(&ok)
	return err == nil && ok
}

// finish resolves what the faults left pending and waits until the cleaner
// has settled everything.
func (s *soak) finish() {
	t := s.t
	s.proxy.set(proxyPass)
	for i := range soakDirs {
		os.Chmod(filepath.Join(s.e.root, fmt.Sprintf("d%02d", i)), 0o777)
	}
	c := s.e.conn()
	ctx := context.Background()
	rows, err := c.Query(ctx, `SELECT gid FROM pg_prepared_xacts WHERE database = current_database()`)
	if err != nil {
		t.Fatal(err)
	}
	gids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, gid := range gids {
		s.mu.Lock()
		commit := s.gids[gid]
		s.mu.Unlock()
		end := "ROLLBACK PREPARED '" + gid + "'"
		if commit {
			end = "COMMIT PREPARED '" + gid + "'"
			s.preparedCommitted.Add(1)
		} else {
			s.preparedRB.Add(1)
		}
		if _, err := c.Exec(ctx, end); err != nil {
			t.Fatalf("%s: %v", end, err)
		}
	}
	s.cleaner.ensureRunning()
	start := time.Now()
	pgtest.WaitSettled(t, s.e.url, s.e.slot, 10*time.Minute)
	// With nothing pending, the confirmed position follows the server's
	// WAL end from keepalives.
	var walEnd string
	if err := c.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&walEnd); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var reached bool
		var confirmed string
		if err := c.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $1::pg_lsn, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $2`, walEnd, s.e.slot).Scan(&reached, &confirmed); err != nil {
			t.Fatal(err)
		}
		if reached {
			s.slotReport = fmt.Sprintf("confirmed_flush_lsn %s ≥ WAL end %s", confirmed, walEnd)
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the slot's confirmed_flush_lsn %s did not reach the WAL end %s within 2 minutes", confirmed, walEnd)
			s.slotReport = fmt.Sprintf("confirmed_flush_lsn %s < WAL end %s", confirmed, walEnd)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.settled = time.Since(start)
}

// soakTrash is where both storages keep removed files: the default
// trash_prefix, relative to the root or to the storage's prefix.
const soakTrash = ".trash/"

// finding is one violation, about one file.
type finding struct {
	k   fileKey
	msg string
}

func (f finding) String() string { return fmt.Sprintf("%s:%s %s", f.k.storage, f.k.path, f.msg) }

func sortFindings(fs []finding) {
	sort.Slice(fs, func(i, j int) bool { return fs[i].String() < fs[j].String() })
}

// verify checks the promises against the ledger.
func (s *soak) verify() {
	t := s.t
	c := s.e.conn()
	ctx := context.Background()
	set := func(sql string) map[fileKey]bool {
		rows, err := c.Query(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		out := map[fileKey]bool{}
		for rows.Next() {
			var k fileKey
			if err := rows.Scan(&k.storage, &k.path); err != nil {
				t.Fatal(err)
			}
			out[k] = true
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	count := func(sql string) int64 {
		var n int64
		if err := c.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Still referenced is decided by the rows at the end, whatever
	// happened to them on the way.
	referenced := set(`SELECT 'media', image FROM gallery_photo UNION SELECT 'media', thumbnail FROM gallery_photo
		UNION SELECT 'media', cover FROM blog_post WHERE cover IS NOT NULL UNION SELECT 'media', file FROM legacy_upload
		UNION SELECT 'docs', file FROM docs_document`)
	committed := set(`SELECT DISTINCT storage, path FROM wl_committed`)
	protected := set(`SELECT DISTINCT 'media', path FROM wl_protected`)
	failed := set(`SELECT DISTINCT storage, path FROM cdc_cleaner.failed_deletions`)
	reasons := set(`SELECT DISTINCT storage, reason FROM cdc_cleaner.failed_deletions`)
	occupied := set(`SELECT DISTINCT storage, path FROM cdc_cleaner.journal WHERE event = 'occupied'`)
	restores := count(`SELECT count(*) FROM cdc_cleaner.journal WHERE event = 'restored'`)
	occupiedN := count(`SELECT count(*) FROM cdc_cleaner.journal WHERE event = 'occupied'`)
	danglingN := count(`SELECT count(*) FROM cdc_cleaner.journal WHERE event = 'dangling'`)
	danglingFailed := count(`SELECT count(*) FROM cdc_cleaner.failed_deletions WHERE reason LIKE 'dangling%'`)
	// The re-uploads whose row came back, by path and number.
	reuploaded := map[fileKey]map[int64]bool{}
	rows, err := c.Query(ctx, `SELECT storage, path, n FROM wl_reupload`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k fileKey
		var n int64
		if err := rows.Scan(&k.storage, &k.path, &n); err != nil {
			t.Fatal(err)
		}
		if reuploaded[k] == nil {
			reuploaded[k] = map[int64]bool{}
		}
		reuploaded[k][n] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	// What is at its path, and what is in the trash (by the path it was
	// removed from).
	present, trashed := map[fileKey]bool{}, map[fileKey]bool{}
	found := func(storage, rel string) {
		if p, ok := strings.CutPrefix(rel, soakTrash); ok {
			trashed[fileKey{storage, p}] = true
		} else {
			present[fileKey{storage, rel}] = true
		}
	}
	err = filepath.WalkDir(s.e.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(s.e.root, p)
			found("media", filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range s.srv.Keys(t, s.docsPrefix) {
		found("docs", strings.TrimPrefix(k, s.docsPrefix))
	}

	var wrong, wrongContent, missed, notTrashed []finding
	var neverCommitted []string
	var stillReferenced, kept, gone, inTrash, protectOnly, leftOccupied, newContent, trashedUploads, orphanUploads int
	var leftOther []finding
	for k := range s.created {
		keep := k.storage == "media" && cdccleaner.MatchPattern([]string{"defaults/*"}, k.path)
		up, wasUploaded := s.uploads[k]
		// A re-upload whose row did not come back (for certain: the
		// ledger says) is a file no committed row references, which the
		// cleaner may or may not have removed, as it came before or
		// after the upload: scan's business.
		orphanUpload := wasUploaded && (up.failed || !reuploaded[k][up.n])
		switch {
		case referenced[k] || keep:
			if !present[k] {
				wrong = append(wrong, finding{k, "(still referenced or kept) was deleted"})
			} else if !up.failed {
				// What was written last: the path itself, or the last
				// re-upload, never an older copy from the trash.
				want := k.path
				if wasUploaded {
					want = up.content
					newContent++
				}
				if got, ok := s.content(k); ok && got != want {
					wrongContent = append(wrongContent, finding{k, fmt.Sprintf("(still referenced) holds %q, want %q", got, want)})
				}
			}
			if keep {
				kept++
			} else {
				stillReferenced++
			}
			// A copy in the trash too: the journal's occupied leaves the
			// copy a re-reference found the path taken by; S3 leaves one
			// when deleting the trash object after a restore failed.
			switch {
			case !trashed[k]:
			case occupied[k]:
				leftOccupied++
			default:
				leftOther = append(leftOther, finding{k, "(still referenced) has a copy in the trash, and its journal has no occupied event"})
			}
		case protected[k]:
			protectOnly++ // either outcome is right; see wl_protected
		case orphanUpload:
			orphanUploads++
		case committed[k]:
			gone++
			switch {
			case present[k]:
				missed = append(missed, finding{k, "(its last reference was committed away) still exists"})
			case !trashed[k]:
				notTrashed = append(notTrashed, finding{k, "(its last reference was committed away) is gone, but not in the trash: the undo window lost it"})
			default:
				inTrash++
				if wasUploaded {
					// Removed last while it held the last upload.
					trashedUploads++
					if got, ok := s.content(fileKey{k.storage, soakTrash + k.path}); ok && got != up.content {
						wrongContent = append(wrongContent, finding{k, fmt.Sprintf("(committed away) has %q in the trash, want the last upload %q", got, up.content)})
					}
				}
			}
		default:
			neverCommitted = append(neverCommitted, k.path)
			if !present[k] {
				wrong = append(wrong, finding{k, "(never committed: rolled back) was deleted"})
			}
			if trashed[k] {
				wrong = append(wrong, finding{k, "(never committed: rolled back) has a copy in the trash"})
			}
		}
	}
	for k := range present {
		if !s.created[k] {
			wrong = append(wrong, finding{k, "exists but the workload never created it"})
		}
	}
	for k := range trashed {
		if !s.created[k] {
			wrong = append(wrong, finding{k, "is in the trash (" + soakTrash + k.path + ") but the workload never created it"})
		}
	}
	// Outside the storages.
	if b, err := os.ReadFile(filepath.Join(s.e.outside, "sentinel.txt")); err != nil || string(b) != "never deleted" {
		wrong = append(wrong, finding{fileKey{"outside", "sentinel.txt"}, fmt.Sprintf("beside the root was touched: %q, %v", b, err)})
	}
	for _, k := range []string{s.srv.Prefix() + "outside.pdf", s.srv.Prefix() + "docsx/1.pdf"} {
		if !s.srv.Exists(t, k) {
			wrong = append(wrong, finding{fileKey{"outside", k}, "(an object outside the prefix) was deleted"})
		}
	}
	// failed_deletions holds only hostile paths, refused as such: with
	// trash on and a retention far longer than the run, no reference can
	// dangle.
	var unexplained []finding
	hostileRecorded := 0
	for k := range failed {
		if cdccleaner.ValidatePath(k.path) == nil {
			unexplained = append(unexplained, finding{k, "is in failed_deletions"})
		} else {
			hostileRecorded++
		}
	}
	for k := range reasons {
		if k.path != cdccleaner.ReasonRejectedPath {
			unexplained = append(unexplained, finding{fileKey{k.storage, ""}, fmt.Sprintf("reason %q", k.path)})
		}
	}
	for k := range committed {
		if cdccleaner.ValidatePath(k.path) != nil && !referenced[k] && !failed[k] {
			unexplained = append(unexplained, finding{k, "(hostile) vanished but was not recorded"})
		}
	}
	sortFindings(wrong)
	sortFindings(wrongContent)
	sortFindings(missed)
	sortFindings(notTrashed)
	sortFindings(unexplained)

	// Why orphans are back at their paths, from their journals.
	var missedSameTx, missedOutOfOrder int
	for _, f := range missed {
		switch classifyRestore(s.journalOf(c, f.k)) {
		case restoredSameTx:
			missedSameTx++
		case restoredOutOfOrder:
			missedOutOfOrder++
		}
	}

	r := &strings.Builder{}
	fmt.Fprintf(r, "cdc-cleaner fault suite report, %s, seed %d\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), s.seed)
	if pgtest.RaceEnabled() {
		fmt.Fprintln(r, "(race detector on)")
	}
	fmt.Fprintf(r, "\nworkload and faults ran %s, then the cleaner settled in %s\n\n", s.ran.Round(time.Second), s.settled.Round(time.Second))
	fmt.Fprintln(r, "| fault | injected |")
	fmt.Fprintln(r, "| --- | --- |")
	for _, k := range faultKinds {
		fmt.Fprintf(r, "| %s | %d |\n", k, s.faults[k].Load())
		if k == s3Fault {
			fmt.Fprintf(r, "|   of which refusing (connections reset, 1 to 5 s) | %d |\n", s.faults["S3 refusing"].Load())
			fmt.Fprintf(r, "|   of which hanging (no byte through for %s) | %d |\n", *soakHang, s.faults["S3 hanging"].Load())
		}
	}
	fmt.Fprintf(r, "\n| workload | count |\n| --- | --- |\n")
	for _, row := range []struct {
		what string
		n    int64
	}{
		{"transactions committed", s.committed.Load()},
		{"  of which big (200 to 1,000 rows)", s.big.Load()},
		{"  of which with a savepoint rolled back", s.savepoints.Load()},
		{"transactions rolled back", s.rolledBack.Load()},
		{"prepared transactions committed", s.preparedCommitted.Load()},
		{"prepared transactions rolled back", s.preparedRB.Load()},
		{"transactions cut by a fault (outcome from the ledger)", s.ambiguous.Load()},
		{"transactions ended by a deadlock or lock timeout", s.deadlocks.Load()},
		{"transactions failed otherwise", s.failedTx.Load()},
		{"cleaner exits not caused by the suite (explained: database down at start)", int64(s.cleaner.explainedExits.Load())},
	} {
		fmt.Fprintf(r, "| %s | %d |\n", row.what, row.n)
	}
	fmt.Fprintf(r, "\n| re-reference (promise 7), last transaction committed | times | paths |\n| --- | --- | --- |\n")
	for _, k := range rerefKinds {
		fmt.Fprintf(r, "| %s | %d | %d |\n", k, s.rerefs[k].times.Load(), s.rerefs[k].paths.Load())
	}
	fmt.Fprintf(r, "| same-key re-uploads whose row did not come back | %d | |\n", s.rerefs[rerefReupload].lost.Load())
	fmt.Fprintf(r, "\n| check | result |\n| --- | --- |\n")
	fmt.Fprintf(r, "| files created | %d |\n", len(s.created))
	fmt.Fprintf(r, "| still referenced at the end: must exist | %d |\n", stillReferenced)
	fmt.Fprintf(r, "|   of which with an old copy left in the trash (journal: occupied) | %d |\n", leftOccupied)
	fmt.Fprintf(r, "|   of which with a copy left in the trash, no occupied event (purged after the retention) | %d |\n", len(leftOther))
	fmt.Fprintf(r, "|   of which re-uploaded: must hold the last upload | %d |\n", newContent)
	fmt.Fprintf(r, "| kept by the keep rule | %d |\n", kept)
	fmt.Fprintf(r, "| last reference committed away: must be gone | %d |\n", gone)
	fmt.Fprintf(r, "|   of which in the trash, as they must be | %d |\n", inTrash)
	fmt.Fprintf(r, "|     of which re-uploaded: the trashed copy must hold the last upload | %d |\n", trashedUploads)
	fmt.Fprintf(r, "| never committed (rolled back): must exist | %d |\n", len(neverCommitted))
	fmt.Fprintf(r, "| unreferenced, but once in the protect-only column (scan's business): not checked | %d |\n", protectOnly)
	fmt.Fprintf(r, "| re-uploaded, but the row did not come back (scan's business): not checked | %d |\n", orphanUploads)
	fmt.Fprintf(r, "| files in the trash | %d |\n", len(trashed))
	fmt.Fprintf(r, "| restores in the journal | %d |\n", restores)
	fmt.Fprintf(r, "| journal: occupied (a file was at the path) / dangling | %d / %d |\n", occupiedN, danglingN)
	fmt.Fprintf(r, "| dangling references in failed_deletions (none expected: trash on, 720h retention) | %d |\n", danglingFailed)
	fmt.Fprintf(r, "| hostile paths recorded in failed_deletions | %d |\n", hostileRecorded)
	fmt.Fprintf(r, "| **wrong deletions** | **%d** |\n", len(wrong))
	fmt.Fprintf(r, "| **wrong content (not the last upload)** | **%d** |\n", len(wrongContent))
	fmt.Fprintf(r, "| **missed deletions** | **%d** |\n", len(missed))
	fmt.Fprintf(r, "|   of which restored by a reference from the transaction that removed them | %d |\n", missedSameTx)
	fmt.Fprintf(r, "|   of which restored after a later removal of the path was journaled | %d |\n", missedOutOfOrder)
	fmt.Fprintf(r, "| **committed away, but not in the trash** | **%d** |\n", len(notTrashed))
	fmt.Fprintf(r, "| unexplained failed_deletions | %d |\n", len(unexplained))
	fmt.Fprintf(r, "| unexpected cleaner exits | %d |\n", s.cleaner.unexpectedExits.Load())
	fmt.Fprintf(r, "| slot | %s |\n", s.slotReport)
	fmt.Print("\n" + r.String())
	if *soakReport != "" {
		if err := os.WriteFile(*soakReport, []byte(r.String()), 0o644); err != nil {
			t.Error(err)
		}
	}

	logs := s.cleaner.allLogs()
	report := func(kind string, fs []finding) {
		for i, f := range fs {
			if i == 20 {
				t.Errorf("%s: and %d more", kind, len(fs)-i)
				break
			}
			if i < 5 && f.k.path != "" && f.k.storage != "outside" {
				t.Errorf("%s: %s\n%s", kind, f, s.evidence(c, f.k, logs))
			} else {
				t.Errorf("%s: %s", kind, f)
			}
		}
	}
	sortFindings(leftOther)
	for _, f := range leftOther[:min(len(leftOther), 5)] {
		t.Logf("not an error: %s\n%s", f, s.evidence(c, f.k, logs))
	}
	report("WRONG", wrong)
	report("WRONG CONTENT", wrongContent)
	report("MISSED", missed)
	report("NOT IN THE TRASH", notTrashed)
	report("unexplained failed deletion", unexplained)
	if n := s.cleaner.unexpectedExits.Load(); n > 0 {
		t.Errorf("the cleaner exited on its own %d times (see the logs above)", n)
	}
	for _, k := range faultKinds {
		if s.faults[k].Load() < int64(*soakMinFaults) {
			t.Errorf("%s: %d faults, want at least %d", k, s.faults[k].Load(), *soakMinFaults)
		}
	}
	for _, k := range rerefKinds {
		if n := s.rerefs[k].times.Load(); n < int64(*soakMinRerefs) {
			t.Errorf("%s: made %d times, want at least %d", k, n, *soakMinRerefs)
		}
	}
	if s.committed.Load() == 0 || s.rolledBack.Load() == 0 || gone == 0 || len(neverCommitted) == 0 {
		t.Errorf("the workload did too little to prove anything: %d committed, %d rolled back, %d deletions expected, %d never-committed files",
			s.committed.Load(), s.rolledBack.Load(), gone, len(neverCommitted))
	}
}

// evidence is what the journal and the cleaner's logs (of every run the
// supervisor started) say of k, for a finding.
func (s *soak) evidence(c *pgx.Conn, k fileKey, logs string) string {
	b := &strings.Builder{}
	fmt.Fprintf(b, "    journal of %s:%s (id event location source xid commit_lsn at detail):\n", k.storage, k.path)
	for _, e := range s.journalOf(c, k) {
		fmt.Fprintf(b, "      %d %s %q %s %d %s %s %q\n", e.id, e.event, e.location, e.source, e.xid, e.lsnText, clock(e.at), e.detail)
	}
	s.mu.Lock()
	up, ok := s.uploads[k]
	s.mu.Unlock()
	if ok {
		end := up.written
		if up.recreated.After(end) {
			end = up.recreated
		}
		fmt.Fprintf(b, "    last re-upload (%d): row deleted (committed) %s, upload written %s to %s, row re-created (committed) %s; faults near:\n%s",
			up.n, clock(up.deleted), clock(up.writing), clock(up.written), clock(up.recreated), s.windowsNear(up.deleted, end))
	}
	fmt.Fprintf(b, "    cleaner log lines naming it:\n")
	n := 0
	for line := range strings.Lines(logs) {
		if strings.Contains(line, `"`+k.path+`"`) || strings.Contains(line, " "+k.path+":") || strings.Contains(line, " "+k.path+",") {
			if n++; n > 20 {
				b.WriteString("      ...\n")
				break
			}
			b.WriteString("      " + line)
		}
	}
	return b.String()
}

// journalEntry is one row of cdc_cleaner.journal.
type journalEntry struct {
	id, xid                         int64
	event, location, source, detail string
	lsn                             int64 // commit_lsn, as a number
	lsnText                         string
	at                              time.Time
}

// journalOf returns the journal of k in the order it was written.
func (s *soak) journalOf(c *pgx.Conn, k fileKey) []journalEntry {
	rows, err := c.Query(context.Background(), `SELECT id, coalesce(xid, 0), event, location, source, detail,
			(commit_lsn - '0/0')::bigint, commit_lsn::text, at
		FROM cdc_cleaner.journal WHERE md5(path)::uuid = md5($2)::uuid AND path = $2 AND storage = $1 ORDER BY id`, k.storage, k.path)
	if err != nil {
		s.t.Errorf("read the journal of %s:%s: %v", k.storage, k.path, err)
		return nil
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (journalEntry, error) {
		var e journalEntry
		err := r.Scan(&e.id, &e.xid, &e.event, &e.location, &e.source, &e.detail, &e.lsn, &e.lsnText, &e.at)
		return e, err
	})
	if err != nil {
		s.t.Errorf("read the journal of %s:%s: %v", k.storage, k.path, err)
	}
	return out
}

// How an orphan came back, by its journal.
const (
	restoredOther = iota
	// restoredSameTx: the last entry restores it, at the commit of the
	// transaction whose removal it answers (same LSN and xid), and no
	// later removal was journaled: the transaction referenced the path
	// and then removed it (a row inserted or updated, then deleted or
	// updated again), and the restore took the reference for the newer.
	restoredSameTx
	// restoredOutOfOrder: the last entry restores it for a reference
	// older than a removal journaled before it: the re-reference was
	// handled after a later removal of the path, and brought back what
	// that removal trashed.
	restoredOutOfOrder
)

func classifyRestore(j []journalEntry) int {
	if len(j) == 0 || j[len(j)-1].event != "restored" {
		return restoredOther
	}
	last := j[len(j)-1]
	sameTx := false
	for _, e := range j[:len(j)-1] {
		if e.event != "trashed" && e.event != "deleted" && e.event != "absent" {
			continue
		}
		if e.lsn > last.lsn {
			return restoredOutOfOrder
		}
		if e.lsn == last.lsn && e.xid == last.xid {
			sameTx = true
		}
	}
	if sameTx {
		return restoredSameTx
	}
	return restoredOther
}

// supervisor keeps one `cdc-cleaner run` going, like systemd with
// Restart=always, and tells exits the suite caused from the others.
type supervisor struct {
	t  *testing.T
	e  *env
	mu sync.Mutex
	p  *proc

	stopping                        bool
	explainedExits, unexpectedExits atomic.Int32
	wg                              sync.WaitGroup
	down                            [][2]time.Time  // when PostgreSQL was restarting
	past                            strings.Builder // logs of the runs that ended
}

// allLogs returns the logs of every run so far, oldest first.
func (s *supervisor) allLogs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.past.String()
	if s.p != nil {
		out += s.p.Logs()
	}
	return out
}

// databaseDown records that PostgreSQL begins (true) or ends (false) a
// restart.
func (s *supervisor) databaseDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if down {
		s.down = append(s.down, [2]time.Time{time.Now()})
	} else if n := len(s.down); n > 0 {
		s.down[n-1][1] = time.Now()
	}
}

// overlapsDowntimeLocked reports whether [from, to] meets a restart of the
// database (one still going on included), give or take the few seconds a
// connection takes to notice.
func (s *supervisor) overlapsDowntimeLocked(from, to time.Time) bool {
	const slack = 5 * time.Second
	for _, d := range s.down {
		end := d[1]
		if end.IsZero() {
			end = time.Now()
		}
		if from.Before(end.Add(slack)) && to.After(d[0].Add(-slack)) {
			return true
		}
	}
	return false
}

func newSupervisor(t *testing.T, e *env) *supervisor {
	s := &supervisor{t: t, e: e}
	s.mu.Lock()
	s.startLocked()
	s.mu.Unlock()
	return s
}

// startLocked starts the cleaner and a goroutine that restarts it if it
// exits by itself.
func (s *supervisor) startLocked() {
	started := time.Now()
	p := s.e.start()
	s.p = p
	s.wg.Go(func() {
		<-p.done
		exited := time.Now()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.past.WriteString(p.Logs())
		if s.p != p || s.stopping {
			return // killed or stopped by the suite
		}
		code := p.cmd.ProcessState.ExitCode()
		logs := p.Logs()
		// run refuses to start (exit 2, "database not ready") when the
		// database is down or goes down while it inspects it: the
		// supervisor, like systemd's Restart=on-failure, starts it again.
		// Any other exit, or one while the database was up, is a failure.
		if code == 2 && s.overlapsDowntimeLocked(started, exited) {
			s.explainedExits.Add(1)
		} else {
			s.unexpectedExits.Add(1)
			s.t.Errorf("cdc-cleaner exited by itself with code %d:\n%s", code, tail(logs, 30))
		}
		time.Sleep(500 * time.Millisecond)
		if !s.stopping {
			s.startLocked()
		}
	})
}

// kill9 kills the cleaner with SIGKILL and starts it again after pause.
func (s *supervisor) kill9(pause time.Duration) {
	s.mu.Lock()
	p := s.p
	s.p = nil
	s.mu.Unlock()
	if p != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
	time.Sleep(pause)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopping && s.p == nil {
		s.startLocked()
	}
}

func (s *supervisor) ensureRunning() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		s.startLocked()
	}
}

func (s *supervisor) stop() {
	s.mu.Lock()
	s.stopping = true
	p := s.p
	s.mu.Unlock()
	if p != nil {
		p.stop()
	}
	s.wg.Wait()
}
