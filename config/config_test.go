package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// password appears in every test URL; no error may contain it.
const password = "hunter2secret"

const minimalYAML = `
postgres:
  url: postgres://cleaner:` + password + `@db:5432/app
storages:
  media:
    type: local
    root: /srv/media
watch:
  - table: public.gallery_photo
    columns: [image, thumbnail]
    storage: media
`

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cdc-cleaner.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkErr fails unless err contains every string of want, and never the password.
func checkErr(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q\ndoes not contain %q", msg, w)
		}
	}
	if strings.Contains(msg, password) {
		t.Errorf("error contains the password: %q", msg)
	}
}

func TestLoadFull(t *testing.T) {
	cfg, err := Load("testdata/full.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Postgres: Postgres{
			URL:            "postgres://cleaner:secret@127.0.0.1:5432/app",
			Slot:           "cdc_cleaner",
			Publication:    "cdc_cleaner",
			StatusInterval: 10 * time.Second,
			MaxLagWarn:     1 << 30,
			FailoverSlot:   true,
		},
		Storages: map[string]*Storage{
			"media": {
				Type:           "local",
				Root:           "/srv/app/media",
				Trash:          true, // the default
				TrashPrefix:    ".trash/",
				TrashRetention: 720 * time.Hour,
			},
			"bucket": {
				Type:           "s3",
				Bucket:         "app-uploads",
				Prefix:         "media/",
				Region:         "us-east-1",
				Endpoint:       "http://127.0.0.1:9000",
				PathStyle:      true,
				Keep:           []string{"defaults/*"},
				TrashPrefix:    ".trash/",
				TrashRetention: 720 * time.Hour,
			},
		},
		Watch: []*Watch{
			{
				Table: "public.gallery_photo", Columns: []string{"image", "thumbnail"}, Storage: "media",
				Schema: "public", Name: "gallery_photo", ColNames: []string{"image", "thumbnail"},
			},
			{
				Table: "public.document", Columns: []string{"attachments"}, JSONPath: "files[*].path", Storage: "bucket",
				Schema: "public", Name: "document", ColNames: []string{"attachments"},
				JSONSteps: cdccleaner.JSONPath{{Key: "files"}, {Each: true}, {Key: "path"}},
			},
		},
		Protect: []*Watch{
			{
				Table: "public.legacy_upload", Columns: []string{"file"}, Storage: "media",
				Schema: "public", Name: "legacy_upload", ColNames: []string{"file"},
			},
		},
		HTTP: HTTP{Listen: "127.0.0.1:9187"},
		Log:  Log{Level: "info", Format: "json"},
	}
	if !reflect.DeepEqual(cfg, want) {
		got, _ := yaml.Marshal(cfg)
		exp, _ := yaml.Marshal(want)
		t.Errorf("loaded\n%s\nwant\n%s\n(or a difference in fields not in YAML)", got, exp)
	}
}

