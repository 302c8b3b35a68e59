package integration_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Re-references in the fault suite (promise 7): a path vanishes in one
// committed transaction and a later one references it again, as
// applications do. Whichever way each race goes (the reference check sees
// the new row, or the file is removed and restored, or a new upload is
// found at the path), the final check wants every referenced file present,
// with the content last uploaded there.

const (
	rerefResync   = "re-sync: rows deleted, re-created with the same paths in a later transaction"
	rerefStale    = "stale full-row save writing back a path another transaction just replaced"
	rerefReupload = "same-key re-upload: row deleted, new content at its path, row re-created"
)

var rerefKinds = []string{rerefResync, rerefStale, rerefReupload}

// rerefCount counts the re-references of one kind whose last transaction
// committed for certain, and the paths they referenced again.
type rerefCount struct {
	times, paths atomic.Int64
	// lost: for same-key re-uploads, those whose row did not come back
	// (the transaction re-creating it failed, or writing the upload did).
	lost atomic.Int64
}

// upload is the content a same-key re-upload last wrote at a path.
type upload struct {
	n       int64 // its number, in wl_reupload when its row came back
	content string
	failed  bool // writing it failed: what the path holds is unknown
	// When the row was deleted, the upload written (from, to) and the row
	// re-created (zero if that did not commit for certain), for evidence.
	deleted, writing, written, recreated time.Time
}

// errNothing ends a re-reference that found nothing to do: its
// transaction is rolled back and not counted.
var errNothing = errors.New("nothing to re-reference")

// rereference runs one re-reference of a random kind, on photos (local
// storage) or documents (S3).
func (s *soak) rereference(ctx context.Context, c *pgx.Conn, rng *rand.Rand, w int) error {
	docs := rng.IntN(3) == 0
	switch rng.IntN(3) {
	case 0:
		return s.resync(ctx, c, rng, w, docs)
	case 1:
		return s.staleSave(ctx, c, rng, w, docs)
	default:
		return s.reupload(ctx, c, rng, w, docs)
	}
}

// inTx runs fn in a transaction of its own and commits it. errNothing from
// fn rolls it back and is returned as is.
func (s *soak) inTx(ctx context.Context, c *pgx.Conn, w int, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err // the run is over
	}
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		return s.count(c, w, err)
	}
	if err := fn(); err != nil {
		if errors.Is(err, errNothing) {
			if _, rerr := c.Exec(ctx, "ROLLBACK"); rerr != nil {
				return s.count(c, w, rerr)
			}
			return err
		}
		return s.count(c, w, err)
	}
	if _, err := c.Exec(ctx, "COMMIT"); err != nil {
		return s.count(c, w, err)
	}
	s.committed.Add(1)
	return nil
}

// rerefPause is how long an application takes to come back to a path: a
// third of the time less than the cleaner needs to remove it (its
// reference check sees the path back), a third about as long, a third
// longer (it removed the file first, whose re-reference must restore it).
func rerefPause(rng *rand.Rand) time.Duration {
	switch rng.IntN(3) {
	case 0:
		return time.Duration(rng.IntN(20)) * time.Millisecond
	case 1:
		return time.Duration(20+rng.IntN(300)) * time.Millisecond
	default:
		return time.Duration(300+rng.IntN(700)) * time.Millisecond
	}
}

// row is a photo (image and thumbnail) or a document (its file in image).
type row struct {
	id           int64
	title        string
	image, thumb string
}

func scanRow(r pgx.CollectableRow) (row, error) {
	var x row
	err := r.Scan(&x.id, &x.title, &x.image, &x.thumb)
	return x, err
}

// deleteRows deletes the rows ids and returns what they held.
func deleteRows(ctx context.Context, c *pgx.Conn, docs bool, ids []int64) ([]row, error) {
	q := `DELETE FROM gallery_photo WHERE id = ANY($1) RETURNING id, title, image, thumbnail`
	if docs {
		q = `DELETE FROM docs_document WHERE id = ANY($1) RETURNING id, ''::text, file, ''::text`
	}
	rows, err := c.Query(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanRow)
}

