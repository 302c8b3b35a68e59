package config

import (
	"reflect"
	"testing"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// TestLoadTemplateEntries loads the contract's keys for layouts that are
// not "the column is the path" from YAML, as DESIGN.md spells them, and
// checks the columns the rest of the cleaner gets from them.
func TestLoadTemplateEntries(t *testing.T) {
	body := minimalYAML + `  - table: public.active_storage_blobs
    path: "{key[0:2]}/{key[2:4]}/{key}"
    derived: ["va/ri/variants/{key}/"]
    match: {service_name: local}
    storage: media
  - table: public.post
    columns: [cover_url]
    strip_prefix: ["https://cdn.example.com/media/", /media/]
    storage: media
protect:
  - table: public.upload
    path: '{bucket_id}/{"Name"}'
    match: {'"Kind"': avatar, State: live}
    storage: media
`
	c, err := Load(writeConfig(t, body), nil)
	if err != nil {
		t.Fatal(err)
	}
	cols := c.Columns()
	if len(cols) != 5 {
		t.Fatalf("%d columns: %+v", len(cols), cols)
	}
	blobs, post, upload := cols[2], cols[3], cols[4]
	if blobs.Template == nil || blobs.Template.String() != "{key[0:2]}/{key[2:4]}/{key}" || blobs.Name != "" || blobs.Field != "watch[1].path" ||
		blobs.Source() != "public.active_storage_blobs.{key[0:2]}/{key[2:4]}/{key}" {
		t.Errorf("template entry: %+v (source %s)", blobs, blobs.Source())
	}
	if len(blobs.Derived) != 1 || !blobs.Derived[0].Prefix() || blobs.Derived[0].String() != "va/ri/variants/{key}/" {
		t.Errorf("derived: %+v", blobs.Derived)
	}
	if !reflect.DeepEqual(blobs.Match, []cdccleaner.Match{{Column: "service_name", Value: "local"}}) ||
		!reflect.DeepEqual(blobs.Reads(), []string{"key", "service_name"}) {
		t.Errorf("match %+v, reads %v", blobs.Match, blobs.Reads())
	}
	if post.Name != "cover_url" || !reflect.DeepEqual(post.StripPrefix, []string{"https://cdn.example.com/media/", "/media/"}) {
		t.Errorf("url column: %+v", post)
	}
	for v, want := range map[string]string{"https://cdn.example.com/media/a.jpg": "a.jpg", "/media/b/c.jpg": "b/c.jpg", "other/d.jpg": "", "/media/": ""} {
		if got, ok := post.Strip(v); got != want || ok != (want != "") {
			t.Errorf("Strip(%q) = %q, %v; want %q", v, got, ok, want)
		}
	}
	if got := post.Spellings("a.jpg"); !reflect.DeepEqual(got, []string{"https://cdn.example.com/media/a.jpg", "/media/a.jpg"}) {
		t.Errorf("Spellings = %v", got)
	}
	// Quoted names keep their case, others fold; match is ordered by column.
	if !upload.Protect || upload.Template.String() != "{bucket_id}/{Name}" ||
		!reflect.DeepEqual(upload.Match, []cdccleaner.Match{{Column: "Kind", Value: "avatar"}, {Column: "state", Value: "live"}}) ||
		!reflect.DeepEqual(upload.Reads(), []string{"bucket_id", "Name", "Kind", "state"}) {
		t.Errorf("protect template: %+v, reads %v", upload, upload.Reads())
	}
}
