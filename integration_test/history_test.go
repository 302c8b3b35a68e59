package integration_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestHistoryCLI: history says the database is not set up (exit 2), then
// that the journal knows nothing of a path (1), then prints its entries
// newest first, for people and as JSON (0); status shows the journal's
// counts.
func TestHistoryCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: photoSchema, watch: photoWatch, noSetup: true})

	out, code := e.cli("history", "photos/a.jpg")
	if code != 2 || !strings.Contains(out, "cdc_cleaner.journal does not exist: run cdc-cleaner setup") {
		t.Errorf("history before setup: exit %d, want 2:\n%s", code, out)
	}
	if out, code := e.cli("setup"); code != 0 {
		t.Fatalf("setup: exit %d:\n%s", code, out)
	}
	out, code = e.cli("history", "photos/a.jpg", "--storage", "media")
	if code != 1 || !strings.Contains(out, "the journal knows nothing of photos/a.jpg (storage media)") {
		t.Errorf("history of an unknown path: exit %d, want 1:\n%s", code, out)
	}

	e.exec(`INSERT INTO cdc_cleaner.journal (storage, path, event, location, source, xid, commit_lsn, commit_time, at)
		VALUES ('media', 'photos/a.jpg', 'trashed', '.trash/photos/a.jpg', 'public.gallery_photo.image', 741, '0/1A2B3C8',
			'2025-01-02 03:04:05+00', '2025-01-02 03:04:06+00');
		INSERT INTO cdc_cleaner.journal (storage, path, event, source, xid, commit_lsn, commit_time, detail, at)
		VALUES ('media', 'photos/a.jpg', 'dangling', 'public.gallery_photo.image', 760, '0/1B000000',
			'2025-01-03 00:00:00+00', 'not in the trash', '2025-01-03 00:00:01+00')`)
	out, code = e.cli("history", "photos/a.jpg")
	if code != 0 {
		t.Fatalf("history: exit %d, want 0:\n%s", code, out)
	}
	wantContains(t, "history", out,
		"photos/a.jpg: 2 entries, newest first",
		"2025-01-03T00:00:01Z  dangling  media    -",
		"public.gallery_photo.image  760  0/1B000000  2025-01-03T00:00:00Z  not in the trash",
		"2025-01-02T03:04:06Z  trashed   media    .trash/photos/a.jpg  public.gallery_photo.image  741  0/1A2B3C8")
	if i, j := strings.Index(out, "dangling"), strings.Index(out, "trashed"); i > j {
		t.Errorf("history is not newest first:\n%s", out)
	}

	cmd := exec.Command(binary(t), "history", "--json", "--config", e.cfgPath, "photos/a.jpg")
	cmd.Env = append(cleanEnv(), e.env...)
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("history --json: %v", err)
	}
	var entries []map[string]any
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatalf("history --json: %v\n%s", err, raw)
	}
	if len(entries) != 2 || entries[0]["event"] != "dangling" || entries[1]["location"] != ".trash/photos/a.jpg" ||
		entries[1]["xid"] != 741.0 || entries[1]["commit_lsn"] != "0/1A2B3C8" {
		t.Errorf("history --json:\n%s", raw)
	}

	m, _, code := e.statusJSON()
	j, _ := m["journal"].(map[string]any)
	if code != 0 || j["rows"] != 2.0 || j["dangling"] != 1.0 || j["restored"] != 0.0 || j["rows_estimated"] != false {
		t.Errorf("status --json: exit %d, journal %v", code, m["journal"])
	}
	wantContains(t, "status", e.status(0), "journal              2 entries, ")
}