// insertRow creates x again, with its id.
func insertRow(ctx context.Context, c *pgx.Conn, docs bool, x row) error {
	if docs {
		_, err := c.Exec(ctx, `INSERT INTO docs_document (id, file) VALUES ($1, $2)`, x.id, x.image)
		return err
	}
	_, err := c.Exec(ctx, `INSERT INTO gallery_photo (id, title, image, thumbnail) VALUES ($1, $2, $3, $4)`, x.id, x.title, x.image, x.thumb)
	return err
}

func storageOf(docs bool) string {
	if docs {
		return "docs"
	}
	return "media"
}

func tableOf(docs bool) string {
	if docs {
		return "docs_document"
	}
	return "gallery_photo"
}

// counted records a re-reference of kind that committed, and the paths of
// storage it referenced again that are files the workload created.
func (s *soak) counted(kind, storage string, paths ...string) {
	n := 0
	s.mu.Lock()
	for _, p := range paths {
		if s.created[fileKey{storage, p}] {
			n++
		}
	}
	s.mu.Unlock()
	s.rerefs[kind].times.Add(1)
	s.rerefs[kind].paths.Add(int64(n))
}

// resync deletes a few rows and, shortly after, in a transaction of its
// own, creates them again with the same ids and paths: a job that rebuilds
// a table from another source.
func (s *soak) resync(ctx context.Context, c *pgx.Conn, rng *rand.Rand, w int, docs bool) error {
	var gone []row
	err := s.inTx(ctx, c, w, func() error {
		var ids []int64
		for range 1 + rng.IntN(4) {
			id, err := randomRow(ctx, c, tableOf(docs), rng)
			if err != nil {
				return err
			}
			if id != 0 && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return errNothing
		}
		var err error
		gone, err = deleteRows(ctx, c, docs, ids)
		return err
	})
	if err != nil {
		return err
	}
	sleep(ctx, rerefPause(rng))
	err = s.inTx(ctx, c, w, func() error {
		for _, x := range gone {
			if err := insertRow(ctx, c, docs, x); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var paths []string
	for _, x := range gone {
		paths = append(paths, x.image, x.thumb)
	}
	s.counted(rerefResync, storageOf(docs), paths...)
	return nil
}

// staleSave loads a row, lets another transaction replace its file, then
// saves the loaded row with every field, as Django's save() does: the
// replaced path is written back, and the new file is orphaned.
func (s *soak) staleSave(ctx context.Context, c *pgx.Conn, rng *rand.Rand, w int, docs bool) error {
	storage, table := storageOf(docs), tableOf(docs)
	q := `SELECT id, title, image, thumbnail FROM gallery_photo WHERE id >= (SELECT floor(max(id) * $1::float8) FROM gallery_photo) AND image <> '' ORDER BY id LIMIT 1`
	if docs {
		q = `SELECT id, ''::text, file, ''::text FROM docs_document WHERE id >= (SELECT floor(max(id) * $1::float8) FROM docs_document) ORDER BY id LIMIT 1`
	}
	rows, err := c.Query(ctx, q, rng.Float64())
	if err != nil {
		return s.count(c, w, err)
	}
	loaded, err := pgx.CollectExactlyOneRow(rows, scanRow)
	if errors.Is(err, pgx.ErrNoRows) {
		return errNothing
	}
	if err != nil {
		return s.count(c, w, err)
	}
	s.mu.Lock()
	ours := s.created[fileKey{storage, loaded.image}]
	s.mu.Unlock()
	if !ours {
		return errNothing // a hostile path or the default file
	}
	// Another process replaces the file and saves, while the row still
	// holds the path the instance loaded.
	err = s.inTx(ctx, c, w, func() error {
		col := "image"
		if docs {
			col = "file"
		}
		var cur string
		err := c.QueryRow(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE id = $1 FOR UPDATE`, col, table), loaded.id).Scan(&cur)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && cur != loaded.image {
			return errNothing
		}
		if err != nil {
			return err
		}
		p, err := s.place(ctx, c, storage, rng)
		if err != nil {
			return err
		}
		_, err = c.Exec(ctx, fmt.Sprintf(`UPDATE %s SET %s = $1 WHERE id = $2`, table, col), p, loaded.id)
		return err
	})
	if err != nil {
		return err
	}
	sleep(ctx, rerefPause(rng))
	// The stale instance is saved.
	var saved int64
	err = s.inTx(ctx, c, w, func() error {
		var tag interface{ RowsAffected() int64 }
		var err error
		if docs {
			tag, err = c.Exec(ctx, `UPDATE docs_document SET file = $2 WHERE id = $1`, loaded.id, loaded.image)
		} else {
			tag, err = c.Exec(ctx, `UPDATE gallery_photo SET title = $2, image = $3, thumbnail = $4 WHERE id = $1`,
				loaded.id, loaded.title, loaded.image, loaded.thumb)
		}
		if err == nil {
			saved = tag.RowsAffected()
		}
		return err
	})
	if err != nil {
		return err
	}
	if saved == 1 { // the row may have been deleted meanwhile
		s.counted(rerefStale, storage, loaded.image)
	}
	return nil
}

// reupload deletes a row, writes new content under the name its file had,
// and creates the row again: a deterministic name (avatars/42.jpg), or
// django-storages overwriting a key. The content last written must be what
// the path holds at the end, whether the cleaner removed the new upload
// before the row came back (the restore brings it back) or the old file
// (the restore finds the path taken and leaves the new upload).
func (s *soak) reupload(ctx context.Context, c *pgx.Conn, rng *rand.Rand, w int, docs bool) error {
	storage := storageOf(docs)
	var x row
	var k fileKey
	claimed := false
	defer func() {
		if claimed {
			s.mu.Lock()
			delete(s.busy, k)
			s.mu.Unlock()
		}
	}()
	err := s.inTx(ctx, c, w, func() error {
		id, err := randomRow(ctx, c, tableOf(docs), rng)
		if err != nil {
			return err
		}
		if id == 0 {
			return errNothing
		}
		gone, err := deleteRows(ctx, c, docs, []int64{id})
		if err != nil {
			return err
		}
		if len(gone) != 1 {
			return errNothing
		}
		x, k = gone[0], fileKey{storage, gone[0].image}
		// One re-upload of a path at a time, so that the last one
		// written is the last one whose row came back.
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.created[k] || s.busy[k] {
			return errNothing
		}
		s.busy[k], claimed = true, true
		return nil
	})
	if err != nil {
		return err
	}
	deleted := time.Now()
	sleep(ctx, rerefPause(rng))
	n := s.seq.Add(1)
	if err := s.upload(ctx, k, upload{n: n, content: fmt.Sprintf("re-upload %d of %s", n, k.path), deleted: deleted}); err != nil {
		s.rerefs[rerefReupload].lost.Add(1)
		if s.errs.Add(1) <= 5 {
			s.t.Logf("workload %d: re-upload %s: %v", w, k.path, err)
		}
		return err
	}
	// The cleaner may remove the new upload before the row comes back.
	sleep(ctx, rerefPause(rng))
	err = s.inTx(ctx, c, w, func() error {
		if _, err := c.Exec(ctx, `INSERT INTO wl_reupload VALUES ($1, $2, $3)`, k.storage, k.path, n); err != nil {
			return err
		}
		return insertRow(ctx, c, docs, x)
	})
	if err != nil {
		s.rerefs[rerefReupload].lost.Add(1)
		return err
	}
	s.mu.Lock()
	if up := s.uploads[k]; up.n == n {
		up.recreated = time.Now()
		s.uploads[k] = up
	}
	s.mu.Unlock()
	s.counted(rerefReupload, storage, k.path)
	return nil
}

// upload writes up.content at k and remembers up as what k holds now. A
// directory made read-only by a fault is waited for.
func (s *soak) upload(ctx context.Context, k fileKey, up upload) error {
	up.writing = time.Now()
	var err error
	for attempt := 0; attempt < 100; attempt++ {
		if err = s.writeFile(k.storage, k.path, []byte(up.content)); err == nil || !errors.Is(err, fs.ErrPermission) || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	up.written, up.failed = time.Now(), err != nil
	s.mu.Lock()
	s.uploads[k] = up
	s.mu.Unlock()
	return err
}

// content returns what k holds now, or ok false when it does not exist.
func (s *soak) content(k fileKey) (string, bool) {
	if k.storage == "docs" {
		if !s.srv.Exists(s.t, s.docsPrefix+k.path) {
			return "", false
		}
		return string(s.srv.Get(s.t, s.docsPrefix+k.path)), true
	}
	b, err := os.ReadFile(filepath.Join(s.e.root, filepath.FromSlash(k.path)))
	if err != nil {
		return "", false
	}
	return string(b), true
}