func TestLoadDefaults(t *testing.T) {
	cfg, err := Load(writeConfig(t, minimalYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultConfig()
	if cfg.Postgres.Slot != "cdc_cleaner" || cfg.Postgres.Publication != "cdc_cleaner" ||
		cfg.Postgres.StatusInterval != 10*time.Second || cfg.Postgres.MaxLagWarn != 1<<30 ||
		cfg.HTTP != def.HTTP || cfg.Log != def.Log || cfg.DeleteDelay != 0 || cfg.DryRun {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if s := cfg.Storages["media"]; s.TrashPrefix != ".trash/" || s.TrashRetention != 720*time.Hour {
		t.Errorf("storage defaults not applied: %+v", s)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		env  []string
		want []string
	}{
		{
			name: "unknown top-level key",
			body: minimalYAML + "dry_runn: true\n",
			want: []string{"line 12", `unknown key "dry_runn"`, "at the top level", "dry_run"},
		},
		{
			name: "unknown key in postgres",
			body: "postgres:\n  slott: x\n",
			want: []string{"line 2", `unknown key "slott" in postgres`, "slot"},
		},
		{
			name: "unknown key in a storage",
			body: "storages:\n  media:\n    type: local\n    rooot: /x\n",
			want: []string{"line 4", `unknown key "rooot" in storages.NAME`, "root"},
		},
		{
			name: "unknown key merged into a storage",
			body: "base: &b {bogus: 1}\nstorages:\n  media:\n    <<: *b\n    type: local\n",
			want: []string{`unknown key "base"`, `unknown key "bogus" in storages.NAME`},
		},
		{
			name: "unknown key in a watch entry",
			body: minimalYAML + "    colums: [x]\n",
			want: []string{"line 12", `unknown key "colums" in watch[N] and protect[N]`},
		},
		{
			name: "several unknown keys",
			body: "postgres:\n  a: 1\nlog:\n  b: 2\n",
			want: []string{"line 2", `"a"`, "line 4", `"b"`},
		},
		{
			name: "duplicate key",
			body: minimalYAML + "dry_run: true\ndry_run: false\n",
			want: []string{"line 13", `"dry_run" already defined at line 12`},
		},
		{
			name: "syntax error",
			body: "postgres:\n  url: [\n",
			want: []string{"line"},
		},
		{
			name: "wrong type",
			body: "storages: [a]\n",
			want: []string{"line 1: storages: expected a mapping of names to settings, not a list"},
		},
		{
			name: "storage is not a mapping",
			body: "storages:\n  media: local\n",
			want: []string{`line 2: storages.media: expected a mapping with keys type, root,`, `not "local"`},
		},
		{
			name: "bad duration in file",
			body: strings.Replace(minimalYAML, "storages:", "  status_interval: 10x\nstorages:", 1),
			want: []string{`line 4: postgres.status_interval: "10x" is not a duration; write a number and a unit, e.g. 10s, 5m or 1h30m`},
		},
		{
			name: "integer duration in file",
			body: minimalYAML + "delete_delay: 10\n",
			want: []string{"line 12: delete_delay: 10 has no unit; write 10s (or 10m, 10h)"},
		},
		{
			name: "text for a number",
			body: strings.Replace(minimalYAML, "root: /srv/media", "root: /srv/media\n    concurrency: four", 1),
			want: []string{`line 8: storages.media.concurrency: "four" is not a number`},
		},
		{
			name: "fraction for a whole number",
			body: strings.Replace(minimalYAML, "root: /srv/media", "root: /srv/media\n    concurrency: 1.5", 1),
			want: []string{`line 8: storages.media.concurrency: 1.5 is not a whole number`},
		},
		{
			name: "text for a boolean",
			body: minimalYAML + "dry_run: maybe\n",
			want: []string{`line 12: dry_run: "maybe" is not a boolean; write true or false`},
		},
		{
			name: "one value for a list",
			body: strings.Replace(minimalYAML, "[image, thumbnail]", "image", 1),
			want: []string{`line 10: watch[0].columns: "image" is not a list; write [image]`},
		},
		{
			name: "list for a string",
			body: strings.Replace(minimalYAML, "storage: media", "storage: [media]", 1),
			want: []string{`line 11: watch[0].storage: expected a string, not a list`},
		},
		{
			name: "a watch entry without its dash",
			body: "watch:\n  table: t\n",
			want: []string{`line 2: watch: expected a list (in the file, each entry on its own line starting with "- "), not a mapping`},
		},
		{
			name: "a section written as one value",
			body: minimalYAML + "log: debug\n",
			want: []string{`line 12: log: expected a mapping with keys level, format, not "debug"`},
		},
		{
			name: "type errors and unknown keys together, by line",
			body: minimalYAML + "dry_run: maybe\nlog: {levle: debug}\n",
			want: []string{"line 12: dry_run: \"maybe\" is not a boolean; write true or false\nline 13: unknown key \"levle\" in log"},
		},
		{
			name: "bad size in file",
			body: strings.Replace(minimalYAML, "storages:", "  max_lag_warn: 1GB5\nstorages:", 1),
			want: []string{"line 4", `"1GB5"`},
		},
		{
			name: "two documents",
			body: minimalYAML + "---\nlog: {level: debug}\n",
			want: []string{"second YAML document"},
		},
		{
			name: "validation problems are reported after loading",
			body: strings.Replace(minimalYAML, "type: local", "type: lcoal", 1),
			want: []string{`storages.media.type: "lcoal" is not one of local, s3`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, tt.body)
			cfg, err := Load(p, tt.env)
			if cfg != nil {
				t.Errorf("config returned with an error")
			}
			checkErr(t, err, append(tt.want, p)...)
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(p, nil)
	checkErr(t, err, p, "--config")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v is not os.ErrNotExist", err)
	}
}

func TestLoadEmptyFileFromEnvironment(t *testing.T) {
	for _, body := range []string{"", "# only a comment\n", "---\n"} {
		// An empty file leaves everything to the environment; watch
		// entries cannot come from there, so validation names it.
		_, err := Load(writeConfig(t, body), []string{"DATABASE_URL=postgres://u:" + password + "@h/db"})
		checkErr(t, err, "watch: at least one table to watch is required", "storages: at least one storage is required")
		if strings.Contains(err.Error(), "postgres.url") {
			t.Errorf("DATABASE_URL not used: %v", err)
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	const twoEntries = minimalYAML + `  - table: public.document
    columns: [file]
    storage: media
protect:
  - table: public.a
    columns: [file]
    storage: media
  - table: public.b
    columns: [file]
    storage: media
`
	tests := []struct {
		name  string
		body  string
		env   []string
		check func(t *testing.T, c *Config)
		want  []string // error substrings when the load must fail
	}{
		{
			name: "scalars",
			env: []string{
				"CDC_CLEANER_POSTGRES_URL=postgres://other:" + password + "@db2/app",
				"CDC_CLEANER_POSTGRES_SLOT=slot2",
				"CDC_CLEANER_POSTGRES_STATUS_INTERVAL=30s",
				"CDC_CLEANER_POSTGRES_MAX_LAG_WARN=512MiB",
				"CDC_CLEANER_DELETE_DELAY=5m",
				"CDC_CLEANER_DRY_RUN=true",
				"CDC_CLEANER_HTTP_LISTEN=",
				"CDC_CLEANER_LOG_LEVEL=debug",
				"CDC_CLEANER_LOG_FORMAT=console",
			},
			check: func(t *testing.T, c *Config) {
				want := Postgres{URL: "postgres://other:" + password + "@db2/app", Slot: "slot2", Publication: "cdc_cleaner",
					StatusInterval: 30 * time.Second, MaxLagWarn: 512 << 20, FailoverSlot: true}
				if c.Postgres != want || c.DeleteDelay != 5*time.Minute || !c.DryRun ||
					c.HTTP.Listen != "" || c.Log != (Log{Level: "debug", Format: "console"}) {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "strings are taken literally",
			env:  []string{"CDC_CLEANER_POSTGRES_URL=host=db password='a: b #c' dbname=null"},
			check: func(t *testing.T, c *Config) {
				if c.Postgres.URL != "host=db password='a: b #c' dbname=null" {
					t.Errorf("url = %q", c.Postgres.URL)
				}
			},
		},
		{
			name: "storage map entry",
			body: "postgres: {url: 'postgres://u@h/db'}\n" +
				"storages:\n  media: {type: local, root: /srv/media}\n  my-store: {type: s3, bucket: b}\n" +
				"watch:\n  - {table: t, columns: [f], storage: my-store}\n",
			env: []string{
				"CDC_CLEANER_STORAGES_MEDIA_ROOT=/data/media",
				"CDC_CLEANER_STORAGES_MEDIA_TRASH=yes",
				"CDC_CLEANER_STORAGES_MY_STORE_BUCKET=other",
				"CDC_CLEANER_STORAGES_MY_STORE_TRASH_RETENTION=24h",
			},
			check: func(t *testing.T, c *Config) {
				m, s := c.Storages["media"], c.Storages["my-store"]
				if m.Root != "/data/media" || !m.Trash || s.Bucket != "other" || s.TrashRetention != 24*time.Hour {
					t.Errorf("media %+v, my-store %+v", m, s)
				}
			},
		},
		{
			name: "list entries",
			body: twoEntries,
			env: []string{
				"CDC_CLEANER_WATCH_0_TABLE=app.photo",
				"CDC_CLEANER_WATCH_1_COLUMNS_0=\"ImageFile\"",
				"CDC_CLEANER_PROTECT_1_STORAGE=media",
				"CDC_CLEANER_PROTECT_1_TABLE=public.c",
			},
			check: func(t *testing.T, c *Config) {
				if c.Watch[0].Table != "app.photo" || c.Watch[0].Schema != "app" ||
					c.Watch[1].ColNames[0] != "ImageFile" || c.Protect[1].Table != "public.c" {
					t.Errorf("watch %+v %+v protect %+v", c.Watch[0], c.Watch[1], c.Protect[1])
				}
			},
		},
		{
			name: "whole list, then an entry of it",
			env: []string{
				"CDC_CLEANER_WATCH_0_COLUMNS_2=c", // applied after the list: sorted by name
				"CDC_CLEANER_WATCH_0_COLUMNS=[a, b, x]",
				"CDC_CLEANER_STORAGES_MEDIA_KEEP=['defaults/*', '*.keep']",
			},
			check: func(t *testing.T, c *Config) {
				if got := c.Watch[0].Columns; !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
					t.Errorf("columns = %q", got)
				}
				if got := c.Storages["media"].Keep; !reflect.DeepEqual(got, []string{"defaults/*", "*.keep"}) {
					t.Errorf("keep = %q", got)
				}
			},
		},
		{
			name: "last of duplicate variables wins; others ignored",
			env:  []string{"CDC_CLEANER_LOG_LEVEL=error", "PATH=/bin", "cdc_cleaner_log_level=bogus", "CDC_CLEANER_LOG_LEVEL=warn", "NOEQUALS"},
			check: func(t *testing.T, c *Config) {
				if c.Log.Level != "warn" {
					t.Errorf("level = %q", c.Log.Level)
				}
			},
		},
		{
			name: "unknown variable",
			env:  []string{"CDC_CLEANER_DRY_RUNN=true", "CDC_CLEANER_POSTGRES_ULR=postgres://u:" + password + "@h/db"},
			want: []string{"CDC_CLEANER_DRY_RUNN: no such setting", "CDC_CLEANER_POSTGRES_ULR: no such setting"},
		},
		{
			name: "storage not in the file",
			env:  []string{"CDC_CLEANER_STORAGES_OTHER_ROOT=/x"},
			want: []string{"CDC_CLEANER_STORAGES_OTHER_ROOT: no such setting"},
		},
		{
			name: "list entry not in the file",
			env:  []string{"CDC_CLEANER_WATCH_1_TABLE=x"},
			want: []string{"CDC_CLEANER_WATCH_1_TABLE: no such setting"},
		},
		{
			name: "yaml-only fields are not settings",
			env:  []string{"CDC_CLEANER_WATCH_0_SCHEMA=x"},
			want: []string{"CDC_CLEANER_WATCH_0_SCHEMA: no such setting"},
		},
		{
			name: "bad duration",
			env:  []string{"CDC_CLEANER_POSTGRES_STATUS_INTERVAL=10x"},
			want: []string{`CDC_CLEANER_POSTGRES_STATUS_INTERVAL: postgres.status_interval: "10x" is not a duration; write a number and a unit, e.g. 10s, 5m or 1h30m`},
		},
		{
			name: "bad bool",
			env:  []string{"CDC_CLEANER_DRY_RUN=maybe"},
			want: []string{`CDC_CLEANER_DRY_RUN: dry_run: "maybe" is not a boolean; write true or false`},
		},
		{
			name: "bad number",
			env:  []string{"CDC_CLEANER_STORAGES_MEDIA_CONCURRENCY=four"},
			want: []string{`CDC_CLEANER_STORAGES_MEDIA_CONCURRENCY: storages.media.concurrency: "four" is not a number`},
		},
		{
			name: "bad size",
			env:  []string{"CDC_CLEANER_POSTGRES_MAX_LAG_WARN=lots"},
			want: []string{"CDC_CLEANER_POSTGRES_MAX_LAG_WARN", `"lots"`, "size"},
		},
		{
			name: "empty non-string",
			env:  []string{"CDC_CLEANER_DELETE_DELAY="},
			want: []string{"CDC_CLEANER_DELETE_DELAY: empty"},
		},
		{
			name: "bad list",
			env:  []string{"CDC_CLEANER_WATCH_0_COLUMNS=image"},
			want: []string{`CDC_CLEANER_WATCH_0_COLUMNS: watch[0].columns: "image" is not a list; write [image]`},
		},
		{
			name: "entry beyond a replaced list",
			env:  []string{"CDC_CLEANER_WATCH_0_COLUMNS=[a]", "CDC_CLEANER_WATCH_0_COLUMNS_1=b"},
			want: []string{"CDC_CLEANER_WATCH_0_COLUMNS_1: no such setting"},
		},
		{
			name: "ambiguous storage names",
			body: "storages:\n  media: {type: local, root: /a}\n  MEDIA: {type: local, root: /b}\n",
			env:  []string{"CDC_CLEANER_STORAGES_MEDIA_ROOT=/c"},
			want: []string{"CDC_CLEANER_STORAGES_MEDIA_ROOT: ambiguous", "storages.MEDIA.root", "storages.media.root"},
		},
		{
			name: "overrides are validated",
			env:  []string{"CDC_CLEANER_STORAGES_MEDIA_ROOT=relative"},
			want: []string{`storages.media.root: "relative" is not an absolute path`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if body == "" {
				body = minimalYAML
			}
			cfg, err := Load(writeConfig(t, body), tt.env)
			if tt.want != nil {
				checkErr(t, err, tt.want...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
}

// TestDurationsNeedAUnit: every duration setting, from the file or the
// environment, refuses a bare number other than 0 ("10": seconds? hours?)
// and names itself in the error, as it does for a malformed duration.
func TestDurationsNeedAUnit(t *testing.T) {
	// How to write each duration setting in the file; the test fails when
	// Config gains a duration this table lacks.
	files := map[string]func(v string) string{
		"delete_delay": func(v string) string { return minimalYAML + "delete_delay: " + v + "\n" },
		"postgres.status_interval": func(v string) string {
			return strings.Replace(minimalYAML, "storages:", "  status_interval: "+v+"\nstorages:", 1)
		},
		"storages.NAME.trash_retention": func(v string) string {
			return strings.Replace(minimalYAML, "root: /srv/media", "root: /srv/media\n    trash_retention: "+v, 1)
		},
	}
	paths := durationPaths(reflect.TypeFor[Config](), "")
	if len(paths) != len(files) {
		t.Fatalf("duration settings %q; the test covers %d", paths, len(files))
	}
	for _, path := range paths {
		body, ok := files[path]
		if !ok {
			t.Fatalf("duration setting %s is not covered", path)
		}
		field := strings.Replace(path, "NAME", "media", 1)
		env := EnvPrefix + envName(strings.ReplaceAll(field, ".", "_"))
		t.Run(path, func(t *testing.T) {
			for _, tt := range []struct{ value, want string }{
				{"10", field + ": 10 has no unit; write 10s (or 10m, 10h)"},
				{"720", field + ": 720 has no unit; write 720s (or 720m, 720h)"},
				{"1.5", field + ": 1.5 has no unit; write 1.5s (or 1.5m, 1.5h)"},
				{"10 seconds", field + `: "10 seconds" is not a duration; write a number and a unit, e.g. 10s, 5m or 1h30m`},
			} {
				_, err := load([]byte(body(tt.value)), nil)
				checkErr(t, err, "line ", tt.want)
				_, err = load([]byte(minimalYAML), []string{env + "=" + tt.value})
				checkErr(t, err, env+": "+tt.want)
			}
			// 0 needs no unit, and 10s is read as ten seconds.
			for value, want := range map[string]time.Duration{"0": 0, "10s": 10 * time.Second} {
				for _, c := range []struct {
					body string
					env  []string
				}{{body(value), nil}, {minimalYAML, []string{env + "=" + value}}} {
					doc, err := parseYAML([]byte(c.body))
					if err != nil {
						t.Fatal(err)
					}
					cfg := DefaultConfig()
					err = loadInto(cfg, doc, c.env)
					if err != nil && !strings.Contains(err.Error(), field+": must be positive") {
						t.Errorf("%s = %s (env %q): %v", field, value, c.env, err)
					}
					if got := durationAt(cfg, path); got != want {
						t.Errorf("%s = %s (env %q) read as %s", field, value, c.env, got)
					}
				}
			}
		})
	}
}

// durationPaths lists the paths of the duration settings of type t.
func durationPaths(t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return []string{path}
	case t.Kind() == reflect.Struct:
		var out []string
		for _, f := range yamlFields(t) {
			out = append(out, durationPaths(f.typ, joinPath(path, f.key))...)
		}
		return out
	case t.Kind() == reflect.Map:
		return durationPaths(t.Elem(), path+".NAME")
	case t.Kind() == reflect.Slice:
		return durationPaths(t.Elem(), path+"[N]")
	}
	return nil
}

func durationAt(cfg *Config, path string) time.Duration {
	switch path {
	case "delete_delay":
		return cfg.DeleteDelay
	case "postgres.status_interval":
		return cfg.Postgres.StatusInterval
	case "storages.NAME.trash_retention":
		if s := cfg.Storages["media"]; s != nil {
			return s.TrashRetention
		}
	}
	return -1
}

func TestDatabaseURL(t *testing.T) {
	noURL := strings.Replace(minimalYAML, "  url: postgres://cleaner:"+password+"@db:5432/app\n", "", 1)
	tests := []struct {
		name string
		body string
		env  []string
		want string
	}{
		{"used when url is empty", noURL, []string{"DATABASE_URL=postgres://d@h/db"}, "postgres://d@h/db"},
		{"the file wins", minimalYAML, []string{"DATABASE_URL=postgres://d@h/db"}, "postgres://cleaner:" + password + "@db:5432/app"},
		{"CDC_CLEANER_POSTGRES_URL wins", noURL, []string{"DATABASE_URL=postgres://d@h/db", "CDC_CLEANER_POSTGRES_URL=postgres://e@h/db"}, "postgres://e@h/db"},
		{"an empty override falls back", minimalYAML, []string{"DATABASE_URL=postgres://d@h/db", "CDC_CLEANER_POSTGRES_URL="}, "postgres://d@h/db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, tt.body), tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Postgres.URL != tt.want {
				t.Errorf("url = %q, want %q", cfg.Postgres.URL, tt.want)
			}
		})
	}
	_, err := Load(writeConfig(t, noURL), nil)
	checkErr(t, err, "postgres.url: empty; set it in the file, CDC_CLEANER_POSTGRES_URL or DATABASE_URL")
}

// validConfig returns a configuration that passes Validate.
func validConfig() *Config {
	c := DefaultConfig()
	c.Postgres.URL = "postgres://cleaner:" + password + "@db/app"
	media := DefaultStorage()
	media.Type, media.Root = "local", "/srv/media"
	bucket := DefaultStorage()
	bucket.Type, bucket.Bucket = "s3", "uploads"
	c.Storages = map[string]*Storage{"media": media, "bucket": bucket}
	c.Watch = []*Watch{
		{Table: "public.gallery_photo", Columns: []string{"image", "thumbnail"}, Storage: "media"},
		{Table: "public.document", Columns: []string{"attachments"}, JSONPath: "files[*].path", Storage: "bucket"},
	}
	c.Protect = []*Watch{{Table: "legacy_upload", Columns: []string{"file"}, Storage: "media"}}
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // each a prefix of one problem, in order; nil: valid
	}{
		{"valid", func(c *Config) {}, nil},
		{"key/value url", func(c *Config) { c.Postgres.URL = "host=db user=u password='" + password + "' dbname=app" }, nil},
		{"same table with other columns", func(c *Config) {
			c.Watch = append(c.Watch, &Watch{Table: `"public"."gallery_photo"`, Columns: []string{"other"}, Storage: "bucket"})
		}, nil},
		{"empty http.listen disables", func(c *Config) { c.HTTP.Listen = "" }, nil},
		{"trash on", func(c *Config) { c.Storages["media"].Trash = true }, nil},
		{"trash off, no prefix", func(c *Config) { c.Storages["media"].Trash = false; c.Storages["media"].TrashPrefix = "" }, nil},
		{"trash on by default, no prefix", func(c *Config) { c.Storages["media"].TrashPrefix = "" }, []string{"storages.media.trash_prefix: empty; the default is .trash/"}},
		{"status interval is an example of many problems at once", func(c *Config) {
			c.Postgres.URL = ""
			c.Postgres.StatusInterval = 0
			c.Log.Level = "verbose"
		}, []string{
			"postgres.url: empty; set it in the file, CDC_CLEANER_POSTGRES_URL or DATABASE_URL",
			"postgres.status_interval: must be positive",
			`log.level: "verbose" is not one of debug, info, warn, error`,
		}},
		{"url with another scheme", func(c *Config) { c.Postgres.URL = "mysql://u:" + password + "@h/db" },
			[]string{"postgres.url: the URL must start with postgres:// or postgresql://"}},
		{"unparsable url", func(c *Config) { c.Postgres.URL = "postgres://u:" + password + "%zz@h/db" },
			[]string{"postgres.url: cannot be parsed as a URL"}},
		{"unparsable key/value", func(c *Config) { c.Postgres.URL = "host=db password='" + password },
			[]string{"postgres.url: neither a postgres:// URL nor a key=value connection string"}},
		{"not a connection string", func(c *Config) { c.Postgres.URL = password },
			[]string{"postgres.url: neither"}},
		{"slot upper case", func(c *Config) { c.Postgres.Slot = "Cleaner" },
			[]string{`postgres.slot: "Cleaner" is not a valid replication slot name`}},
		{"slot dash", func(c *Config) { c.Postgres.Slot = "cdc-cleaner" }, []string{"postgres.slot:"}},
		{"slot too long", func(c *Config) { c.Postgres.Slot = strings.Repeat("a", 64) }, []string{"postgres.slot:"}},
		{"slot 63 bytes", func(c *Config) { c.Postgres.Slot = strings.Repeat("a", 63) }, nil},
		{"slot starting with a digit", func(c *Config) { c.Postgres.Slot = "1slot" }, nil},
		{"slot empty", func(c *Config) { c.Postgres.Slot = "" }, []string{"postgres.slot: empty"}},
		{"publication", func(c *Config) { c.Postgres.Publication = "Pub" },
			[]string{`postgres.publication: "Pub" is not a valid publication name`}},
		{"publication starting with a digit", func(c *Config) { c.Postgres.Publication = "1pub" }, []string{"postgres.publication:"}},
		{"negative status interval", func(c *Config) { c.Postgres.StatusInterval = -time.Second },
			[]string{"postgres.status_interval: must be positive"}},
		{"no storages", func(c *Config) { c.Storages = nil; c.Watch = c.Watch[:0]; c.Protect = nil }, []string{
			"storages: at least one storage is required",
			"watch: at least one table to watch is required",
		}},
		{"storage type typo", func(c *Config) { c.Storages["media"].Type = "lcoal" },
			[]string{`storages.media.type: "lcoal" is not one of local, s3`}},
		{"storage type missing", func(c *Config) { c.Storages["media"].Type = "" },
			[]string{"storages.media.type: required; one of local, s3"}},
		{"local root missing", func(c *Config) { c.Storages["media"].Root = "" },
			[]string{"storages.media.root: required for type local"}},
		{"local root relative", func(c *Config) { c.Storages["media"].Root = "srv/media" },
			[]string{`storages.media.root: "srv/media" is not an absolute path`}},
		{"s3 bucket missing", func(c *Config) { c.Storages["bucket"].Bucket = "" },
			[]string{"storages.bucket.bucket: required for type s3"}},
		{"s3 endpoint", func(c *Config) { c.Storages["bucket"].Endpoint = "127.0.0.1:9000" },
			[]string{`storages.bucket.endpoint: "127.0.0.1:9000" is not an http:// or https:// URL`}},
		{"storage name", func(c *Config) { c.Storages["my media"] = &Storage{Type: StorageLocal, Root: "/srv/elsewhere"} },
			[]string{`storages["my media"]: a storage name may only hold letters, digits, _ and -`}},
		{"nil storage", func(c *Config) { c.Storages["other"] = nil }, []string{"storages.other: no settings"}},
		{"keep glob", func(c *Config) { c.Storages["bucket"].Keep = []string{"defaults/*", "a[", "", `a\/**`} }, []string{
			`storages.bucket.keep[1]: "a[" is not a valid glob pattern`,
			"storages.bucket.keep[2]: empty pattern",
			// A valid glob, but not once "/**" is cut off: the pipeline
			// would refuse it, so the configuration does.
			`storages.bucket.keep[3]: "a\\/**" is not a valid glob pattern`,
		}},
		{"trash prefix without slash", func(c *Config) { c.Storages["media"].TrashPrefix = ".trash" },
			[]string{`storages.media.trash_prefix: ".trash" must end in /`}},
		{"trash prefix absolute", func(c *Config) { c.Storages["media"].TrashPrefix = "/trash/" },
			[]string{`storages.media.trash_prefix: "/trash/" must be relative`}},
		{"trash prefix escaping", func(c *Config) { c.Storages["media"].TrashPrefix = "../trash/" },
			[]string{`storages.media.trash_prefix: "../trash/" must be a clean relative path`}},
		{"trash prefix unclean", func(c *Config) { c.Storages["media"].TrashPrefix = "a//b/" },
			[]string{`storages.media.trash_prefix: "a//b/" must be a clean relative path`}},
		{"trash prefix dot", func(c *Config) { c.Storages["media"].TrashPrefix = "./" },
			[]string{`storages.media.trash_prefix: "./" must be a clean relative path`}},
		{"trash prefix nested ok", func(c *Config) { c.Storages["media"].TrashPrefix = "a/.trash/" }, nil},
		{"trash on without prefix", func(c *Config) { c.Storages["media"].Trash, c.Storages["media"].TrashPrefix = true, "" },
			[]string{"storages.media.trash_prefix: empty"}},
		{"trash retention negative", func(c *Config) { c.Storages["media"].TrashRetention = -time.Hour },
			[]string{"storages.media.trash_retention: -1h0m0s is negative"}},
		{"trash retention zero with trash", func(c *Config) {
			c.Storages["media"].Trash, c.Storages["media"].TrashRetention = true, 0
		}, []string{"storages.media.trash_retention: must be positive when trash is on"}},
		{"no watch", func(c *Config) { c.Watch = nil }, []string{"watch: at least one table to watch is required"}},
		{"nil watch entry", func(c *Config) { c.Watch[1] = nil }, []string{"watch[1]: empty entry"}},
		{"watch table empty", func(c *Config) { c.Watch[0].Table = "" }, []string{"watch[0].table: required"}},
		{"watch table unterminated quote", func(c *Config) { c.Watch[0].Table = `public."photo` },
			[]string{`watch[0].table: "public.\"photo": table name: unterminated double quote`}},
		{"watch table three parts", func(c *Config) { c.Watch[0].Table = "app.public.photo" },
			[]string{`watch[0].table: "app.public.photo": too many parts`}},
		{"watch table with a space", func(c *Config) { c.Watch[0].Table = "photo table" },
			[]string{`watch[0].table: "photo table": unexpected "table" after the name`}},
		{"watch columns empty", func(c *Config) { c.Watch[0].Columns = nil },
			[]string{"watch[0].columns: at least one column is required"}},
		{"watch column invalid", func(c *Config) { c.Watch[0].Columns[1] = "1thumb" },
			[]string{`watch[0].columns[1]: "1thumb": a name cannot start with '1'`}},
		{"watch storage undefined", func(c *Config) { c.Watch[1].Storage = "medai" },
			[]string{`watch[1].storage: storage "medai" is not defined under storages (defined: bucket, media)`}},
		{"watch storage empty", func(c *Config) { c.Watch[1].Storage = "" }, []string{"watch[1].storage: required"}},
		{"json path", func(c *Config) { c.Watch[1].JSONPath = "files[0].path" },
			[]string{`watch[1].json_path: "files[0].path": only [*] is supported`}},
		{"duplicate column", func(c *Config) {
			c.Watch = append(c.Watch, &Watch{Table: `gallery_photo`, Columns: []string{"new", `"image"`}, Storage: "media"})
		}, []string{"watch[2].columns[1]: column image of public.gallery_photo is already listed in watch[0].columns[0]"}},
		{"duplicate column in one entry", func(c *Config) { c.Watch[0].Columns = []string{"image", "IMAGE"} },
			[]string{"watch[0].columns[1]: column image of public.gallery_photo is already listed in watch[0].columns[0]"}},
		{"protected column also watched", func(c *Config) { c.Protect[0].Table, c.Protect[0].Columns = "public.document", []string{"attachments"} },
			[]string{"protect[0].columns[0]: column attachments of public.document is already listed in watch[1].columns[0]"}},
		{"protect problems", func(c *Config) { c.Protect[0].Storage, c.Protect[0].Columns = "nope", nil }, []string{
			"protect[0].columns: at least one column is required",
			`protect[0].storage: storage "nope" is not defined`,
		}},
		{"negative delete delay", func(c *Config) { c.DeleteDelay = -time.Second }, []string{"delete_delay: -1s is negative"}},
		{"http listen", func(c *Config) { c.HTTP.Listen = "9187" }, []string{`http.listen: "9187" is not host:port`}},
		{"http listen port", func(c *Config) { c.HTTP.Listen = "localhost:http" }, []string{`http.listen: "localhost:http" is not host:port`}},
		{"http listen any address", func(c *Config) { c.HTTP.Listen = ":9187" }, nil},
		{"log format", func(c *Config) { c.Log.Format = "text" }, []string{`log.format: "text" is not one of json, console`}},
		// Templates, derived files, match and strip_prefix (issue 16).
		{"active storage, two services on one table", func(c *Config) {
			c.Watch = append(c.Watch,
				&Watch{Table: "active_storage_blobs", Path: "{key[0:2]}/{key[2:4]}/{key}", Derived: []string{"va/ri/variants/{key}/"},
					Match: map[string]string{"service_name": "local"}, Storage: "media"},
				&Watch{Table: "active_storage_blobs", Columns: []string{"key"}, Match: map[string]string{"service_name": "amazon"}, Storage: "bucket"})
		}, nil},
		{"url column", func(c *Config) {
			c.Watch[0].StripPrefix = []string{"https://cdn.example.com/media/", "/media/"}
		}, nil},
		{"derived from a column", func(c *Config) {
			c.Watch = append(c.Watch, &Watch{Table: "avatar", Columns: []string{"file"}, Derived: []string{"thumbs/{file}.jpg"}, Storage: "media"})
		}, nil},
		{"columns and path", func(c *Config) { c.Watch[0].Path = "{image}" },
			[]string{"watch[0]: give either columns (each column's value is a path) or path"}},
		{"neither columns nor path", func(c *Config) { c.Watch[0].Columns = nil },
			[]string{`watch[0].columns: at least one column is required, e.g. [image]; or give path`}},
		{"unbalanced template", func(c *Config) { c.Watch[0].Columns = nil; c.Watch[0].Path = "{key[0:2]/{key}" },
			[]string{`watch[0].path: "{key[0:2]/{key}": unbalanced { at offset 0`}},
		{"slice out of order", func(c *Config) { c.Watch[0].Columns = nil; c.Watch[0].Path = "{key[4:2]}/{key}" },
			[]string{`watch[0].path: "{key[4:2]}/{key}": slice [4:2] of key: out of order: 4 is after 2`}},
		{"template column name", func(c *Config) { c.Watch[0].Columns = nil; c.Watch[0].Path = "{1key}" },
			[]string{`watch[0].path: "{1key}": column 1key: "1key": a name cannot start with '1'`}},
		{"template only sliced", func(c *Config) { c.Watch[0].Columns = nil; c.Watch[0].Path = "{key[0:2]}/x" },
			[]string{`watch[0].path: "{key[0:2]}/x": column "key" appears only sliced`}},
		{"template and json_path", func(c *Config) { c.Watch[1].Columns = nil; c.Watch[1].Path = "{attachments}" },
			[]string{"watch[1].json_path: applies to columns"}},
		{"same template twice", func(c *Config) {
			c.Watch = append(c.Watch, &Watch{Table: "blobs", Path: "{key}", Storage: "media"}, &Watch{Table: "public.blobs", Path: "{KEY}", Storage: "bucket"})
		}, []string{"watch[3].path: template {KEY} of public.blobs is already listed in watch[2].path"}},
		{"same column, other match", func(c *Config) {
			c.Watch = append(c.Watch, &Watch{Table: "gallery_photo", Columns: []string{"image"}, Match: map[string]string{"kind": "x"}, Storage: "bucket"})
		}, nil},
		{"same column, same match", func(c *Config) {
			c.Watch = append(c.Watch, &Watch{Table: "blobs", Columns: []string{"key"}, Match: map[string]string{"svc": "a"}, Storage: "media"},
				&Watch{Table: "blobs", Columns: []string{"key"}, Match: map[string]string{"SVC": "a"}, Storage: "bucket"})
		}, []string{"watch[3].columns[0]: column key of public.blobs is already listed in watch[2].columns[0]"}},
		{"match column name", func(c *Config) { c.Watch[0].Match = map[string]string{"1kind": "x"} },
			[]string{`watch[0].match.1kind: "1kind": a name cannot start with '1'`}},
		{"match column twice", func(c *Config) { c.Watch[0].Match = map[string]string{"kind": "x", `"kind"`: "y"} },
			[]string{"watch[0].match: column kind is named twice"}},
		{"derived on protect", func(c *Config) { c.Protect[0].Derived = []string{"thumbs/{file}"} },
			[]string{"protect[0].derived: applies to watch entries"}},
		{"derived with two columns", func(c *Config) { c.Watch[0].Derived = []string{"thumbs/{image}"} },
			[]string{"watch[0].derived: needs path, or exactly one column"}},
		{"derived names another column", func(c *Config) {
			c.Watch = append(c.Watch, &Watch{Table: "blobs", Path: "{key[0:2]}/{key}", Derived: []string{"va/{id}/", "{key}/x/{key[0:1]}"}, Storage: "media"})
		}, []string{`watch[2].derived[0]: "va/{id}/" names column id, which the path is not built from (key)`,
			`watch[2].derived[0]: "va/{id}/" does not name column key, which the path is built from`}},
		{"derived slicing only, or naming part of the path", func(c *Config) {
			c.Watch = append(c.Watch, &Watch{Table: "objects", Path: "{bucket}/{name}", Derived: []string{"thumbs/{name}", "{bucket[0:2]}/{name}/{bucket}/"}, Storage: "media"})
		}, []string{`watch[2].derived[0]: "thumbs/{name}" does not name column bucket, which the path is built from`}},
		{"derived slicing only", func(c *Config) {
			c.Watch = append(c.Watch, &Watch{Table: "blobs", Path: "{key}", Derived: []string{"{key[0:2]}/{key[2:4]}/thumbs/"}, Storage: "media"})
		}, []string{`watch[2].derived[0]: "{key[0:2]}/{key[2:4]}/thumbs/": column "key" appears only sliced`}},
		{"derived is the path", func(c *Config) {
			c.Watch = append(c.Watch, &Watch{Table: "blobs", Path: "{key}", Derived: []string{"{key}", "fixed/"}, Storage: "media"})
		}, []string{`watch[2].derived[0]: "{key}" is the path itself`, `watch[2].derived[1]: "fixed/" names no column`}},
		{"empty strip_prefix", func(c *Config) { c.Watch[0].StripPrefix = []string{"/media/", ""} },
			[]string{"watch[0].strip_prefix[1]: empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error contains the password: %v", err)
			}
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var fe *FieldError
				if !errors.As(e, &fe) {
					t.Errorf("%v is not a *FieldError", e)
				}
				got = append(got, e.Error())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d:\n got %s\nwant %s...", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestValidateFillsNames(t *testing.T) {
	c := validConfig()
	c.Watch[0].Table = `"My Schema"."Photo Table"`
	c.Watch[0].Columns = []string{`"ImageFile"`, "Thumb"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	w := c.Watch[0]
	if w.Schema != "My Schema" || w.Name != "Photo Table" || !reflect.DeepEqual(w.ColNames, []string{"ImageFile", "thumb"}) {
		t.Errorf("got %q %q %q", w.Schema, w.Name, w.ColNames)
	}
	if p := c.Protect[0]; p.Schema != "public" || p.Name != "legacy_upload" {
		t.Errorf("protect got %q %q", p.Schema, p.Name)
	}
	// Validating again gives the same result.
	if err := c.Validate(); err != nil || len(w.ColNames) != 2 {
		t.Errorf("second Validate: %v, %q", err, w.ColNames)
	}
}

// TestColumns: the configuration builds every column once, watch entries
// first, with its JSON path parsed and the field it came from.
func TestColumns(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	files := cdccleaner.JSONPath{{Key: "files"}, {Each: true}, {Key: "path"}}
	want := []cdccleaner.Column{
		{Storage: "media", Schema: "public", Table: "gallery_photo", Name: "image", Field: "watch[0].columns[0]"},
		{Storage: "media", Schema: "public", Table: "gallery_photo", Name: "thumbnail", Field: "watch[0].columns[1]"},
		{Storage: "bucket", Schema: "public", Table: "document", Name: "attachments", JSONPath: files, Field: "watch[1].columns[0]"},
		{Storage: "media", Schema: "public", Table: "legacy_upload", Name: "file", Protect: true, Field: "protect[0].columns[0]"},
	}
	got := c.Columns()
	if !slices.EqualFunc(got, want, cdccleaner.Column.Equal) {
		t.Errorf("Columns() =\n%+v\nwant\n%+v", got, want)
	}
	if got := c.EntryColumns("protect", 0); len(got) != 1 || !got[0].Equal(want[3]) {
		t.Errorf("EntryColumns(protect, 0) = %+v", got)
	}
	// More protect entries than watch entries.
	for i := range 3 {
		c.Protect = append(c.Protect, &Watch{Table: fmt.Sprintf("public.p%d", i), Columns: []string{"f"}, Storage: "media"})
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Columns(); len(got) != len(want)+3 || got[len(got)-1].Table != "p2" || got[len(got)-1].Field != "protect[3].columns[0]" {
		t.Errorf("Columns() with 4 protect entries = %+v", got)
	}
}

func TestParseQualifiedName(t *testing.T) {
	tests := []struct {
		in, schema, name, err string
	}{
		{in: "public.gallery_photo", schema: "public", name: "gallery_photo"},
		{in: "gallery_photo", schema: "public", name: "gallery_photo"},
		{in: "Public.Gallery_Photo", schema: "public", name: "gallery_photo"},
		{in: `"My Schema"."Photo Table"`, schema: "My Schema", name: "Photo Table"},
		{in: `"a""b".c`, schema: `a"b`, name: "c"},
		{in: `"a.b"`, schema: "public", name: "a.b"},
		{in: `  app . "T"  `, schema: "app", name: "T"},
		{in: "app.t$1", schema: "app", name: "t$1"},
		{in: "café.Ünïcode", schema: "café", name: "Ünïcode"},
		{in: "", err: "empty name"},
		{in: "app.", err: "empty name"},
		{in: ".t", err: "cannot start with '.'"},
		{in: "a.b.c", err: "too many parts"},
		{in: `"unterminated`, err: "unterminated double quote"},
		{in: `""`, err: "empty quoted name"},
		{in: "a b", err: `unexpected "b"`},
		{in: "a-b", err: `unexpected "-b"`},
		{in: `"a"b`, err: `unexpected "b"`},
		{in: strings.Repeat("x", 64), err: "at most 63"},
		{in: `"a` + "\x00" + `"`, err: "NUL"},
		{in: `"` + "\xff" + `"`, err: "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			schema, name, err := ParseQualifiedName(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || schema != tt.schema || name != tt.name {
				t.Errorf("got %q, %q, %v; want %q, %q", schema, name, err, tt.schema, tt.name)
			}
		})
	}
}

func TestParseIdentifier(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: "image", want: "image"},
		{in: "ImageFile", want: "imagefile"},
		{in: `"ImageFile"`, want: "ImageFile"},
		{in: `"say ""cheese"""`, want: `say "cheese"`},
		{in: " _x1 ", want: "_x1"},
		{in: "a.b", err: `unexpected ".b"`},
		{in: "", err: "empty name"},
		{in: "1a", err: "cannot start with '1'"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseIdentifier(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestQuoteIdentifier(t *testing.T) {
	tests := []struct{ in, want string }{
		{"image", `"image"`},
		{"ImageFile", `"ImageFile"`},
		{`a"b`, `"a""b"`},
		{`"; DROP TABLE x; --`, `"""; DROP TABLE x; --"`},
		{"a\x00b", `"ab"`},
	}
	for _, tt := range tests {
		if got := QuoteIdentifier(tt.in); got != tt.want {
			t.Errorf("QuoteIdentifier(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if tt.in != "a\x00b" {
			if back, err := ParseIdentifier(QuoteIdentifier(tt.in)); err != nil || back != tt.in {
				t.Errorf("round trip of %q: %q, %v", tt.in, back, err)
			}
		}
	}
}

func TestFormatIdentifier(t *testing.T) {
	tests := []struct{ in, want string }{
		{"image", "image"},
		{"image_2$", "image_2$"},
		{"ImageFile", `"ImageFile"`},
		{"café", "café"},
		{"Ünïcode", "Ünïcode"}, // only ASCII letters are folded
		{"with space", `"with space"`},
		{"2fast", `"2fast"`},
		{`a"b`, `"a""b"`},
	}
	for _, tt := range tests {
		got := FormatIdentifier(tt.in)
		if got != tt.want {
			t.Errorf("FormatIdentifier(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if back, err := ParseIdentifier(got); err != nil || back != tt.in {
			t.Errorf("ParseIdentifier(%s) = %q, %v; want %q back", got, back, err, tt.in)
		}
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		err  string
	}{
		{in: "1GiB", want: 1 << 30},
		{in: "512MiB", want: 512 << 20},
		{in: "10MB", want: 10_000_000},
		{in: "1024", want: 1024},
		{in: "1024B", want: 1024},
		{in: "1.5GiB", want: 3 << 29},
		{in: "1.5 gib", want: 3 << 29},
		{in: "2KiB", want: 2048},
		{in: "2kb", want: 2000},
		{in: "1TiB", want: 1 << 40},
		{in: "1TB", want: 1e12},
		{in: ".5KiB", want: 512},
		{in: "0.0001KB", want: 0},
		{in: "0", want: 0},
		{in: "16EiB", err: "too large"},
		{in: "18446744073709551615", want: 1<<64 - 1},
		{in: "18446744073709551616", err: "too large"},
		{in: "", err: "not a size"},
		{in: "GiB", err: "not a size"},
		{in: "1.2.3MB", err: "not a size"},
		{in: "-1GiB", err: "not a size"},
		{in: "1 GB 2", err: "unknown unit"},
		{in: "1Gb/s", err: "unknown unit"},
		{in: "1K", err: "unknown unit"},
		{in: strings.Repeat("9", 50), err: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseByteSize(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %d, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
			if back, err := ParseByteSize(got.String()); err != nil || back != got {
				t.Errorf("String %q parses back as %d, %v", got.String(), back, err)
			}
		})
	}

	strs := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"}, {1, "1B"}, {1000, "1KB"}, {1024, "1KiB"}, {1 << 30, "1GiB"},
		{3 << 29, "1536MiB"}, {10_000_000, "10MB"}, {1023, "1023B"}, {1 << 62, "4EiB"},
	}
	for _, tt := range strs {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", uint64(tt.in), got, tt.want)
		}
	}

	yamls := []struct {
		in   string
		want ByteSize
		err  string
	}{
		{in: "s: 1GiB", want: 1 << 30},
		{in: "s: 4096", want: 4096},
		{in: "s: 0x10", want: 16},
		{in: `s: "2048"`, want: 2048},
		{in: "s: 1.5", want: 1},
		{in: "s: -1", err: "line 1"},
		{in: "s: [1]", err: "line 1"},
		{in: "s: 1 parsec", err: "unknown unit"},
	}
	for _, tt := range yamls {
		var v struct{ S ByteSize }
		err := yaml.Unmarshal([]byte(tt.in), &v)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: got %d, %v; want error %q", tt.in, v.S, err, tt.err)
			}
			continue
		}
		if err != nil || v.S != tt.want {
			t.Errorf("%s: got %d, %v; want %d", tt.in, v.S, err, tt.want)
		}
	}
	out, err := yaml.Marshal(struct{ S ByteSize }{3 << 29})
	if err != nil || string(out) != "s: 1536MiB\n" {
		t.Errorf("Marshal = %q, %v", out, err)
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://cleaner:secret@127.0.0.1:5432/app", "postgres://cleaner:xxxxx@127.0.0.1:5432/app"},
		{"postgresql://cleaner:s%40cr%3At@db/app?sslmode=require", "postgresql://cleaner:xxxxx@db/app?sslmode=require"},
		{"postgres://cleaner@db/app", "postgres://cleaner@db/app"},
		{"postgres://db/app?user=u&password=secret&sslmode=disable", "postgres://db/app?user=u&password=xxxxx&sslmode=disable"},
		{"postgres://u:secret@h1:5432,h2:5433/app", "postgres://u:xxxxx@h1:5432,h2:5433/app"},
		{"host=x password=secret dbname=app", "host=x password=xxxxx dbname=app"},
		{"host=x password = 'sec ret\\' x' dbname=app", "host=x password = xxxxx dbname=app"},
		{"host=x PASSWORD=secret sslpassword=secret", "host=x PASSWORD=xxxxx sslpassword=xxxxx"},
		{"host=x user=u", "host=x user=u"},
		{"", ""},
		{"postgres://u:sec ret@h/db", UnparsableRedacted},
		{"postgres://u:p@ss:secret@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:secret%zz@h/db", UnparsableRedacted},
		{"host=x password='secret", UnparsableRedacted},
		{"host=x secret", UnparsableRedacted},
		{"secret", UnparsableRedacted},
	}
	for _, tt := range tests {
		got := RedactURL(tt.in)
		if got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "secret") || strings.Contains(got, "sec ret") {
			t.Errorf("RedactURL(%q) = %q shows the password", tt.in, got)
		}
	}
}

func TestErrorsNeverContainPassword(t *testing.T) {
	bodies := map[string]string{
		"validation":        strings.Replace(minimalYAML, "type: local", "type: lcoal", 1),
		"bad url":           strings.Replace(minimalYAML, "@db:5432", "%zz@db:5432", 1),
		"bad dsn":           strings.Replace(minimalYAML, "postgres://cleaner:"+password+"@db:5432/app", `"host=db password='`+password+`"`, 1),
		"url in wrong type": strings.Replace(minimalYAML, "storages:", "  status_interval: postgres://u:"+password+"@h/db\nstorages:", 1),
		"url as a size":     strings.Replace(minimalYAML, "storages:", "  max_lag_warn: "+password+"\nstorages:", 1),
		"yaml syntax":       strings.Replace(minimalYAML, "/app", "/app: [", 1),
		"unknown key":       minimalYAML + "x: " + password + "\n",
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			_, err := Load(writeConfig(t, body), []string{
				"CDC_CLEANER_POSTGRES_UR=postgres://u:" + password + "@h/db",
				"DATABASE_URL=postgres://u:" + password + "@h/db",
			})
			checkErr(t, err)
		})
	}
}

// TestErrorsHideThePasswordBeforeDecoding covers errors found before the
// file is decoded, when cfg.Postgres.URL is still empty: the password must
// be hidden wherever it appears, and the setting still named.
func TestErrorsHideThePasswordBeforeDecoding(t *testing.T) {
	url := "postgres://cleaner:" + password + "@db/app"
	noPassword := strings.Replace(minimalYAML, ":"+password+"@", "@", 1)
	tests := []struct {
		name string
		body string
		env  []string
		want []string
	}{
		{
			name: "url where the postgres mapping belongs",
			body: "postgres: " + url + "\n",
			want: []string{"line 1", "postgres: expected a mapping", "postgres://cleaner:xxxxx@db/app"},
		},
		{
			name: "url as a duration",
			body: "postgres:\n  status_interval: " + url + "\n",
			want: []string{"line 2", "postgres.status_interval:", "is not a duration"},
		},
		{
			name: "url as a size",
			body: "postgres:\n  max_lag_warn: " + url + "\n",
			want: []string{"line 2", "postgres.max_lag_warn:", "is not a size"},
		},
		{
			name: "url with a tag as a duration",
			body: "postgres:\n  status_interval: !x " + url + "\n",
			want: []string{"line 2", "postgres.status_interval:"},
		},
		{
			name: "password of postgres.url as a size",
			body: "postgres:\n  url: " + url + "\n  max_lag_warn: " + password + "\n",
			want: []string{"line 3", "postgres.max_lag_warn:", "is not a size"},
		},
		{
			name: "password of postgres.url, set after the error, as a size",
			body: "postgres:\n  max_lag_warn: " + password + "\n  url: " + url + "\n",
			want: []string{"line 2", "postgres.max_lag_warn:", "is not a size"},
		},
		{
			name: "password of a merged postgres.url as a size",
			body: "base: &p {url: '" + url + "'}\npostgres:\n  <<: *p\n  max_lag_warn: " + password + "\n",
			want: []string{"line 4", "postgres.max_lag_warn:", "is not a size"},
		},
		{
			name: "password of a key/value postgres.url as a duration",
			body: "postgres:\n  url: host=db password='" + password + "'\n  status_interval: " + password + "\n",
			want: []string{"line 3", "postgres.status_interval:", "is not a duration"},
		},
		{
			name: "key/value string with a password as a duration",
			body: "postgres:\n  status_interval: host=db password=" + password + "\n",
			want: []string{"line 2", "postgres.status_interval:", "is not a duration"},
		},
		{
			name: "url in a variable as a duration",
			body: noPassword,
			env:  []string{"CDC_CLEANER_POSTGRES_STATUS_INTERVAL=" + url},
			want: []string{"CDC_CLEANER_POSTGRES_STATUS_INTERVAL", "postgres.status_interval:", "is not a duration"},
		},
		{
			name: "url in a variable as a list",
			body: noPassword,
			env:  []string{"CDC_CLEANER_WATCH_0_COLUMNS=[" + url},
			want: []string{"CDC_CLEANER_WATCH_0_COLUMNS", "watch[0].columns:"},
		},
		{
			name: "password of DATABASE_URL as a size in the file",
			body: "postgres:\n  max_lag_warn: " + password + "\n",
			env:  []string{"DATABASE_URL=" + url},
			want: []string{"line 2", "postgres.max_lag_warn:", "is not a size"},
		},
		{
			name: "password of CDC_CLEANER_POSTGRES_URL as a size in a variable",
			body: noPassword,
			env: []string{"CDC_CLEANER_POSTGRES_URL=postgres://other:" + password + "@db2/app",
				"CDC_CLEANER_POSTGRES_MAX_LAG_WARN=" + password},
			want: []string{"CDC_CLEANER_POSTGRES_MAX_LAG_WARN", "postgres.max_lag_warn:", "is not a size"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load([]byte(tt.body), tt.env)
			checkErr(t, err, tt.want...)
		})
	}
}

// TestErrorsHideAQuotedPassword: a message that quotes a value escapes some
// characters ("a\"b"); the password must not show in that form either.
func TestErrorsHideAQuotedPassword(t *testing.T) {
	const pw = `hunter"2\secret`
	body := "postgres:\n  url: 'host=db password=" + pw + "'\n  max_lag_warn: '" + pw + "'\n"
	_, err := load([]byte(body), nil)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "postgres.max_lag_warn:") {
		t.Errorf("error %q does not name postgres.max_lag_warn", msg)
	}
	if q := strconv.Quote(pw); strings.Contains(msg, pw) || strings.Contains(msg, q[1:len(q)-1]) {
		t.Errorf("error shows the password: %q", msg)
	}
}

// TestAliasKeys: a key written as an alias (*k) is the key its anchor
// names, checked and decoded like any other; yaml's KnownFields rejected
// unknown ones, and so must the checker that replaced it.
func TestAliasKeys(t *testing.T) {
	// The anchors sit on keep patterns, which accept any name.
	const anchors = "storages:\n  media:\n    type: local\n    root: /srv/media\n    keep: [&slto slto, &protetc protetc, &rooot rooot, &colums colums, &si status_interval, &slot slot, &media media]\n"
	tests := []struct {
		name string
		body string
		want []string
	}{
		{
			name: "unknown key at the top level",
			body: anchors + "*protetc : []\n",
			want: []string{"line 6", `unknown key "protetc" at the top level`, "protect"},
		},
		{
			name: "unknown key in postgres",
			body: anchors + "postgres:\n  *slto : x\n",
			want: []string{"line 7", `unknown key "slto" in postgres`, "slot"},
		},
		{
			name: "unknown key in a flow mapping in postgres",
			body: anchors + "postgres: {*slto : x}\n",
			want: []string{"line 6", `unknown key "slto" in postgres`},
		},
		{
			name: "unknown key in a watch entry",
			body: anchors + "watch:\n  - table: t\n    columns: [c]\n    storage: media\n    *colums : [x]\n",
			want: []string{"line 10", `unknown key "colums" in watch[N]`},
		},
		{
			name: "unknown key in a storage",
			body: anchors + "  other:\n    type: local\n    *rooot : /x\n",
			want: []string{"line 8", `unknown key "rooot" in storages.NAME`},
		},
		{
			name: "known key, checked",
			body: anchors + "postgres:\n  *si : 10\n",
			want: []string{"line 7", "postgres.status_interval: 10 has no unit"},
		},
		{
			name: "known key, duplicated",
			body: anchors + "postgres:\n  slot: a\n  *slot : b\n",
			want: []string{"line 8", `"slot" already defined at line 7`},
		},
		{
			name: "storage name, duplicated",
			body: anchors + "  *media : {type: local, root: /x}\n",
			want: []string{"line 6", `"media" already defined at line 2`},
		},
		{
			name: "alias of a mapping as a key",
			body: "base: &b {x: 1}\npostgres:\n  ? *b\n  : y\n",
			want: []string{"line 3: a key in postgres is a mapping, not a name; known keys: url, slot,"},
		},
		{
			name: "alias of \"<<\" is a key, not a merge",
			body: "storages:\n  media: {type: local, root: /srv/media, keep: [&m \"<<\"]}\npostgres:\n  *m : {slot: a}\n",
			want: []string{"line 4", `unknown key "<<" in postgres`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load([]byte(tt.body), nil)
			checkErr(t, err, tt.want...)
		})
	}

	t.Run("known key, decoded", func(t *testing.T) {
		body := anchors + "postgres:\n  url: postgres://db/app\n  *slot : other\nwatch: [{table: t, columns: [c], storage: media}]\n"
		cfg, err := load([]byte(body), nil)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Postgres.Slot != "other" {
			t.Errorf("postgres.slot = %q, want other", cfg.Postgres.Slot)
		}
	})
}

// FuzzLoad loads arbitrary bytes as a configuration file, once with an
// empty environment and once with DATABASE_URL set (so that files without
// postgres.url get past it), and checks that:
//
//   - no input panics;
//   - an error never shows DATABASE_URL's password;
//   - a configuration that loads validates, again, with every watch and
//     protect entry resolved (schema, table, column names, JSON path, a
//     defined storage);
//   - written back as YAML, it loads again to the same configuration: what
//     was accepted is what the settings say, not an accident of parsing.
//
// The seeds are below and in testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	full, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte(minimalYAML))
	f.Add([]byte(""))
	f.Add([]byte("storages:\n  a: &a {type: s3, bucket: b}\n  b:\n    <<: *a\n    keep: ['[']\n"))
	f.Add([]byte("watch:\n  - {table: '\"A\"\"b\".c', columns: ['\"X\"'], json_path: 'a[*].b', storage: a}\n"))
	f.Add([]byte("storages: {m: {type: local, root: /a, keep: [&s slot]}}\npostgres: {url: 'postgres://db/x', *s : b}\nwatch: [{table: t, columns: [c], storage: m}]\n"))
	environs := [][]string{nil, {"DATABASE_URL=postgres://u:" + password + "@h/db"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, environ := range environs {
			cfg, err := load(data, environ)
			if err != nil {
				if environ != nil && strings.Contains(err.Error(), password) {
					t.Fatalf("the error shows DATABASE_URL's password: %v", err)
				}
				continue
			}
			checkLoaded(t, cfg)
			out, err := yaml.Marshal(cfg)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			again, err := load(out, nil)
			if err != nil {
				t.Fatalf("the accepted configuration, written back, does not load: %v\n%s", err, out)
			}
			checkLoaded(t, again)
			if out2, _ := yaml.Marshal(again); string(out2) != string(out) {
				t.Fatalf("the accepted configuration, written back and loaded, changed:\n%s\nbecame\n%s", out, out2)
			}
			if !reflect.DeepEqual(watchNames(cfg), watchNames(again)) {
				t.Fatalf("resolved names changed when written back: %q -> %q", watchNames(cfg), watchNames(again))
			}
		}
	})
}

// checkLoaded checks a configuration load accepted: it validates again, and
// every watch and protect entry is resolved against a defined storage.
func checkLoaded(t *testing.T, cfg *Config) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a loaded configuration does not validate: %v", err)
	}
	if cfg.Postgres.URL == "" || len(cfg.Storages) == 0 || len(cfg.Watch) == 0 {
		t.Fatalf("loaded without url, storages or watch: %+v", cfg)
	}
	for name, s := range cfg.Storages {
		if s == nil || (s.Type != StorageLocal && s.Type != StorageS3) {
			t.Fatalf("storage %q: %+v", name, s)
		}
	}
	for _, w := range append(append([]*Watch{}, cfg.Watch...), cfg.Protect...) {
		switch {
		case w == nil:
			t.Fatal("a nil watch entry was accepted")
		case w.Schema == "" || w.Name == "" || len(w.Columns) == 0 || len(w.ColNames) != len(w.Columns):
			t.Fatalf("watch entry not resolved: %+v", w)
		case (w.JSONPath != "") != (w.JSONSteps != nil):
			t.Fatalf("json_path %q resolved to %v", w.JSONPath, w.JSONSteps)
		case cfg.Storages[w.Storage] == nil:
			t.Fatalf("watch entry names storage %q, which is not defined", w.Storage)
		}
		for _, c := range w.ColNames {
			if c == "" {
				t.Fatalf("empty column name in %+v", w)
			}
		}
	}
}

// watchNames lists the resolved names of every watch and protect entry.
func watchNames(cfg *Config) []string {
	var out []string
	for _, w := range append(append([]*Watch{}, cfg.Watch...), cfg.Protect...) {
		out = append(out, w.Schema+"|"+w.Name+"|"+strings.Join(w.ColNames, "|")+"|"+w.JSONSteps.String())
	}
	return out
}

func TestOverlappingLocalRootsAreRejected(t *testing.T) {
	for name, roots := range map[string][2]string{
		"same":        {"/srv/media", "/srv/media/"},
		"nested":      {"/srv/media", "/srv/media/avatars"},
		"nested back": {"/srv/media/avatars", "/srv/media"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Postgres.URL = "postgres://x@y/z"
			cfg.Storages = map[string]*Storage{
				"a": {Type: StorageLocal, Root: roots[0]},
				"b": {Type: StorageLocal, Root: roots[1]},
			}
			cfg.Watch = []*Watch{{Table: "t", Columns: []string{"c"}, Storage: "a"}}
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), "storages.b.root") || !strings.Contains(err.Error(), "overlaps") {
				t.Fatalf("err = %v, want an overlap error on storages.b.root", err)
			}
		})
	}
	cfg := DefaultConfig()
	cfg.Postgres.URL = "postgres://x@y/z"
	cfg.Storages = map[string]*Storage{
		"a": {Type: StorageLocal, Root: "/srv/media"},
		"b": {Type: StorageLocal, Root: "/srv/media2"},
	}
	cfg.Watch = []*Watch{{Table: "t", Columns: []string{"c"}, Storage: "a"}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("siblings /srv/media and /srv/media2: %v", err)
	}
}

