package integration_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUpdateAndDeleteRemoveOrphans(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("photos/a.jpg", "photos/a_thumb.jpg", "photos/b.jpg", "photos/b_thumb.jpg", "photos/new.jpg", "photos/keep.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image, thumbnail) VALUES
		(1, 'photos/a.jpg', 'photos/a_thumb.jpg'), (2, 'photos/b.jpg', 'photos/b_thumb.jpg'), (3, 'photos/keep.jpg', '')`)
	e.start()
	e.exec(`UPDATE gallery_photo SET image = 'photos/new.jpg' WHERE id = 1`)
	e.exec(`DELETE FROM gallery_photo WHERE id = 2`)
	e.exec(`UPDATE gallery_photo SET title = 'renamed' WHERE id = 3`)
	e.settle()
	e.expect(
		[]string{"photos/a_thumb.jpg", "photos/new.jpg", "photos/keep.jpg"},
		[]string{"photos/a.jpg", "photos/b.jpg", "photos/b_thumb.jpg"})
	// Clearing a FileField stores '' (Django); the old file goes.
	e.exec(`UPDATE gallery_photo SET thumbnail = '' WHERE id = 1`)
	e.settle()
	e.expect([]string{"photos/new.jpg"}, []string{"photos/a_thumb.jpg"})
	if f := e.failed(); len(f) != 0 {
		t.Errorf("failed_deletions: %v", f)
	}
}

func TestRollbacksNeverDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	files := []string{"rb/full.jpg", "rb/savepoint.jpg", "rb/prepared.jpg", "rb/committed_prepared.jpg", "rb/outer.jpg"}
	e.put(files...)
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (1, 'rb/full.jpg'), (2, 'rb/savepoint.jpg'),
		(3, 'rb/prepared.jpg'), (4, 'rb/committed_prepared.jpg'), (5, 'rb/outer.jpg')`)
	e.start()

	e.exec(`BEGIN; DELETE FROM gallery_photo WHERE id = 1; UPDATE gallery_photo SET image = '' WHERE id = 5; ROLLBACK`)
	// The savepoint's delete is rolled back; the outer transaction commits
	// another change.
	e.exec(`BEGIN; UPDATE gallery_photo SET title = 'outer' WHERE id = 5;
		SAVEPOINT s; DELETE FROM gallery_photo WHERE id = 2; ROLLBACK TO SAVEPOINT s; COMMIT`)
	e.exec(`BEGIN; DELETE FROM gallery_photo WHERE id = 3; PREPARE TRANSACTION 'tx_rollback'`)
	e.exec(`ROLLBACK PREPARED 'tx_rollback'`)
	e.exec(`BEGIN; DELETE FROM gallery_photo WHERE id = 4; PREPARE TRANSACTION 'tx_commit'`)
	e.exec(`COMMIT PREPARED 'tx_commit'`)
	e.settle()
	e.expect([]string{"rb/full.jpg", "rb/savepoint.jpg", "rb/prepared.jpg", "rb/outer.jpg"}, []string{"rb/committed_prepared.jpg"})
}

func TestSharedReferencesKeepFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{
		schema: photoSchema + `
			CREATE TABLE blog_post (id serial PRIMARY KEY, cover text);
			CREATE TABLE legacy_upload (id serial PRIMARY KEY, file text);`,
		watch: photoWatch + `
  - table: blog_post
    columns: [cover]
    storage: media
protect:
  - table: legacy_upload
    columns: [file]
    storage: media`,
	})
	e.put("s/same_table.jpg", "s/other_table.jpg", "s/protected.jpg", "s/other_column.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image, thumbnail) VALUES
		(1, 's/same_table.jpg', 's/other_column.jpg'), (2, 's/same_table.jpg', ''),
		(3, 's/other_table.jpg', ''), (4, 's/protected.jpg', ''), (5, 's/other_column.jpg', '')`)
	e.exec(`INSERT INTO blog_post (cover) VALUES ('s/other_table.jpg')`)
	e.exec(`INSERT INTO legacy_upload (file) VALUES ('s/protected.jpg')`)
	e.start()
	e.exec(`DELETE FROM gallery_photo WHERE id IN (1, 3, 4)`)
	e.settle()
	all := []string{"s/same_table.jpg", "s/other_table.jpg", "s/protected.jpg", "s/other_column.jpg"}
	e.expect(all, nil)

	// Once the last reference goes, so does the file; protect columns never
	// trigger deletion.
	e.exec(`DELETE FROM gallery_photo WHERE id = 2`)
	e.exec(`DELETE FROM blog_post`)
	e.exec(`UPDATE gallery_photo SET image = '' WHERE id = 5`)
	e.exec(`DELETE FROM legacy_upload`)
	e.settle()
	e.expect([]string{"s/protected.jpg"}, []string{"s/same_table.jpg", "s/other_table.jpg", "s/other_column.jpg"})
}

func TestSwapsAndMovesInOneTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	e.put("sw/a.jpg", "sw/b.jpg", "sw/moved.jpg", "sw/col.jpg", "sw/col2.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image, thumbnail) VALUES
		(1, 'sw/a.jpg', ''), (2, 'sw/b.jpg', ''), (3, 'sw/moved.jpg', ''), (4, 'sw/col.jpg', 'sw/col2.jpg')`)
	e.start()
	e.exec(`BEGIN;
		UPDATE gallery_photo SET image = 'sw/b.jpg' WHERE id = 1;
		UPDATE gallery_photo SET image = 'sw/a.jpg' WHERE id = 2;
		DELETE FROM gallery_photo WHERE id = 3;
		INSERT INTO gallery_photo (id, image) VALUES (30, 'sw/moved.jpg');
		UPDATE gallery_photo SET image = thumbnail, thumbnail = image WHERE id = 4;
		COMMIT`)
	e.settle()
	e.expect([]string{"sw/a.jpg", "sw/b.jpg", "sw/moved.jpg", "sw/col.jpg", "sw/col2.jpg"}, nil)
}

func TestHostilePathsStayConfined(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	// Files outside the root that hostile rows point at.
	secret := filepath.Join(e.outside, "secret.txt")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A symlink inside the root pointing outside, and a symlinked directory
	// leading outside.
	if err := os.Symlink(secret, filepath.Join(e.root, "link_to_secret")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(e.outside, filepath.Join(e.root, "evil_dir")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.root, "a_directory"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.put("a_directory/inside.jpg", "ok.jpg")
	hostile := map[string]string{
		"../outside/secret.txt":      "rejected_path",
		"a/../../outside/secret.txt": "rejected_path",
		secret:                       "rejected_path", // absolute
		"evil_dir/secret.txt":        "escapes_root",
		"a_directory":                "is_directory",
		"./ok.jpg":                   "rejected_path", // not canonical
		"photos//ok.jpg":             "rejected_path",
	}
	id := 0
	for p := range hostile {
		id++
		e.exec(`INSERT INTO gallery_photo (id, image) VALUES ($1, $2)`, id, p)
	}
	e.exec(`INSERT INTO gallery_photo (id, image) VALUES (100, 'link_to_secret'), (101, 'ok.jpg')`)
	e.start()
	e.exec(`DELETE FROM gallery_photo`)
	e.settle()

	if b, err := os.ReadFile(secret); err != nil || string(b) != "secret" {
		t.Fatalf("file outside the root was touched: %q, %v", b, err)
	}
	// The link inside the root is removed as a link; its target stays.
	e.expect([]string{"a_directory/inside.jpg", "evil_dir"}, []string{"link_to_secret", "ok.jpg"})
	failed := e.failed()
	for p, reason := range hostile {
		if got, ok := failed[p]; !ok || got != reason {
			t.Errorf("failed_deletions[%q] = %q (recorded %v), want %q", p, got, ok, reason)
		}
	}
	if len(failed) != len(hostile) {
		t.Errorf("failed_deletions has %d rows, want %d: %v", len(failed), len(hostile), failed)
	}
}

func TestUnicodeAndSpaces(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch})
	names := []string{"fotos/été 2024/ünïcode ✓.jpg", "docs/with space.pdf", "日本語/ファイル.png", "emoji/🐘 elephant.gif"}
	keep := []string{"fotos/été 2024/ünïcode ✓ (copy).jpg", "docs/with  space.pdf"}
	e.put(append(names, keep...)...)
	for i, n := range names {
		e.exec(`INSERT INTO gallery_photo (id, image) VALUES ($1, $2)`, i+1, n)
	}
	e.start()
	e.exec(`DELETE FROM gallery_photo`)
	e.settle()
	e.expect(keep, names)
}

func TestQuotedMixedCaseNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{
		schema: `CREATE SCHEMA "Media Schema";
			CREATE TABLE "Media Schema"."PhotoTable" (id int PRIMARY KEY, "ImageFile" text, "Other" text);`,
		watch: `watch:
  - table: '"Media Schema"."PhotoTable"'
    columns: ['"ImageFile"']
    storage: media`,
	})
	e.put("m/one.jpg", "m/two.jpg", "m/other.jpg")
	e.exec(`INSERT INTO "Media Schema"."PhotoTable" VALUES (1, 'm/one.jpg', 'm/other.jpg'), (2, 'm/two.jpg', NULL)`)
	e.start()
	e.exec(`UPDATE "Media Schema"."PhotoTable" SET "ImageFile" = NULL, "Other" = NULL WHERE id = 1`)
	e.exec(`DELETE FROM "Media Schema"."PhotoTable" WHERE id = 2`)
	e.settle()
	e.expect([]string{"m/other.jpg"}, []string{"m/one.jpg", "m/two.jpg"})
}

func TestToastedValuesUnchanged(t *testing.T) {
	t.Parallel()
	// A path long enough to be TOASTed out of line (STORAGE EXTERNAL, over
	// 2 kB), and a large unwatched column: an UPDATE of another column
	// sends both as "unchanged TOAST", which must not read as vanished.
	e := newEnv(t, envOptions{
		schema: `CREATE TABLE doc (id int PRIMARY KEY, title text, file text, body text);
			ALTER TABLE doc ALTER COLUMN file SET STORAGE EXTERNAL;
			ALTER TABLE doc ALTER COLUMN body SET STORAGE EXTERNAL;`,
		watch: `watch:
  - table: doc
    columns: [file]
    storage: media`,
	})
	var parts []string
	for i := 0; i < 24; i++ {
		parts = append(parts, strings.Repeat(string(rune('a'+i)), 100))
	}
	long := strings.Join(parts, "/") + "/f.jpg"
	e.put(long, "short.jpg")
	e.exec(`INSERT INTO doc VALUES (1, 't', $1, repeat('x', 100000)), (2, 't', 'short.jpg', repeat('y', 100000))`, long)
	e.start()
	e.exec(`UPDATE doc SET title = 'changed' WHERE id IN (1, 2)`)
	e.settle()
	e.expect([]string{long, "short.jpg"}, nil)
	e.exec(`DELETE FROM doc WHERE id = 1`)
	e.settle()
	e.expect([]string{"short.jpg"}, []string{long})
}

// TestPartitionedTable: watching a partitioned parent covers its
// partitions, including one created after setup; setup gives every
// partition REPLICA IDENTITY FULL, so the application's UPDATE and DELETE on
// partitions without a primary key keep working.
func TestPartitionedTable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{
		schema: `CREATE TABLE upload (id int, day date NOT NULL, file text) PARTITION BY RANGE (day);
			CREATE TABLE upload_2024 PARTITION OF upload FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');`,
		watch: `watch:
  - table: upload
    columns: [file]
    storage: media`,
	})
	e.put("p/2024.jpg", "p/2025.jpg", "p/2025-new.jpg")
	e.start()
	e.exec(`CREATE TABLE upload_2025 PARTITION OF upload FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`)
	e.exec(`INSERT INTO upload VALUES (1, '2024-05-01', 'p/2024.jpg'), (2, '2025-05-01', 'p/2025.jpg')`)
	e.exec(`UPDATE upload SET file = 'p/2025-new.jpg' WHERE id = 2`)
	e.exec(`DELETE FROM upload WHERE id = 1`)
	e.settle()
	e.expect([]string{"p/2025-new.jpg"}, []string{"p/2024.jpg", "p/2025.jpg"})
	out, code := e.cli("check")
	if code != 0 {
		t.Errorf("check after adding a partition: exit %d:\n%s", code, out)
	}
}

