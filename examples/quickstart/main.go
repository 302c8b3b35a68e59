// Command quickstart shows cdc-cleaner working end to end on this machine:
// it starts a throwaway PostgreSQL with wal_level=logical, creates a
// Django-style table, puts files in a local folder, runs the real
// cdc-cleaner binary (setup, then run) and makes the changes a Django
// application would make, showing after each which files are left.
//
//	go run ./examples/quickstart            (or: make quickstart)
//
// Everything it creates lives in a temporary directory and is removed at the
// end; pass -keep to leave it for a look.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cdc-cleaner/cdc-cleaner/integration_test/pgtest"
)

func main() {
	keep := flag.Bool("keep", false, "keep the temporary directory (media folder, config, logs) at the end")
	flag.Parse()
	if err := run(*keep); err != nil {
		fmt.Fprintf(os.Stderr, "quickstart: %v\n", err)
		os.Exit(1)
	}
}

const schema = `
-- What Django's migrate creates for:
--   class Photo(models.Model):
--       title = models.CharField(max_length=200)
--       image = models.ImageField(upload_to="photos/")
--       thumbnail = models.ImageField(upload_to="thumbs/", blank=True)
--   class Post(models.Model):
--       cover = models.ImageField(upload_to="photos/", blank=True)
CREATE TABLE gallery_photo (
    id bigserial PRIMARY KEY,
    title varchar(200) NOT NULL,
    image varchar(100) NOT NULL,
    thumbnail varchar(100) NOT NULL
);
CREATE INDEX ON gallery_photo (image);
CREATE INDEX ON gallery_photo (thumbnail);
CREATE TABLE blog_post (id bigserial PRIMARY KEY, cover varchar(100) NOT NULL);
CREATE INDEX ON blog_post (cover);
INSERT INTO gallery_photo (title, image, thumbnail) VALUES
    ('Beach',    'photos/beach.jpg',    'thumbs/beach.jpg'),
    ('Mountain', 'photos/mountain.jpg', 'thumbs/mountain.jpg'),
    ('Forest',   'photos/forest.jpg',   ''),
    ('Lake',     'photos/lake.jpg',     '');
INSERT INTO blog_post (cover) VALUES ('photos/lake.jpg');
`

var files = []string{
	"photos/beach.jpg", "thumbs/beach.jpg", "photos/mountain.jpg", "thumbs/mountain.jpg",
	"photos/forest.jpg", "photos/lake.jpg", "photos/beach-v2.jpg",
}