func TestS3PrefixRules(t *testing.T) {
	tests := map[string]struct {
		storages map[string]*Storage
		want     string // substring of the error; "" for none
	}{
		"prefix without a slash": {map[string]*Storage{"a": {Type: StorageS3, Bucket: "b", Prefix: "media"}}, "storages.a.prefix"},
		"empty and slash-terminated prefixes are fine": {map[string]*Storage{
			"a": {Type: StorageS3, Bucket: "b", Prefix: ""}, "c": {Type: StorageS3, Bucket: "other", Prefix: "media/"}}, ""},
		"nested prefixes in one bucket": {map[string]*Storage{
			"a": {Type: StorageS3, Bucket: "b", Prefix: ""}, "c": {Type: StorageS3, Bucket: "b", Prefix: "avatars/"}}, "overlaps storage"},
		"same prefix": {map[string]*Storage{
			"a": {Type: StorageS3, Bucket: "b", Prefix: "m/"}, "c": {Type: StorageS3, Bucket: "b", Prefix: "m/"}}, "overlaps storage"},
		"sibling prefixes": {map[string]*Storage{
			"a": {Type: StorageS3, Bucket: "b", Prefix: "media/"}, "c": {Type: StorageS3, Bucket: "b", Prefix: "media-avatars/"}}, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Postgres.URL = "postgres://x@y/z"
			cfg.Storages = tt.storages
			cfg.Watch = []*Watch{{Table: "t", Columns: []string{"c"}, Storage: "a"}}
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	cfg := DefaultConfig()
	cfg.Postgres.URL = "postgres://x@y/z"
	cfg.Postgres.Publication = strings.Repeat("p", 35)
	cfg.Storages = map[string]*Storage{"a": {Type: StorageLocal, Root: "/srv"}}
	cfg.Watch = []*Watch{{Table: "t", Columns: []string{"c"}, Storage: "a"}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "postgres.publication") {
		t.Fatalf("a 35-character publication name: %v", err)
	}
}

// TestS3OverlapComparesNormalizedEndpoints: two spellings of one endpoint
// (issue 12, item 7: "http://h:p" and "http://h:p/") are one server, so
// the same bucket and overlapping prefixes behind them are refused; AWS
// bucket names are global, so AWS endpoints of any region are one server.
// Genuinely different servers, ports, buckets and prefixes are accepted.
func TestS3OverlapComparesNormalizedEndpoints(t *testing.T) {
	type side struct{ endpoint, region, bucket, prefix string }
	tests := []struct {
		name           string
		media, uploads side
		pathStyle      [2]bool
		overlap        bool
	}{
		{"trailing slash", side{"http://h:9000", "", "b", "m/"}, side{"http://h:9000/", "", "b", "m/"}, [2]bool{true, true}, true},
		{"trailing slash, nested prefixes", side{"http://h:9000/", "", "b", ""}, side{"http://h:9000", "", "b", "avatars/"}, [2]bool{true, true}, true},
		{"upper-case scheme and host", side{"HTTP://MinIO.Example:9000", "", "b", "m/"}, side{"http://minio.example:9000", "", "b", "m/"}, [2]bool{}, true},
		{"trailing dot of the host", side{"http://minio.example.:9000", "", "b", "m/"}, side{"http://minio.example:9000", "", "b", "m/"}, [2]bool{}, true},
		{"explicit port 80", side{"http://minio.example:80", "", "b", "m/"}, side{"http://minio.example", "", "b", "m/"}, [2]bool{}, true},
		{"explicit port 443", side{"https://minio.example:443/", "", "b", "m/"}, side{"https://minio.example", "", "b", "m/"}, [2]bool{}, true},
		{"http and https on the standard ports", side{"http://minio.example", "", "b", "m/"}, side{"https://minio.example", "", "b", "m/"}, [2]bool{}, true},
		{"http and https on one port", side{"http://h:9000", "", "b", "m/"}, side{"https://h:9000", "", "b", "m/"}, [2]bool{}, true},
		{"port with a leading zero", side{"http://h:09000", "", "b", "m/"}, side{"http://h:9000", "", "b", "m/"}, [2]bool{}, true},
		{"user information and query", side{"http://user@h:9000/?x=1#f", "", "b", "m/"}, side{"http://h:9000", "", "b", "m/"}, [2]bool{}, true},
		{"path with and without trailing slash", side{"http://proxy.example/s3/", "", "b", "m/"}, side{"http://proxy.example/s3", "", "b", "m/"}, [2]bool{}, true},
		{"localhost and 127.0.0.1", side{"http://localhost:9000", "", "b", "m/"}, side{"http://127.0.0.1:9000", "", "b", "m/"}, [2]bool{}, true},
		{"[::1] and 127.0.0.2", side{"http://[::1]:9000", "", "b", "m/"}, side{"http://127.0.0.2:9000", "", "b", "m/"}, [2]bool{}, true},
		{"IPv4-mapped IPv6 address", side{"http://[::ffff:10.0.0.5]:9000", "", "b", "m/"}, side{"http://10.0.0.5:9000", "", "b", "m/"}, [2]bool{}, true},
		{"IPv6 address spelled long", side{"http://[2001:DB8:0:0::1]:9000", "", "b", "m/"}, side{"http://[2001:db8::1]:9000/", "", "b", "m/"}, [2]bool{}, true},
		{"AWS default and its global endpoint", side{"", "us-east-1", "b", "m/"}, side{"https://s3.amazonaws.com", "", "b", "m/"}, [2]bool{}, true},
		{"AWS default in two regions", side{"", "us-east-1", "b", "m/"}, side{"", "eu-west-1", "b", "m/"}, [2]bool{}, true},
		{"AWS default and a regional endpoint", side{"", "", "b", "m/"}, side{"https://s3.eu-west-1.amazonaws.com/", "eu-west-1", "b", "m/"}, [2]bool{}, true},
		{"AWS regional and dual-stack endpoints", side{"https://s3.us-west-2.amazonaws.com", "", "b", ""}, side{"https://S3.DualStack.eu-west-1.amazonaws.com.", "", "b", "x/"}, [2]bool{}, true},
		{"path-style and virtual-hosted", side{"http://h:9000", "", "b", "m/"}, side{"http://h:9000", "", "b", "m/"}, [2]bool{true, false}, true},
		{"bucket name in another case", side{"http://h:9000", "", "Media", "m/"}, side{"http://h:9000", "", "media", "m/"}, [2]bool{}, true},
		{"prefix with a leading slash", side{"http://h:9000", "", "b", "/m/"}, side{"http://h:9000", "", "b", "m/a/"}, [2]bool{}, true},
		{"prefix with a double slash", side{"http://h:9000", "", "b", "m//a/"}, side{"http://h:9000", "", "b", "m/a/"}, [2]bool{}, true},

		{"different hosts", side{"http://minio-a:9000", "", "b", "m/"}, side{"http://minio-b:9000", "", "b", "m/"}, [2]bool{}, false},
		{"different ports", side{"http://h:9000", "", "b", "m/"}, side{"http://h:9001/", "", "b", "m/"}, [2]bool{}, false},
		{"different loopback ports", side{"http://localhost:9000", "", "b", "m/"}, side{"http://127.0.0.1:9001", "", "b", "m/"}, [2]bool{}, false},
		{"different addresses", side{"http://10.0.0.1:9000", "", "b", "m/"}, side{"http://10.0.0.2:9000", "", "b", "m/"}, [2]bool{}, false},
		{"different proxy paths", side{"http://proxy.example/a", "", "b", "m/"}, side{"http://proxy.example/b/", "", "b", "m/"}, [2]bool{}, false},
		{"different buckets", side{"http://h:9000", "", "b", "m/"}, side{"http://h:9000/", "", "c", "m/"}, [2]bool{}, false},
		{"sibling prefixes", side{"http://h:9000", "", "b", "media/"}, side{"http://h:9000/", "", "b", "media-avatars/"}, [2]bool{}, false},
		{"AWS and an S3-compatible server", side{"", "us-east-1", "b", "m/"}, side{"http://minio.example:9000", "us-east-1", "b", "m/"}, [2]bool{}, false},
		{"a host that only ends like AWS", side{"", "us-east-1", "b", "m/"}, side{"https://s3.notamazonaws.com", "", "b", "m/"}, [2]bool{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Postgres.URL = "postgres://x@y/z"
			cfg.Storages = map[string]*Storage{
				"media":   {Type: StorageS3, Endpoint: tt.media.endpoint, Region: tt.media.region, Bucket: tt.media.bucket, Prefix: tt.media.prefix, PathStyle: tt.pathStyle[0]},
				"uploads": {Type: StorageS3, Endpoint: tt.uploads.endpoint, Region: tt.uploads.region, Bucket: tt.uploads.bucket, Prefix: tt.uploads.prefix, PathStyle: tt.pathStyle[1]},
			}
			cfg.Watch = []*Watch{{Table: "t", Columns: []string{"c"}, Storage: "media"}}
			err := cfg.Validate()
			if !tt.overlap {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "storages.uploads.prefix" || !strings.Contains(fe.Problem, `overlaps storage "media"`) {
				t.Fatalf("err = %v, want an overlap error on storages.uploads.prefix naming storage media", err)
			}
			if errs := err.(interface{ Unwrap() []error }).Unwrap(); len(errs) != 1 {
				t.Fatalf("want only the overlap error, got %v", err)
			}
			t.Log(err)
		})
	}
}

// TestSettingsOfAnotherStorageType: a setting the storage's type ignores is
// an error naming it (issue 12, item 12c: an environment override setting
// type to s3 silently ignored root), and when the type or the setting came
// from an environment variable, the error names the variable.
func TestSettingsOfAnotherStorageType(t *testing.T) {
	const head = "postgres: {url: 'postgres://u@h/db'}\nwatch:\n  - {table: t, columns: [f], storage: media}\nstorages:\n  media:\n"
	tests := []struct {
		name    string
		storage string // the settings of storage media, indented
		env     []string
		want    []string // every error, in full; none when empty
	}{
		{
			name:    "root on s3, from the file",
			storage: "    type: s3\n    bucket: b\n    root: /srv/media\n",
			want:    []string{`storages.media.root: "/srv/media" applies only to type local, but type is "s3"; remove root, or set type to local`},
		},
		{
			name:    "type s3 from the environment, root from the file",
			storage: "    type: local\n    root: /srv/media\n",
			env:     []string{"CDC_CLEANER_STORAGES_MEDIA_TYPE=s3", "CDC_CLEANER_STORAGES_MEDIA_BUCKET=b"},
			want:    []string{`storages.media.root: "/srv/media" applies only to type local, but type is "s3" (set by CDC_CLEANER_STORAGES_MEDIA_TYPE); remove root, or unset the variable`},
		},
		{
			name:    "type s3 from the environment, no bucket",
			storage: "    type: local\n    root: /srv/media\n    prune_empty_dirs: true\n",
			env:     []string{"CDC_CLEANER_STORAGES_MEDIA_TYPE=s3"},
			want: []string{
				`storages.media.bucket: required for type s3 (type set by CDC_CLEANER_STORAGES_MEDIA_TYPE); give the bucket name`,
				`storages.media.root: "/srv/media" applies only to type local, but type is "s3" (set by CDC_CLEANER_STORAGES_MEDIA_TYPE); remove root, or unset the variable`,
				`storages.media.prune_empty_dirs: true applies only to type local, but type is "s3" (set by CDC_CLEANER_STORAGES_MEDIA_TYPE); remove prune_empty_dirs, or unset the variable`,
			},
		},
		{
			name:    "root from the environment on s3",
			storage: "    type: s3\n    bucket: b\n",
			env:     []string{"CDC_CLEANER_STORAGES_MEDIA_ROOT=/srv/media"},
			want:    []string{`storages.media.root: "/srv/media" (set by CDC_CLEANER_STORAGES_MEDIA_ROOT) applies only to type local, but type is "s3"; unset the variable`},
		},
		{
			name:    "type and root from the environment",
			storage: "    type: local\n    root: /srv/media\n",
			env:     []string{"CDC_CLEANER_STORAGES_MEDIA_TYPE=s3", "CDC_CLEANER_STORAGES_MEDIA_ROOT=/data", "CDC_CLEANER_STORAGES_MEDIA_BUCKET=b"},
			want:    []string{`storages.media.root: "/data" (set by CDC_CLEANER_STORAGES_MEDIA_ROOT) applies only to type local, but type is "s3" (set by CDC_CLEANER_STORAGES_MEDIA_TYPE); unset one of the variables`},
		},
		{
			name:    "s3 settings on local, from the file",
			storage: "    type: local\n    root: /srv/media\n    bucket: b\n    prefix: media/\n    region: eu-west-1\n    endpoint: http://127.0.0.1:9000\n    path_style: true\n    concurrency: 8\n",
			want: []string{
				`storages.media.bucket: "b" applies only to type s3, but type is "local"; remove bucket, or set type to s3`,
				`storages.media.prefix: "media/" applies only to type s3, but type is "local"; remove prefix, or set type to s3`,
				`storages.media.region: "eu-west-1" applies only to type s3, but type is "local"; remove region, or set type to s3`,
				`storages.media.endpoint: "http://127.0.0.1:9000" applies only to type s3, but type is "local"; remove endpoint, or set type to s3`,
				`storages.media.path_style: true applies only to type s3, but type is "local"; remove path_style, or set type to s3`,
				`storages.media.concurrency: 8 applies only to type s3, but type is "local"; remove concurrency, or set type to s3`,
			},
		},
		{
			name:    "type local from the environment, s3 settings from the file",
			storage: "    type: s3\n    bucket: b\n    prefix: media/\n    path_style: true\n",
			env:     []string{"CDC_CLEANER_STORAGES_MEDIA_TYPE=local", "CDC_CLEANER_STORAGES_MEDIA_ROOT=/srv/media"},
			want: []string{
				`storages.media.bucket: "b" applies only to type s3, but type is "local" (set by CDC_CLEANER_STORAGES_MEDIA_TYPE); remove bucket, or unset the variable`,
				`storages.media.prefix: "media/" applies only to type s3, but type is "local" (set by CDC_CLEANER_STORAGES_MEDIA_TYPE); remove prefix, or unset the variable`,
				`storages.media.path_style: true applies only to type s3, but type is "local" (set by CDC_CLEANER_STORAGES_MEDIA_TYPE); remove path_style, or unset the variable`,
			},
		},
		{
			name:    "endpoint from the environment on local",
			storage: "    type: local\n    root: /srv/media\n",
			env:     []string{"CDC_CLEANER_STORAGES_MEDIA_ENDPOINT=http://minio:9000"},
			want:    []string{`storages.media.endpoint: "http://minio:9000" (set by CDC_CLEANER_STORAGES_MEDIA_ENDPOINT) applies only to type s3, but type is "local"; unset the variable`},
		},
		{
			name:    "type from the environment that does not exist",
			storage: "    type: local\n    root: /srv/media\n",
			env:     []string{"CDC_CLEANER_STORAGES_MEDIA_TYPE=S3"},
			want:    []string{`storages.media.type: "S3" (set by CDC_CLEANER_STORAGES_MEDIA_TYPE) is not one of local, s3`},
		},
		{
			name:    "zero values and settings of any type are fine",
			storage: "    type: local\n    root: /srv/media\n    bucket: ''\n    path_style: false\n    concurrency: 0\n    keep: [defaults/*]\n    trash: true\n    trash_prefix: .trash/\n    trash_retention: 24h\n",
			env:     []string{"CDC_CLEANER_STORAGES_MEDIA_PREFIX=", "CDC_CLEANER_STORAGES_MEDIA_PRUNE_EMPTY_DIRS=true"},
		},
		{
			name:    "an s3 storage switched to local by the environment, all its own settings",
			storage: "    type: s3\n    root: /srv/media\n    prune_empty_dirs: true\n",
			env:     []string{"CDC_CLEANER_STORAGES_MEDIA_TYPE=local"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load([]byte(head+tt.storage), tt.env)
			var got []string
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var fe *FieldError
					if !errors.As(e, &fe) {
						t.Fatalf("not a FieldError: %v", e)
					}
					got = append(got, e.Error())
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestEveryStorageSettingHasATypeRule: a storage setting added later must be
// listed in typeSettings or here, as applying to any type.
func TestEveryStorageSettingHasATypeRule(t *testing.T) {
	anyType := []string{"type", "keep", "messages", "trash", "trash_prefix", "trash_retention"}
	for _, key := range yamlKeys(reflect.TypeFor[Storage]()) {
		listed := slices.Contains(anyType, key)
		for _, ts := range typeSettings {
			if ts.key == key {
				if listed {
					t.Errorf("%s is listed twice", key)
				}
				listed = true
				s := &Storage{}
				reflect.ValueOf(s).Elem().FieldByIndex(fieldIndex(t, key)).Set(reflect.ValueOf(nonZero(t, key)))
				if reflect.ValueOf(ts.value(s)).IsZero() {
					t.Errorf("typeSettings reads %s from another field", key)
				}
			}
		}
		if !listed {
			t.Errorf("storage setting %s: add it to typeSettings (if it applies to one type) or to anyType here", key)
		}
	}
}

func fieldIndex(t *testing.T, key string) []int {
	t.Helper()
	for _, f := range yamlFields(reflect.TypeFor[Storage]()) {
		if f.key == key {
			return []int{f.index}
		}
	}
	t.Fatalf("no field %s", key)
	return nil
}

func nonZero(t *testing.T, key string) any {
	t.Helper()
	switch f := reflect.TypeFor[Storage]().Field(fieldIndex(t, key)[0]); f.Type.Kind() {
	case reflect.String:
		return "x"
	case reflect.Bool:
		return true
	case reflect.Int:
		return 1
	default:
		t.Fatalf("%s: type %s", key, f.Type)
		return nil
	}
}
