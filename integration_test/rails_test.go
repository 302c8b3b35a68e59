package integration_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// requireRails fails the test in CI, and skips it elsewhere, when Debian's
// Rails (run from system gems, without Bundler) cannot load Active Storage
// with the pg adapter and an image processor.
func requireRails(t *testing.T) {
	t.Helper()
	out, err := exec.Command("ruby", "-e", `require "rails"; require "active_storage/engine"; require "pg"; require "image_processing"`).CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("Rails is needed to drive a real Active Storage application (apt-get install ruby-rails ruby-pg ruby-image-processing imagemagick): %v\n%s", err, out)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// railsApp drives integration_test/testdata/rails (a minimal Rails 6.1
// application, Active Storage on its Disk service) against e's database
// and storage root, as the application's own code would.
type railsApp struct {
	t   *testing.T
	env []string
}

func newRailsApp(t *testing.T, e *env) *railsApp {
	dir, err := filepath.Abs("testdata/rails")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "drive.rb")); err != nil {
		t.Fatal(err)
	}
	return &railsApp{t: t, env: append(cleanEnv(), "DATABASE_URL="+e.url, "STORAGE_ROOT="+e.root, "LOG_LEVEL=error")}
}

// run runs `ruby drive.rb args...` with extra environment settings and
// returns its JSON lines.
func (a *railsApp) run(extra []string, args ...string) []map[string]any {
	a.t.Helper()
	cmd := exec.Command("ruby", append([]string{"drive.rb"}, args...)...)
	cmd.Dir = "testdata/rails"
	cmd.Env = append(slices.Clone(a.env), extra...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		a.t.Fatalf("ruby drive.rb %v: %v\n%s", args, err, stderr.String())
	}
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			a.t.Fatalf("ruby drive.rb %v printed %q: %v", args, sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// diskFiles lists the regular files below root, relative to it, outside the
// trash.
func diskFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() && rel == ".trash" {
			return fs.SkipDir
		}
		if d.Type().IsRegular() {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRailsActiveStorageDisk follows the README's Rails recipe with a real
// Rails 6.1 application on Active Storage's Disk service: attach, replace
// (Rails leaving the old blob), untracked variants, SQL deletes of blob
// rows, destroy (Rails purging the file itself), and scan. At the end every
// blob row's file is in place, the files of deleted blob rows and their
// variants are in the trash, and scan finds nothing to delete.
func TestRailsActiveStorageDisk(t *testing.T) {
	t.Parallel()
	requireRails(t)
	e := newEnv(t, envOptions{noSetup: true, httpListen: "127.0.0.1:0", watch: `watch:
  - table: public.active_storage_blobs
    path: "{key[0:2]}/{key[2:4]}/{key}"
    derived: ["va/ri/variants/{key}/"]
    match: {service_name: local}
    storage: media`})
	app := newRailsApp(t, e)
	app.run(nil, "migrate")
	e.setupCleaner()
	p := e.start()
	untracked := []string{"TRACK_VARIANTS=0"}
	keepOld := []string{"JOB_ADAPTER=test"} // jobs never run: Rails leaves the old blob

	first := app.run(nil, "attach", "first")[0]
	k1 := first["key"].(string)
	v1 := app.run(untracked, "variant", fmt.Sprint(first["photo_id"]))[0]
	variant1, _ := filepath.Rel(e.root, v1["path"].(string))
	replaced := app.run(keepOld, "replace", fmt.Sprint(first["photo_id"]))[0]
	k2 := replaced["new"].(map[string]any)["key"].(string)
	second := app.run(nil, "attach", "second")[0]
	third := app.run(nil, "attach", "third")[0]
	k3, k4 := second["key"].(string), third["key"].(string)
	app.run(untracked, "variant", fmt.Sprint(replaced["photo_id"]))
	before := diskFiles(t, e.root)
	t.Logf("files before the deletions:\n  %s", strings.Join(before, "\n  "))
	for _, f := range []string{diskPath(k1), variant1, diskPath(k2), diskPath(k3), diskPath(k4)} {
		if !slices.Contains(before, f) {
			t.Fatalf("%s is not on disk before the deletions; the application did not write what the test expects", f)
		}
	}

	// The old blob, unattached since the replace, deleted with SQL (as a
	// cleanup job of the application's would), then a photo's rows
	// deleted without callbacks, then a photo destroyed by Rails, which
	// purges its file itself.
	e.exec(`DELETE FROM active_storage_blobs WHERE key = $1`, k1)
	app.run(nil, "delete_rows", fmt.Sprint(third["photo_id"]))
	app.run(nil, "destroy", fmt.Sprint(second["photo_id"]))
	e.settle()

	after := diskFiles(t, e.root)
	t.Logf("files after:\n  %s", strings.Join(after, "\n  "))
	for _, f := range []string{diskPath(k1), variant1, diskPath(k3), diskPath(k4)} {
		if slices.Contains(after, f) {
			t.Errorf("%s is still in place; its blob row is gone", f)
		}
	}
	for _, f := range []string{diskPath(k1), variant1, diskPath(k4)} {
		if !e.exists(".trash/" + f) {
			t.Errorf("%s is not in the trash", f)
		}
	}
	// Every file of a blob row is in place, its variants too.
	var keys []string
	rows, err := e.conn().Query(t.Context(), `SELECT key FROM active_storage_blobs`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if !slices.Contains(keys, k2) || len(keys) != 1 {
		t.Fatalf("blob rows %q; want only the replacement %s", keys, k2)
	}
	for _, f := range after {
		if !strings.HasPrefix(f, diskPath(k2)) && !strings.HasPrefix(f, "va/ri/variants/"+k2+"/") {
			t.Errorf("%s is left on disk, and no blob row names it", f)
		}
	}
	if !slices.Contains(after, diskPath(k2)) {
		t.Errorf("%s, the attached blob's file, is gone", diskPath(k2))
	}
	if e.exists("va/ri/variants/" + k1) {
		t.Errorf("the variants directory of the deleted blob %s is left, empty", k1)
	}

	// The deleted blob's row comes back (a restore from a backup, a job
	// re-creating it): so do its file and its variant, from the trash.
	e.exec(`INSERT INTO active_storage_blobs (key, filename, service_name, byte_size, checksum, created_at)
		VALUES ($1, 'first.png', 'local', 1, 'x', now())`, k1)
	e.settle()
	for _, f := range []string{diskPath(k1), variant1} {
		if !e.exists(f) {
			t.Errorf("%s did not come back with its blob row", f)
		}
	}
	t.Logf("files after the blob row of %s came back:\n  %s", k1, strings.Join(diskFiles(t, e.root), "\n  "))
	if code := p.stop(); code != 0 {
		t.Fatalf("cleaner exited %d", code)
	}

	// scan keeps every file that has a blob row, the variants of a blob
	// that has one too, and finds nothing else.
	out, code := e.cli("scan", "--min-age", "0s")
	if code != 0 {
		t.Fatalf("scan exited %d:\n%s", code, out)
	}
	t.Logf("scan:\n%s", out)
	if !strings.Contains(out, "0 orphaned") {
		t.Errorf("scan found orphans; every file left has a blob row:\n%s", out)
	}
}
