package discover

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/config"
)

func finding(schema, table, name, storage, jsonPath string, present, paths int) Finding {
	c := cdccleaner.Column{Storage: storage, Schema: schema, Table: table, Name: name}
	if jsonPath != "" {
		p, err := cdccleaner.ParseJSONPath(jsonPath)
		if err != nil {
			panic(err)
		}
		c.JSONPath = p
	}
	return Finding{Column: c, Present: present, Paths: paths}
}

func TestIdent(t *testing.T) {
	tests := map[string]string{
		"blog_post":     "blog_post",
		"BlogPost":      `"BlogPost"`,
		"with space":    `"with space"`,
		`say "hi"`:      `"say ""hi"""`,
		"café":          `"café"`,
		"_x$1":          "_x$1",
		"1st":           `"1st"`,
		"dotted.name":   `"dotted.name"`,
		"select":        "select", // the configuration is not SQL: keywords need no quotes
		"UPPER":         `"UPPER"`,
		"lower_9":       "lower_9",
		"tab\tinside":   "\"tab\tinside\"",
		"new\nline":     "\"new\nline\"",
		"ünïcode_lower": `"ünïcode_lower"`,
	}
	for name, want := range tests {
		if got := Ident(name); got != want {
			t.Errorf("Ident(%q) = %s, want %s", name, got, want)
		}
		back, err := config.ParseIdentifier(Ident(name))
		if err != nil || back != name {
			t.Errorf("ParseIdentifier(Ident(%q)) = %q, %v", name, back, err)
		}
	}
}

// TestWriteYAMLReadsBack renders findings with names that need quoting and
// loads the YAML as a configuration: every entry names the columns found.
func TestWriteYAMLReadsBack(t *testing.T) {
	watched := cdccleaner.Column{Storage: "media", Schema: "public", Table: "gallery_photo", Name: "image"}
	known := finding("public", "gallery_photo", "image", "media", "", 48, 50)
	known.Configured = &watched
	url := finding("public", "blog_post", "cover_url", "media", "", 12, 12)
	url.Spelled, url.Example, url.Named, url.Prefix = 12, "https://cdn.example.com/media/a.jpg", "a.jpg", "https://cdn.example.com/media/"
	res := &Result{
		Storages: []string{"media", "my-bucket"},
		Tables:   3, Columns: 7, Lookups: 40, Elapsed: 1234 * time.Millisecond,
		Findings: []Finding{
			known,
			finding("public", "blog_post", "cover", "media", "", 12, 12),
			url,
			finding("public", "blog_post", "cover", "my-bucket", "", 3, 12),
			finding("public", "document", "attachments", "media", "files[*].path", 10, 10),
			finding("public", "document", "copy", "media", "", 5, 6),
			finding("App Schema", "BlogPost", "Cover", "my-bucket", "", 9, 10),
			finding("App Schema", "BlogPost", "null", "my-bucket", "", 9, 10),
			finding("App Schema", "BlogPost", "it's", "my-bucket", "", 9, 10),
			finding("public", "doc", "data", "my-bucket", "a key.files[*]", 4, 4),
		},
		Notes: []string{"public.big was not searched: canceling statement due to statement timeout"},
	}
	var b strings.Builder
	if err := res.WriteYAML(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Log("\n" + out)
	for _, want := range []string{
		`# public.gallery_photo.image: 48 of 50 sampled paths exist in storage "media" (already watched)`,
		`# public.blog_post.cover: 12 of 12 sampled paths exist in storage "media" (NOT configured: the reference check does not see it)`,
		`# public.document.attachments at files[*].path: 10 of 10 sampled paths exist in storage "media"`,
		`# "App Schema"."BlogPost"."Cover": 9 of 10`,
		`its values are URLs or absolute paths`,
		`its entry needs strip_prefix:`, `['https://cdn.example.com/media/'], which removes what precedes the path`,
		`its entry below names storage "media"`,
		"#   note: public.big was not searched",
		"sampled against storages \"media\" and \"my-bucket\"",
		"  - table: public.blog_post\n    columns: [cover]\n    storage: media\n  - table: public.blog_post\n    columns: [cover_url]\n    strip_prefix: ['https://cdn.example.com/media/']\n    storage: media\n  - table: public.document\n",
		"  - table: public.document\n    columns: [attachments]\n    json_path: \"files[*].path\"\n    storage: media\n",
		"  - table: public.document\n    columns: [copy]\n    storage: media\n",
		"  - table: '\"App Schema\".\"BlogPost\"'\n    columns: ['\"Cover\"', 'null', '\"it''s\"']\n    storage: my-bucket\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "columns: [image]") {
		t.Error("a watched column is suggested again")
	}

	// The suggestions load as a configuration, naming the same columns.
	dir := t.TempDir()
	cfgYAML := "postgres:\n  url: postgres://localhost/app\nstorages:\n  media:\n    type: local\n    root: " + dir +
		"\n  my-bucket:\n    type: s3\n    bucket: b\n    region: us-east-1\n" +
		"watch:\n  - table: public.gallery_photo\n    columns: [image]\n    storage: media\n" + out
	path := filepath.Join(dir, "cdc-cleaner.yaml")
	if err := os.WriteFile(path, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("the YAML does not load: %v\n%s", err, cfgYAML)
	}
	var got []string
	for _, c := range cfg.Columns() {
		if c.Protect {
			got = append(got, c.Schema+"|"+c.Table+"|"+c.Name+"|"+c.JSONPath.String()+"|"+c.Storage)
		}
	}
	want := []string{
		"public|blog_post|cover||media",
		"public|blog_post|cover_url||media",
		"public|document|attachments|files[*].path|media",
		"public|document|copy||media",
		"App Schema|BlogPost|Cover||my-bucket",
		"App Schema|BlogPost|null||my-bucket",
		"App Schema|BlogPost|it's||my-bucket",
		"public|doc|data|a key.files[*]|my-bucket",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("protect columns loaded:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestWriteYAMLNothingFound(t *testing.T) {
	var b strings.Builder
	if err := (&Result{Storages: []string{"media"}, Tables: 2, Columns: 3}).WriteYAML(&b); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "# no column references the storages") || strings.Contains(out, "protect:") {
		t.Errorf("output:\n%s", out)
	}
}

func TestEntryFlow(t *testing.T) {
	f := finding("public", "document", "attachments", "media", "files[*].path", 10, 10)
	if got, want := EntryOf(f).Flow(), `{table: public.document, columns: [attachments], json_path: "files[*].path", storage: media}`; got != want {
		t.Errorf("Flow = %s, want %s", got, want)
	}
	f = finding("S", "T", "C", "media", "", 2, 2)
	if got, want := EntryOf(f).Flow(), `{table: '"S"."T"', columns: ['"C"'], storage: media}`; got != want {
		t.Errorf("Flow = %s, want %s", got, want)
	}
}
