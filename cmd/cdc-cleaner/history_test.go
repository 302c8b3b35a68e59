package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

func TestHistoryHelp(t *testing.T) {
	isolateEnv(t)
	r := runMain(t, "history", "--help")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0\n%s", r.code, r)
	}
	for _, want := range []string{"Usage: cdc-cleaner history PATH [--storage NAME] [--json] [--config FILE]", "-storage NAME", "-json", "-config",
		"Exit codes: 0", "1 it knows nothing", "run cdc-cleaner setup"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help does not contain %q\n%s", want, r)
		}
	}
	r = runMain(t, "help")
	if !strings.Contains(r.stdout, "  history ") {
		t.Errorf("command list does not show history\n%s", r)
	}
}

// Every failure to ask is 2: 1 means only that the journal knows nothing
// of the path, which takes a database to tell.
func TestHistoryFailuresExitTwo(t *testing.T) {
	isolateEnv(t)
	cfg := writeConfig(t, closedPortURL, "")
	unknownKey := writeConfig(t, closedPortURL, "frobnicate: true\n")
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"no PATH", []string{"--config", cfg}, "which path?"},
		{"two PATHs", []string{"a.jpg", "b.jpg", "--config", cfg}, `unexpected argument "b.jpg"`},
		{"empty PATH", []string{"", "--config", cfg}, "PATH is empty"},
		{"unknown flag", []string{"a.jpg", "--no-such-flag"}, "no-such-flag"},
		{"missing config file", []string{"a.jpg", "--config", "/nonexistent/cdc-cleaner.yaml"}, "/nonexistent/cdc-cleaner.yaml"},
		{"unknown key", []string{"a.jpg", "--config", unknownKey}, "frobnicate"},
		{"unknown storage", []string{"a.jpg", "--storage", "elsewhere", "--config", cfg}, `--storage "elsewhere": no such storage`},
		{"unreachable", []string{"a.jpg", "--config", cfg}, "127.0.0.1"},
		{"unreachable, --json", []string{"--json", "a.jpg", "--storage", "media", "--config", cfg}, "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runMain(t, append([]string{"history"}, tt.args...)...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2\n%s", r.code, r)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr does not contain %q\n%s", tt.want, r)
			}
			if r.stdout != "" {
				t.Errorf("unexpected stdout:\n%s", r)
			}
			if strings.Contains(r.stdout+r.stderr, password) {
				t.Errorf("output contains the password\n%s", r)
			}
		})
	}
}

func TestParseFlagsAndArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		pos     []string
		storage string
		json    bool
	}{
		{"path first", []string{"a.jpg", "--storage", "media", "--json"}, []string{"a.jpg"}, "media", true},
		{"path last", []string{"--json", "--storage=media", "a.jpg"}, []string{"a.jpg"}, "media", true},
		{"path between", []string{"--json", "a.jpg", "--storage", "media"}, []string{"a.jpg"}, "media", true},
		{"several", []string{"a.jpg", "--json", "b.jpg"}, []string{"a.jpg", "b.jpg"}, "", true},
		{"after --", []string{"--storage", "media", "--", "-a.jpg", "--json"}, []string{"-a.jpg", "--json"}, "media", false},
		{"none", []string{"--json"}, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("history", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			storage := fs.String("storage", "", "")
			asJSON := fs.Bool("json", false, "")
			pos, err := parseFlagsAndArgs(fs, tt.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(pos, tt.pos) || *storage != tt.storage || *asJSON != tt.json {
				t.Errorf("args %q, storage %q, json %v; want %q, %q, %v", pos, *storage, *asJSON, tt.pos, tt.storage, tt.json)
			}
		})
	}
}

func historyEntries() []cdccleaner.JournalEntry {
	at := time.Date(2025, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	return []cdccleaner.JournalEntry{
		{Storage: "media", Path: "a.jpg", Event: cdccleaner.JournalDangling, Source: "public.gallery_photo.image",
			Xid: 751, CommitLSN: 0x1_0A2C_0000, CommitTime: at.Add(-time.Second), Detail: "restore: no such file\nin the trash", At: at},
		{Storage: "media", Path: "a.jpg", Event: cdccleaner.JournalTrashed, Location: ".trash/a.jpg", Source: "public.gallery_photo.image",
			Xid: 742, CommitLSN: 0x1_A2B3C8, CommitTime: at.Add(-time.Hour), At: at.Add(-time.Hour + time.Second)},
		{Storage: "bucket", Path: "a.jpg", Event: cdccleaner.JournalAbsent, CommitLSN: 0x10, At: at.Add(-2 * time.Hour)},
	}
}

func TestPrintHistory(t *testing.T) {
	var b bytes.Buffer
	printHistory(&b, "a.jpg", historyEntries())
	out := b.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := []string{
		"a.jpg: 3 entries, newest first",
		"TIME                  EVENT     STORAGE  WHERE IT WENT  SOURCE                      XID  COMMIT LSN  COMMIT TIME           DETAIL",
		`2025-01-02T03:04:05Z  dangling  media    -              public.gallery_photo.image  751  1/A2C0000   2025-01-02T03:04:04Z  "restore: no such file\nin the trash"`,
		"2025-01-02T02:04:06Z  trashed   media    .trash/a.jpg   public.gallery_photo.image  742  0/1A2B3C8   2025-01-02T02:04:05Z  -",
		"2025-01-02T01:04:05Z  absent    bucket   -              -                           -    0/10        -                     -",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("output:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}

	b.Reset()
	printHistory(&b, "x\x00.jpg", historyEntries()[:1])
	if first := strings.SplitN(b.String(), "\n", 2)[0]; first != `"x\x00.jpg": 1 entry, newest first` {
		t.Errorf("first line %q", first)
	}
}

// TestHistoryJSON: the keys of history --json are a contract; unknown
// values are null, and nothing known is an empty array.
func TestHistoryJSON(t *testing.T) {
	raw, err := json.Marshal(historyJSON(historyEntries()))
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d objects, want 3:\n%s", len(got), raw)
	}
	keys := []string{"at", "commit_lsn", "commit_time", "detail", "event", "location", "path", "source", "storage", "xid"}
	for i, o := range got {
		var k []string
		for key := range o {
			k = append(k, key)
		}
		sort.Strings(k)
		if !slices.Equal(k, keys) {
			t.Errorf("object %d has keys %q, want %q", i, k, keys)
		}
	}
	first, last := got[0], got[2]
	for key, want := range map[string]any{
		"at": "2025-01-02T03:04:05.6Z", "event": "dangling", "storage": "media", "path": "a.jpg", "location": "",
		"source": "public.gallery_photo.image", "xid": 751.0, "commit_lsn": "1/A2C0000", "commit_time": "2025-01-02T03:04:04.6Z",
		"detail": "restore: no such file\nin the trash",
	} {
		if first[key] != want {
			t.Errorf("%s = %#v, want %#v", key, first[key], want)
		}
	}
	if last["xid"] != nil || last["commit_time"] != nil {
		t.Errorf("unknown xid and commit time: %v, %v; want null", last["xid"], last["commit_time"])
	}
	raw, err = json.Marshal(historyJSON(nil))
	if err != nil || string(raw) != "[]" {
		t.Errorf("nothing known: %s, %v; want []", raw, err)
	}
}
