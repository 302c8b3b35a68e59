package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/config"
	"github.com/cdc-cleaner/cdc-cleaner/provision"
	"github.com/cdc-cleaner/cdc-cleaner/sample"
)

// sampleColumns samples every column of cols (those of one storage, as
// inspection described them) against st: promise 8's test of the mapping.
// A storage that cannot look files up is not sampled.
func sampleColumns(ctx context.Context, q sample.Querier, st cdccleaner.Storage, cols []cdccleaner.Column) ([]sample.Result, error) {
	out := make([]sample.Result, 0, len(cols))
	for _, c := range cols {
		r, err := sampleColumn(ctx, q, st, c)
		if err != nil {
			return out, fmt.Errorf("%s: %w", c.Field, err)
		}
		if r != nil {
			out = append(out, *r)
		}
	}
	return out, nil
}

// sampleColumn samples c against st; nil when st cannot look files up.
func sampleColumn(ctx context.Context, q sample.Querier, st cdccleaner.Storage, c cdccleaner.Column) (*sample.Result, error) {
	statter, ok := st.(cdccleaner.Statter)
	if !ok {
		return nil, nil
	}
	r, err := sample.Column(ctx, q, statter, c)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// where says where storage s keeps path p, for messages: the file on
// local disk, the object's s3:// URL.
func where(s *config.Storage, p string) string {
	if s.Type == config.StorageS3 {
		return "s3://" + s.Bucket + "/" + s.Prefix + p
	}
	return strings.TrimSuffix(s.Root, "/") + "/" + p
}

// location names storage s's root or prefix, for messages.
func location(s *config.Storage) string {
	if s.Type == config.StorageS3 {
		return "s3://" + s.Bucket + "/" + s.Prefix
	}
	return s.Root
}

// sampleLine says what the sample of one column found, and for a wrong
// mapping what it means.
func sampleLine(r sample.Result, s *config.Storage) string {
	name := r.Column.Source()
	switch {
	case r.NoPaths():
		return fmt.Sprintf("%s: none of %d sampled values names a path (e.g. %q)%s: the mapping cannot be checked, and may be wrong", name, r.Values, r.Example, jsonPathNote(r.Column))
	case r.Paths == 0 && r.Invalid == 0:
		return fmt.Sprintf("%s: no values to sample (the table or column is empty)", name)
	case r.Paths == 0:
		return fmt.Sprintf("%s: its %d sampled values are not paths as they are (URLs or absolute paths, e.g. %q): run compares them exactly, so they keep no file from its deletions", name, r.Values, r.Example)
	case !r.Judged():
		return fmt.Sprintf("%s: %d of %d sampled paths exist in %s (too few to judge the mapping)", name, r.Present, r.Paths, location(s))
	case r.Wrong():
		return fmt.Sprintf("%s: only %d of %d sampled paths exist in %s, e.g. value %q was looked for at %s and is not there: the mapping from column values to files is wrong (root, prefix, or a layout where the value is not the path, such as Active Storage's Disk service), and the cleaner would take every vanished path for an absent file; fix the configuration",
			name, r.Present, r.Paths, location(s), r.Absent[0], where(s, r.Absent[0]))
	case len(r.Absent) > 0:
		return fmt.Sprintf("%s: %d of %d sampled paths exist in %s (missing, e.g.: %s; a few missing files are normal)", name, r.Present, r.Paths, location(s), where(s, r.Absent[0]))
	}
	return fmt.Sprintf("%s: %d of %d sampled paths exist in %s", name, r.Present, r.Paths, location(s))
}

// emptyTables returns the tables of cols that hold no rows.
func emptyTables(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, cols []cdccleaner.Column) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, c := range cols {
		t := c.Schema + "." + c.Table
		if seen[t] {
			continue
		}
		seen[t] = true
		var empty bool
		if err := q.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM "+pgx.Identifier{c.Schema, c.Table}.Sanitize()+")").Scan(&empty); err != nil {
			return nil, fmt.Errorf("look at %s: %w", t, err)
		}
		if empty {
			out = append(out, t)
		}
	}
	return out, nil
}

// jsonPathNote names c's json_path, for a message about values that name
// no path.
func jsonPathNote(c cdccleaner.Column) string {
	if c.Type.Kind != cdccleaner.KindJSON {
		return ""
	}
	if c.JSONPath == nil {
		return " as a whole JSON string (no json_path is set)"
	}
	return fmt.Sprintf(" at json_path %q", c.JSONPath.String())
}

// sampleSeverity is how check reports the sample r.
func sampleSeverity(r sample.Result) provision.Severity {
	switch {
	case r.Wrong():
		return provision.Problem
	case r.NoPaths(), r.Doubtful():
		return provision.Warning
	}
	return provision.OK
}

// unconfiguredRefusal is promise 8's search for columns that reference
// storage name (st, opened) but that no watch or protect entry maps to
// it, whose files a scan would take for orphans. It returns why --delete
// must refuse: the columns found, or that the search could not run or
// could not read everything, since then it cannot vouch for what it did
// not see. It returns "" when the search was complete and found none.
func unconfiguredRefusal(ctx context.Context, cfg *config.Config, name string, st cdccleaner.Storage, stderr io.Writer) string {
	res, err := searchStorages(ctx, cfg, map[string]cdccleaner.Storage{name: st}, stderr)
	if err != nil {
		return fmt.Sprintf("the search for columns that reference storage %q but are neither watched nor protected could not complete (%v): the files of such a column would look orphaned", name, err)
	}
	var reasons []string
	for _, f := range res.Unconfigured() {
		reasons = append(reasons, unconfiguredLine(f))
	}
	for _, f := range res.Misfiled() {
		reasons = append(reasons, misfiledLine(f))
	}
	if len(reasons) > 0 {
		reasons[len(reasons)-1] += ": the files it references would look orphaned (cdc-cleaner discover prints the YAML to paste)"
	}
	if !res.Complete() {
		reasons = append(reasons, fmt.Sprintf("the search for columns that reference storage %q but are neither watched nor protected could not complete (%s): the files of a column it did not see would look orphaned",
			name, strings.Join(res.Notes, "; ")))
	}
	if len(reasons) == 0 {
		fmt.Fprintf(stderr, "scan %s: no column that the configuration leaves out references the storage (%s sampled)\n", name, res.Sampled())
	}
	return strings.Join(reasons, "; and ")
}
