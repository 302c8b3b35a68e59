package integration_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cdc-cleaner/cdc-cleaner/deleter/s3test"
)

// activeStorageSchema is Rails Active Storage's blob table, reduced to
// what the cleaner reads: the Disk service stores the file of key k at
// k[0:2]/k[2:4]/k under its root, not at k.
const activeStorageSchema = `CREATE TABLE active_storage_blobs (id bigserial PRIMARY KEY, key varchar NOT NULL, filename varchar NOT NULL);
CREATE INDEX ON active_storage_blobs (key);`

const activeStorageWatch = `watch:
  - table: active_storage_blobs
    columns: [key]
    storage: media`

// blobKey is an Active Storage key: 28 characters of base 36.
func blobKey(rng *rand.Rand) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 28)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

func diskPath(key string) string { return key[0:2] + "/" + key[2:4] + "/" + key }

// TestWrongMappingDeletesNothing: a mapping that matches no file (Active
// Storage's Disk layout watched as if the key were the path) is a problem
// for check, and scan --delete deletes nothing, says why and how to
// override; --force deletes. A correct mapping passes every guard.
func TestWrongMappingDeletesNothing(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 14))
	e := newEnv(t, envOptions{schema: activeStorageSchema, watch: activeStorageWatch})
	var inUse, orphans []string
	for i := range 30 {
		k := blobKey(rng)
		e.exec(`INSERT INTO active_storage_blobs (key, filename) VALUES ($1, $2)`, k, fmt.Sprintf("photo-%d.jpg", i))
		inUse = append(inUse, diskPath(k))
	}
	for range 5 {
		orphans = append(orphans, diskPath(blobKey(rng)))
	}
	all := append(append([]string{}, inUse...), orphans...)
	e.put(all...)
	makeOld(t, e.root, all...)

	out, code := e.cli("check")
	t.Logf("check:\n%s", out)
	if code != 1 || !strings.Contains(out, "public.active_storage_blobs.key: only 0 of 30 sampled paths exist in "+e.root) ||
		!strings.Contains(out, "the mapping from column values to files is wrong") || !strings.Contains(out, e.root+"/") {
		t.Fatalf("check exited %d; want 1 with the wrong mapping named, its root and the path it looked for", code)
	}

	out, code = e.cli("scan", "--delete")
	t.Logf("scan --delete:\n%s", out)
	if code != 1 || !strings.Contains(out, "refusing to delete") || !strings.Contains(out, "--force") {
		t.Fatalf("scan --delete exited %d; want 1, refusing and naming --force", code)
	}
	e.expect(all, nil)

	out, code = e.cli("scan")
	if code != 0 || !strings.Contains(out, "--delete would refuse") {
		t.Fatalf("dry run exited %d, want 0 and what --delete would do:\n%s", code, out)
	}

	out, code = e.cli("scan", "--delete", "--force")
	if code != 0 {
		t.Fatalf("scan --delete --force exited %d:\n%s", code, out)
	}
	e.expect(nil, all) // forced: the wrong mapping takes every file for an orphan
}

// TestCorrectMappingPassesGuards: the same blobs with the column holding
// the path as stored: check passes, and scan --delete deletes just the
// orphans.
func TestCorrectMappingPassesGuards(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(8, 16))
	e := newEnv(t, envOptions{schema: activeStorageSchema, watch: activeStorageWatch})
	var inUse, orphans []string
	for i := range 30 {
		p := diskPath(blobKey(rng))
		e.exec(`INSERT INTO active_storage_blobs (key, filename) VALUES ($1, $2)`, p, fmt.Sprintf("photo-%d.jpg", i))
		inUse = append(inUse, p)
	}
	for range 5 {
		orphans = append(orphans, diskPath(blobKey(rng)))
	}
	e.put(inUse...)
	e.put(orphans...)
	makeOld(t, e.root, append(append([]string{}, inUse...), orphans...)...)

	out, code := e.cli("check")
	if code != 0 || !strings.Contains(out, "public.active_storage_blobs.key: 30 of 30 sampled paths exist in "+e.root) {
		t.Fatalf("check exited %d, want 0 with the sample's figures:\n%s", code, out)
	}
	out, code = e.cli("scan", "--delete")
	if code != 0 {
		t.Fatalf("scan --delete exited %d:\n%s", code, out)
	}
	e.expect(inUse, orphans)
}

