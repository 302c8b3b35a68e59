package integration_test

import (
	"fmt"
	"strings"
	"testing"
)

// copySchema is an application with a denormalized copy column nobody
// configured: photo_copy.file references 6 of the storage's 28 files, few
// enough that the orphan ratio guard lets them through.
const copySchema = photoSchema + `
CREATE TABLE photo_copy (id int PRIMARY KEY, file text);
INSERT INTO gallery_photo (image) SELECT format('photos/%s.jpg', i) FROM generate_series(1, 20) AS i;
INSERT INTO photo_copy SELECT i, format('copies/%s.jpg', i) FROM generate_series(1, 6) AS i;`

// copyFiles are the files the rows of copySchema name.
func copyFiles() (photos, copies []string) {
	for i := 1; i <= 20; i++ {
		photos = append(photos, fmt.Sprintf("photos/%d.jpg", i))
	}
	for i := 1; i <= 6; i++ {
		copies = append(copies, fmt.Sprintf("copies/%d.jpg", i))
	}
	return photos, copies
}

// TestScanRefusesUnconfiguredColumn: scan --delete searches for columns
// that reference its storage but that no entry names (promise 8), and
// refuses on one, deleting nothing; the dry run says it would refuse;
// protecting the column lets --delete delete the true orphans only, and
// --force deletes despite the finding.
func TestScanRefusesUnconfiguredColumn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: copySchema, watch: photoWatch, noSetup: true})
	photos, copies := copyFiles()
	orphans := []string{"old/1.jpg", "old/2.jpg"}
	e.put(append(append(append([]string{}, photos...), copies...), orphans...)...)

	finding := `public.photo_copy.file references storage "media" (6 of 6 sampled paths exist) but is neither watched nor protected: add it under protect: {table: public.photo_copy, columns: [file], storage: media}`
	out, code := e.cli("scan", "--delete", "--min-age", "0s")
	if code != 1 {
		t.Errorf("scan --delete: exit %d, want 1:\n%s", code, out)
	}
	wantContains(t, "scan --delete", out, "refusing to delete: "+finding, "run again with --force")
	e.expect(append(append(append([]string{}, photos...), copies...), orphans...), nil)

	out, code = e.cli("scan", "--min-age", "0s")
	if code != 0 {
		t.Errorf("dry run: exit %d, want 0:\n%s", code, out)
	}
	wantContains(t, "dry run", out, "--delete would refuse: "+finding, "(--force overrides)")

	// Protected, the copies are referenced: only the true orphans go.
	cfg := readFile(t, e.cfgPath)
	writeFile(t, e.cfgPath, cfg+"\nprotect:\n  - table: public.photo_copy\n    columns: [file]\n    storage: media\n")
	out, code = e.cli("scan", "--delete", "--min-age", "0s")
	if code != 0 {
		t.Fatalf("scan --delete with the column protected: exit %d, want 0:\n%s", code, out)
	}
	wantContains(t, "scan --delete, protected", out, "no column that the configuration leaves out references the storage")
	e.expect(append(append([]string{}, photos...), copies...), orphans)

	// --force overrides: the copies look orphaned and are deleted.
	writeFile(t, e.cfgPath, cfg)
	out, code = e.cli("scan", "--delete", "--force", "--min-age", "0s")
	if code != 0 {
		t.Fatalf("scan --delete --force: exit %d, want 0:\n%s", code, out)
	}
	wantContains(t, "scan --delete --force", out, "--force: deleting although "+finding)
	e.expect(photos, copies)
}

// TestSearchIncompleteUnderLeastPrivilege: the role setup --role creates
// reads only the configured columns, so the search for unconfigured ones
// cannot see the rest: check warns that it is incomplete, naming the role
// and how many columns it could not read, and scan --delete refuses.
func TestSearchIncompleteUnderLeastPrivilege(t *testing.T) {
	t.Parallel()
	admin := newEnv(t, envOptions{schema: copySchema, watch: photoWatch})
	role := testRole(t, admin)
	if out, code := admin.cli("setup", "--role", role); code != 0 {
		t.Fatalf("setup --role: exit %d:\n%s", code, out)
	}
	photos, copies := copyFiles()
	all := append(append([]string{}, photos...), copies...)
	admin.put(all...)
	e := asRole(t, admin, role)

	out, code := e.cli("check")
	if code != 0 {
		t.Errorf("check as %s: exit %d, want 0 (a warning):\n%s", role, code, out)
	}
	// gallery_photo.title and photo_copy.file are the columns it may not read.
	wantContains(t, "check", out, "warning  the search for columns referencing the storages is incomplete: role \""+role+"\" may not read 2 columns of 2 tables",
		"run check or discover as a role that can read the application's tables")
	if strings.Contains(out, "no column that the configuration leaves out references a storage") {
		t.Errorf("check as %s vouches for columns it could not read:\n%s", role, out)
	}

	out, code = e.cli("scan", "--delete", "--min-age", "0s")
	if code != 1 {
		t.Errorf("scan --delete as %s: exit %d, want 1:\n%s", role, code, out)
	}
	wantContains(t, "scan --delete", out, "refusing to delete: the search for columns that reference storage \"media\" but are neither watched nor protected could not complete", "may not read 2 columns", "--force")
	e.expect(all, nil)

	out, code = e.cli("scan", "--min-age", "0s")
	if code != 0 {
		t.Errorf("dry run as %s: exit %d:\n%s", role, code, out)
	}
	wantContains(t, "dry run", out, "--delete would refuse: the search for columns that reference storage \"media\" but are neither watched nor protected could not complete")
}
