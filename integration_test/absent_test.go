package integration_test

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// blobSchema is Rails Active Storage's table of files: key names the file.
const blobSchema = `CREATE TABLE active_storage_blobs (
	id bigserial PRIMARY KEY,
	key varchar NOT NULL,
	filename varchar NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX ON active_storage_blobs (key);`

const blobWatch = `watch:
  - table: public.active_storage_blobs
    columns: [key]
    storage: media`

// blobKeys returns n Active Storage-like keys.
func blobKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		sum := md5.Sum([]byte(fmt.Sprintf("blob %d", i)))
		keys[i] = hex.EncodeToString(sum[:])[:28]
	}
	return keys
}

// diskServicePath is where Active Storage's Disk service keeps the file
// of key: ab/cd/abcd...
func diskServicePath(key string) string {
	return filepath.Join(key[:2], key[2:4], key)
}

// TestAbsentWarning (promise 8): a storage configured as if Active
// Storage keys were paths, while the Disk service keeps them at
// ab/cd/key, finds every candidate already absent. run deletes nothing,
// warns naming the storage and an example with its column, and
// cdc_cleaner_absent_ratio says so; with the layout the configuration
// expects, the same deletions delete the files and nothing is said.
func TestAbsentWarning(t *testing.T) {
	const rows, deleted = 40, 35
	const warning = "mapping from column values to files is probably wrong"
	keys := blobKeys(rows)

	for _, tt := range []struct {
		name  string
		path  func(key string) string // where the files are
		wrong bool
	}{
		{name: "wrong layout", path: diskServicePath, wrong: true},
		{name: "right layout", path: func(key string) string { return key }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{schema: blobSchema, watch: blobWatch, httpListen: "127.0.0.1:0", logLevel: "info"})
			var files []string
			for _, k := range keys {
				files = append(files, tt.path(k))
			}
			e.put(files...)
			e.exec(`INSERT INTO active_storage_blobs (key) SELECT unnest($1::text[])`, keys)
			p := e.start()
			addr := p.httpAddr(t)
			p.waitLog(`"streaming"`, 30*time.Second)
			if v := metric(t, addr, `cdc_cleaner_absent_ratio{storage="media"}`); v != 0 {
				t.Errorf(`cdc_cleaner_absent_ratio{storage="media"} before any deletion = %v, want 0`, v)
			}
			e.exec(`DELETE FROM active_storage_blobs WHERE key = ANY($1)`, keys[:deleted])
			e.settle()

			ratio := metric(t, addr, `cdc_cleaner_absent_ratio{storage="media"}`)
			absent := metric(t, addr, `cdc_cleaner_absent_total{storage="media"}`)
			if !tt.wrong {
				e.expect(files[deleted:], files[:deleted])
				if ratio != 0 || absent > 0 {
					t.Errorf("absent ratio %v, absent_total %v; want 0 and nothing", ratio, absent)
				}
				if strings.Contains(p.Logs(), warning) {
					t.Errorf("warned about the mapping although every file was found:\n%s", p.Logs())
				}
				return
			}
			// Nothing deleted: every candidate is absent at its key.
			e.expect(files, nil)
			if absent != deleted {
				t.Errorf("cdc_cleaner_absent_total = %v, want %d", absent, deleted)
			}
			if ratio <= 0.9 {
				t.Errorf(`cdc_cleaner_absent_ratio{storage="media"} = %v, want above 0.9`, ratio)
			}
			p.waitLog(warning, 10*time.Second)
			var lines []string
			for _, l := range strings.Split(p.Logs(), "\n") {
				if strings.Contains(l, warning) {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 {
				t.Fatalf("%d warnings about the mapping, want 1:\n%s", len(lines), strings.Join(lines, "\n"))
			}
			t.Logf("warning: %s", lines[0])
			for _, want := range []string{`"level":"warn"`, `"storage":"media"`, `storage \"media\"`, `from public.active_storage_blobs.key`, `"example_source":"public.active_storage_blobs.key"`, "run cdc-cleaner check"} {
				if !strings.Contains(lines[0], want) {
					t.Errorf("warning does not say %s: %s", want, lines[0])
				}
			}
			if !containsAny(lines[0], keys[:deleted]) {
				t.Errorf("warning names no deleted key as its example: %s", lines[0])
			}
		})
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