// TestScanRefusesWhenATableIsEmpty: a configured table with no rows while
// the storage holds many files (a copy of the database without its data)
// makes scan --delete refuse; the dry run says so.
func TestScanRefusesWhenATableIsEmpty(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{schema: activeStorageSchema + `
CREATE TABLE legacy_upload (id int PRIMARY KEY, file text);`, watch: activeStorageWatch + `
protect:
  - table: legacy_upload
    columns: [file]
    storage: media`})
	var inUse, orphans []string
	for i := range 120 {
		p := fmt.Sprintf("blobs/%03d.jpg", i)
		e.exec(`INSERT INTO active_storage_blobs (key, filename) VALUES ($1, 'x')`, p)
		inUse = append(inUse, p)
	}
	for i := range 10 {
		orphans = append(orphans, fmt.Sprintf("legacy/%02d.bin", i))
	}
	all := append(append([]string{}, inUse...), orphans...)
	e.put(all...)
	makeOld(t, e.root, all...)
	out, code := e.cli("scan", "--delete")
	if code != 1 || !strings.Contains(out, "configured table public.legacy_upload holds no rows while storage \"media\" holds 130 files") {
		t.Fatalf("scan --delete exited %d, want 1 naming the empty table:\n%s", code, out)
	}
	e.expect(all, nil)
	out, code = e.cli("scan", "--delete", "--force")
	if code != 0 {
		t.Fatalf("scan --delete --force exited %d:\n%s", code, out)
	}
	e.expect(inUse, orphans)
}

// TestS3SamplingFindsAWrongPrefix: on S3, the sample looks the paths up
// with HeadObject: objects stored under another prefix than the
// configured one make check exit 1 naming the prefix it looked in, and
// scan --delete refuse; with the right prefix, check passes.
func TestS3SamplingFindsAWrongPrefix(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 18))
	e, srv, prefix := newS3Env(t, envOptions{schema: activeStorageSchema, watch: activeStorageWatch}, s3test.Options{})
	var keys []string
	for i := range 20 {
		k := blobKey(rng)
		e.exec(`INSERT INTO active_storage_blobs (key, filename) VALUES ($1, $2)`, k, fmt.Sprintf("photo-%d.jpg", i))
		keys = append(keys, k)
	}
	// The objects sit one level deeper than the configured prefix says.
	for _, k := range keys {
		srv.Put(t, prefix+"uploads/"+k, []byte(k))
	}
	out, code := e.cli("check")
	if code != 1 || !strings.Contains(out, "only 0 of 20 sampled paths exist in s3://"+srv.Bucket()+"/"+prefix) {
		t.Fatalf("check exited %d, want 1 naming the bucket and prefix it looked in:\n%s", code, out)
	}
	out, code = e.cli("scan", "--delete", "--min-age", "0s")
	if code != 1 || !strings.Contains(out, "refusing to delete") {
		t.Fatalf("scan --delete exited %d, want a refusal:\n%s", code, out)
	}
	for _, k := range keys {
		if !srv.Exists(t, prefix+"uploads/"+k) {
			t.Fatalf("object %s was deleted by a refused scan", k)
		}
	}

	// The right prefix: every sampled path is there.
	replaceInConfig(t, e, "prefix: "+prefix+"\n", "prefix: "+prefix+"uploads/\n")
	out, code = e.cli("check")
	if code != 0 || !strings.Contains(out, "20 of 20 sampled paths exist in s3://"+srv.Bucket()+"/"+prefix+"uploads/") {
		t.Fatalf("check with the right prefix exited %d, want 0:\n%s", code, out)
	}
}