// TestArrayColumn: each element of a text[] column is a path; an element
// removed from the array is a candidate, kept while another row's array
// holds it.
func TestArrayColumn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{
		schema: `CREATE TABLE album (id int PRIMARY KEY, photos text[]);
			CREATE INDEX ON album USING gin (photos);`,
		watch: `watch:
  - table: album
    columns: [photos]
    storage: media`,
	})
	e.put("a/1.jpg", "a/2.jpg", "a/shared.jpg", "a/with space.jpg")
	e.exec(`INSERT INTO album VALUES (1, '{a/1.jpg,a/2.jpg,a/shared.jpg,"a/with space.jpg"}'), (2, '{a/shared.jpg}')`)
	e.start()
	e.exec(`UPDATE album SET photos = '{a/2.jpg}' WHERE id = 1`)
	e.settle()
	e.expect([]string{"a/2.jpg", "a/shared.jpg"}, []string{"a/1.jpg", "a/with space.jpg"})
	e.exec(`DELETE FROM album`)
	e.settle()
	e.expect(nil, []string{"a/2.jpg", "a/shared.jpg"})
}

// TestCharacterColumns: pgoutput sends a character(n) value padded with
// spaces to n, which PostgreSQL ignores when it compares such values: the
// padding is not part of the path, in a value or in an array's elements.
// A vanished "a.jpg" padded to 20 is deleted (not "already absent"), a
// change of padding alone deletes nothing, and another row's padded copy
// keeps the file. check says what it does with character(n).
func TestCharacterColumns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{
		schema: `CREATE TABLE legacy (id int PRIMARY KEY, file char(20), files char(12)[]);
			CREATE INDEX ON legacy (file);`,
		watch: `watch:
  - table: legacy
    columns: [file, files]
    storage: media`,
	})
	e.put("a.jpg", "b c.jpg", "kept.jpg", "e1.jpg", "e2.jpg", "same.jpg")
	e.exec(`INSERT INTO legacy VALUES (1, 'a.jpg', '{e1.jpg,e2.jpg}'), (2, 'b c.jpg', NULL), (3, 'kept.jpg', NULL), (4, 'kept.jpg', NULL), (5, 'same.jpg', NULL)`)
	p := e.start()
	e.exec(`DELETE FROM legacy WHERE id IN (1, 2, 3)`)
	e.exec(`UPDATE legacy SET file = 'same.jpg  ' WHERE id = 5`)
	e.settle()
	e.expect([]string{"kept.jpg", "same.jpg"}, []string{"a.jpg", "b c.jpg", "e1.jpg", "e2.jpg"})
	if strings.Contains(p.Logs(), "already absent") {
		t.Errorf("a padded path was looked for as a file:\n%s", p.Logs())
	}
	out, code := e.cli("check")
	if code != 0 || !strings.Contains(out, "padded with spaces") {
		t.Errorf("check: exit %d, want 0 saying what it does with character(n):\n%s", code, out)
	}
}

// TestKeepAndTrash: keep patterns are never deleted; with trash on, a
// deleted file moves under trash_prefix with the same path, where it can be
// restored, and the purger removes it after the retention.
func TestKeepAndTrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, media: `    keep: ["defaults/*", "static/**"]
    trash: true
    trash_prefix: .trash/
    trash_retention: 3s`})
	e.put("defaults/avatar.png", "static/css/site.css", "photos/a.jpg", "photos/b.jpg")
	e.exec(`INSERT INTO gallery_photo (id, image, thumbnail) VALUES
		(1, 'defaults/avatar.png', 'static/css/site.css'), (2, 'photos/a.jpg', 'photos/b.jpg')`)
	p := e.start()
	e.exec(`DELETE FROM gallery_photo`)
	e.settle()
	e.expect([]string{"defaults/avatar.png", "static/css/site.css", ".trash/photos/a.jpg", ".trash/photos/b.jpg"},
		[]string{"photos/a.jpg", "photos/b.jpg"})
	// Restoring is a move back.
	if err := os.Rename(filepath.Join(e.root, ".trash/photos/b.jpg"), filepath.Join(e.root, "photos/b.jpg")); err != nil {
		t.Fatal(err)
	}
	// The purger runs every minute at least; restart so it runs at start,
	// once the retention has passed.
	time.Sleep(3500 * time.Millisecond)
	p.stop()
	p = e.start()
	p.waitLog("purged trashed files", 30*time.Second)
	e.expect([]string{"photos/b.jpg", "defaults/avatar.png"}, []string{".trash/photos/a.jpg"})
}