func run(keep bool) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "cdc-cleaner-quickstart-")
	if err != nil {
		return err
	}
	if keep {
		defer fmt.Printf("\nkept %s (media/, cdc-cleaner.yaml, cleaner.log)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	step("Starting a throwaway PostgreSQL with wal_level=logical")
	cluster, err := pgtest.Start(ctx)
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	defer cluster.Stop()
	admin := cluster.URL("postgres")
	if err := exec1(ctx, admin, "CREATE DATABASE app"); err != nil {
		return err
	}
	url := cluster.URL("app")
	fmt.Printf("  database: %s\n", url)

	step("Creating a Django-style schema (gallery_photo, blog_post) and the uploaded files")
	if err := exec1(ctx, url, schema); err != nil {
		return err
	}
	media := filepath.Join(dir, "media")
	for _, f := range files {
		full := filepath.Join(media, f)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte("image bytes of "+f), 0o644); err != nil {
			return err
		}
	}
	show(media)

	step("Writing cdc-cleaner.yaml")
	cfgPath := filepath.Join(dir, "cdc-cleaner.yaml")
	cfg := fmt.Sprintf(`postgres:
  url: %s
  status_interval: 1s
storages:
  media:
    type: local
    root: %s
    prune_empty_dirs: false
watch:
  - table: public.gallery_photo
    columns: [image, thumbnail]
    storage: media
  - table: public.blog_post
    columns: [cover]
    storage: media
http:
  listen: ""
log:
  level: debug
  format: console
`, url, media)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	fmt.Print(indent(cfg))

	step("Building cdc-cleaner")
	bin, err := pgtest.BuildBinary(dir)
	if err != nil {
		return err
	}

	step("cdc-cleaner setup   (publication, REPLICA IDENTITY FULL, cdc_cleaner schema, slot)")
	out, err := exec.Command(bin, "setup", "--config", cfgPath).CombinedOutput()
	fmt.Print(indent(string(out)))
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}

	step("cdc-cleaner run     (in the background; its log lines are prefixed with │)")
	logFile, err := os.Create(filepath.Join(dir, "cleaner.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cleaner := exec.Command(bin, "run", "--config", cfgPath)
	stderr, err := cleaner.StderrPipe()
	if err != nil {
		return err
	}
	if err := cleaner.Start(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(io.TeeReader(stderr, logFile))
		for sc.Scan() {
			fmt.Printf("    │ %s\n", sc.Text())
		}
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cleaner.Process.Signal(syscall.SIGTERM)
			cleaner.Wait()
			wg.Wait()
		}
	}
	defer stop()

	scenes := []struct{ title, sql, expect string }{
		{"A user uploads a new beach photo: Django saves the row, the old file stays behind",
			`UPDATE gallery_photo SET image = 'photos/beach-v2.jpg' WHERE title = 'Beach'`,
			"photos/beach.jpg goes to .trash/ (trash is on by default: the undo window); photos/beach-v2.jpg stays"},
		{"A user deletes the Mountain photo",
			`DELETE FROM gallery_photo WHERE title = 'Mountain'`,
			"photos/mountain.jpg and thumbs/mountain.jpg go to .trash/"},
		{"A request deletes the Forest photo but its transaction rolls back",
			`BEGIN; DELETE FROM gallery_photo WHERE title = 'Forest'; ROLLBACK`,
			"nothing is deleted: only committed changes reach the slot"},
		{"The Lake photo is deleted, but a blog post still uses the same file",
			`DELETE FROM gallery_photo WHERE title = 'Lake'`,
			"photos/lake.jpg stays: the reference check finds blog_post.cover"},
		{"The blog post changes its cover: the last reference to lake.jpg goes",
			`UPDATE blog_post SET cover = 'photos/forest.jpg'`,
			"photos/lake.jpg goes to .trash/; photos/forest.jpg stays (two rows use it)"},
		{"A re-sync job re-creates the Mountain photo with the same paths, in a later transaction",
			`INSERT INTO gallery_photo (title, image, thumbnail) VALUES ('Mountain', 'photos/mountain.jpg', 'thumbs/mountain.jpg')`,
			"photos/mountain.jpg and thumbs/mountain.jpg come back from .trash/: a file referenced again is restored"},
	}
	for _, s := range scenes {
		step(s.title)
		fmt.Printf("  SQL: %s\n  expect: %s\n", s.sql, s.expect)
		if err := exec1(ctx, url, s.sql); err != nil {
			return err
		}
		if err := waitSettled(ctx, url, "cdc_cleaner", time.Minute); err != nil {
			return err
		}
		show(media)
	}

	step("cdc-cleaner history photos/mountain.jpg     (what the journal knows of a path)")
	out, err = exec.Command(bin, "history", "--config", cfgPath, "photos/mountain.jpg").CombinedOutput()
	fmt.Print(indent(string(out)))
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}

	step("Stopping the cleaner (SIGTERM) and dropping slot and publication (cdc-cleaner teardown)")
	stop()
	out, err = exec.Command(bin, "teardown", "--config", cfgPath).CombinedOutput()
	fmt.Print(indent(string(out)))
	if err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	fmt.Println("\nDone. Point cdc-cleaner.yaml at your own database and media folder, then run `cdc-cleaner setup` and `cdc-cleaner run`.")
	return nil
}

func step(s string) { fmt.Printf("\n==> %s\n", s) }

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

// show lists the files under root.
func show(root string) {
	var found []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			found = append(found, rel)
		}
		return nil
	})
	sort.Strings(found)
	fmt.Printf("  files in media/ (%d): %s\n", len(found), strings.Join(found, ", "))
}

func exec1(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// waitSettled writes a WAL barrier and waits until the slot confirmed past
// it: the cleaner confirms an LSN only once every transaction before it is
// settled, so the files shown afterwards are its final answer.
func waitSettled(ctx context.Context, url, slot string, timeout time.Duration) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var barrier string
	if err := conn.QueryRow(ctx, `SELECT pg_logical_emit_message(false, 'quickstart', '')::text`).Scan(&barrier); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var done bool
		err := conn.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn >= $1::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = $2`, barrier, slot).Scan(&done)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the cleaner did not settle within %s", timeout)
}
