package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// FieldError is one problem Validate found: the setting, as a path into the
// file ("watch[1].storage"), and what is wrong with it and how to fix it.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Storage types.
const (
	StorageLocal = "local"
	StorageS3    = "s3"
)

var (
	storageTypes = []string{StorageLocal, StorageS3}
	logLevels    = []string{"debug", "info", "warn", "error"}
	logFormats   = []string{"json", "console"}

	storageNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	slotNameRE    = regexp.MustCompile(`^[a-z0-9_]+$`)
	pubNameRE     = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
)

type problems []error

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

// Validate checks the whole configuration and returns every problem it
// finds, joined with errors.Join, each a *FieldError. It also fills the
// Schema, Name, ColNames and JSONSteps of every watch and protect entry.
// No message contains the database password.
func (c *Config) Validate() error {
	var p problems
	c.validatePostgres(&p)
	c.validateStorages(&p)
	if len(c.Watch) == 0 {
		p.add("watch", "at least one table to watch is required, e.g. {table: public.gallery_photo, columns: [image], storage: media}")
	}
	seen := map[string]string{} // schema.table.column -> where it was first listed
	c.validateWatches(&p, "watch", c.Watch, seen)
	c.validateWatches(&p, "protect", c.Protect, seen)
	if c.DeleteDelay < 0 {
		p.add("delete_delay", "%s is negative; use 0s for no delay", c.DeleteDelay)
	}
	if c.HTTP.Listen != "" {
		host, port, err := net.SplitHostPort(c.HTTP.Listen)
		if _, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || strings.ContainsAny(host, " \t") {
			p.add("http.listen", "%q is not host:port; use e.g. 127.0.0.1:9187, or \"\" to disable the HTTP server", c.HTTP.Listen)
		}
	}
	if !slices.Contains(logLevels, c.Log.Level) {
		p.add("log.level", "%q is not one of %s", c.Log.Level, strings.Join(logLevels, ", "))
	}
	if !slices.Contains(logFormats, c.Log.Format) {
		p.add("log.format", "%q is not one of %s", c.Log.Format, strings.Join(logFormats, ", "))
	}
	return errors.Join(p...)
}

func (c *Config) validatePostgres(p *problems) {
	pg := &c.Postgres
	if problem := checkConnString(pg.URL); problem != "" {
		p.add("postgres.url", "%s", problem)
	}
	switch {
	case pg.Slot == "":
		p.add("postgres.slot", "empty; the default is cdc_cleaner")
	case len(pg.Slot) > maxIdentifierLen || !slotNameRE.MatchString(pg.Slot):
		p.add("postgres.slot", "%q is not a valid replication slot name; use lower-case letters, digits and underscores, at most %d characters", pg.Slot, maxIdentifierLen)
	}
	switch {
	case pg.Publication == "":
		p.add("postgres.publication", "empty; the default is cdc_cleaner")
	case len(pg.Publication) > maxPublicationLen || !pubNameRE.MatchString(pg.Publication):
		p.add("postgres.publication", "%q is not a valid publication name; use lower-case letters, digits and underscores, starting with a letter or underscore, at most %d characters (setup derives a trigger name from it that PostgreSQL would otherwise cut short)", pg.Publication, maxPublicationLen)
	}
	if pg.StatusInterval <= 0 {
		p.add("postgres.status_interval", "must be positive; the default is 10s")
	}
}

// checkConnString says what is wrong with a PostgreSQL connection string,
// without quoting it, or returns "".
func checkConnString(s string) string {
	switch {
	case s == "":
		return "empty; set it in the file, CDC_CLEANER_POSTGRES_URL or DATABASE_URL"
	case strings.Contains(s, "://"):
		scheme, _, _ := strings.Cut(s, "://")
		if scheme != "postgres" && scheme != "postgresql" {
			return "the URL must start with postgres:// or postgresql://"
		}
		if _, err := url.Parse(s); err != nil {
			return "cannot be parsed as a URL; percent-encode special characters such as @ : / # ? in the user name and password"
		}
	default:
		if _, err := scanKeyValues(s); err != nil {
			return "neither a postgres:// URL nor a key=value connection string (e.g. host=db user=app dbname=app); check the quoting"
		}
	}
	return ""
}

func (c *Config) validateStorages(p *problems) {
	if len(c.Storages) == 0 {
		p.add("storages", "at least one storage is required, e.g. media: {type: local, root: /srv/app/media}")
	}
	names := make([]string, 0, len(c.Storages))
	for name := range c.Storages {
		names = append(names, name)
	}
	slices.Sort(names)
	c.validateOverlap(p, names)
	for _, name := range names {
		s := c.Storages[name]
		f := "storages." + name
		if !storageNameRE.MatchString(name) {
			f = fmt.Sprintf("storages[%q]", name)
			p.add(f, "a storage name may only hold letters, digits, _ and -")
		}
		if s == nil {
			p.add(f, "no settings; give at least type")
			continue
		}
		switch s.Type {
		case StorageLocal:
			switch {
			case s.Root == "":
				p.add(f+".root", "required for type local%s; give the directory files are stored under, e.g. /srv/app/media", c.typeNote(name))
			case !path.IsAbs(s.Root):
				p.add(f+".root", "%q is not an absolute path; give the full path, e.g. /srv/app/media", s.Root)
			}
		case StorageS3:
			if s.Prefix != "" && !strings.HasSuffix(s.Prefix, "/") {
				p.add(f+".prefix", "%q must end in / (or be empty): listing prefix %q would also match neighbouring keys such as %q", s.Prefix, s.Prefix, s.Prefix+"-backup/x")
			}
			if s.Concurrency < 0 || s.Concurrency > 64 {
				p.add(f+".concurrency", "%d is out of range; give 1 to 64 requests in flight (0 means the default, 4)", s.Concurrency)
			}
			if s.Bucket == "" {
				p.add(f+".bucket", "required for type s3%s; give the bucket name", c.typeNote(name))
			}
			if s.Endpoint != "" {
				u, err := url.Parse(s.Endpoint)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					p.add(f+".endpoint", "%q is not an http:// or https:// URL", s.Endpoint)
				}
			}
		case "":
			p.add(f+".type", "required; one of %s", strings.Join(storageTypes, ", "))
		default:
			p.add(f+".type", "%q%s is not one of %s", s.Type, c.setBy("storages."+name+".type"), strings.Join(storageTypes, ", "))
		}
		c.validateTypeSettings(p, name, f, s)
		for i, k := range s.Keep {
			kf := fmt.Sprintf("%s.keep[%d]", f, i)
			if k == "" {
				p.add(kf, "empty pattern; remove it")
			} else if cdccleaner.ValidPattern(k) != nil {
				// path.ErrBadPattern is the only error path.Match returns.
				p.add(kf, "%q is not a valid glob pattern (see Go's path.Match): %v", k, path.ErrBadPattern)
			}
		}
		if s.Trash || s.TrashPrefix != "" {
			if problem := checkTrashPrefix(s.TrashPrefix); problem != "" {
				p.add(f+".trash_prefix", "%s", problem)
			}
		}
		switch {
		case s.TrashRetention < 0:
			p.add(f+".trash_retention", "%s is negative; the default is 720h", s.TrashRetention)
		case s.Trash && s.TrashRetention == 0:
			p.add(f+".trash_retention", "must be positive when trash is on; the default is 720h (use trash: false to delete at once)")
		}
	}
}

// typeSettings are the storage settings that apply to one type only, by
// YAML key. The others (type, keep and the trash settings) apply to any
// type; TestEveryStorageSettingHasATypeRule keeps the two lists complete.
var typeSettings = []struct {
	key, only string
	value     func(*Storage) any
}{
	{"root", StorageLocal, func(s *Storage) any { return s.Root }},
	{"prune_empty_dirs", StorageLocal, func(s *Storage) any { return s.PruneEmptyDirs }},
	{"bucket", StorageS3, func(s *Storage) any { return s.Bucket }},
	{"prefix", StorageS3, func(s *Storage) any { return s.Prefix }},
	{"region", StorageS3, func(s *Storage) any { return s.Region }},
	{"endpoint", StorageS3, func(s *Storage) any { return s.Endpoint }},
	{"path_style", StorageS3, func(s *Storage) any { return s.PathStyle }},
	{"concurrency", StorageS3, func(s *Storage) any { return s.Concurrency }},
}

// validateTypeSettings reports settings of storage name (field f) that its
// type ignores: an s3 storage with a root, a local one with a bucket. Such
// a setting means the storage is not what its author thinks, typically
// because an environment variable changed the type the file gives. Only
// values other than the zero value can be told apart from absent keys.
func (c *Config) validateTypeSettings(p *problems, name, f string, s *Storage) {
	if s.Type != StorageLocal && s.Type != StorageS3 {
		return // reported as a wrong type
	}
	for _, ts := range typeSettings {
		v := ts.value(s)
		if ts.only == s.Type || reflect.ValueOf(v).IsZero() {
			continue
		}
		if str, ok := v.(string); ok {
			v = strconv.Quote(str)
		}
		fieldEnv := c.envSet["storages."+name+"."+ts.key]
		typeEnv := c.envSet["storages."+name+".type"]
		var fix string
		switch {
		case fieldEnv != "" && typeEnv != "":
			fix = "unset one of the variables"
		case fieldEnv != "":
			fix = "unset the variable"
		case typeEnv != "":
			fix = fmt.Sprintf("remove %s, or unset the variable", ts.key)
		default:
			fix = fmt.Sprintf("remove %s, or set type to %s", ts.key, ts.only)
		}
		p.add(f+"."+ts.key, "%v%s applies only to type %s, but type is %q%s; %s",
			v, c.setBy("storages."+name+"."+ts.key), ts.only, s.Type, c.setBy("storages."+name+".type"), fix)
	}
}

// setBy says which environment variable set the setting at path, as
// " (set by CDC_CLEANER_...)", or "" when none did.
func (c *Config) setBy(path string) string {
	if v := c.envSet[path]; v != "" {
		return " (set by " + v + ")"
	}
	return ""
}

// typeNote says which environment variable set the type of storage name,
// as " (type set by CDC_CLEANER_...)", or "" when none did.
func (c *Config) typeNote(name string) string {
	if v := c.envSet["storages."+name+".type"]; v != "" {
		return " (type set by " + v + ")"
	}
	return ""
}

func checkTrashPrefix(tp string) string {
	trimmed := strings.TrimSuffix(tp, "/")
	switch {
	case tp == "":
		return "empty; the default is .trash/"
	case !strings.HasSuffix(tp, "/"):
		return fmt.Sprintf("%q must end in /, e.g. .trash/", tp)
	case strings.HasPrefix(tp, "/"):
		return fmt.Sprintf("%q must be relative to the storage root, e.g. .trash/", tp)
	case trimmed == "" || trimmed == "." || path.Clean(trimmed) != trimmed ||
		trimmed == ".." || strings.HasPrefix(trimmed, "../") || strings.ContainsRune(tp, 0):
		return fmt.Sprintf("%q must be a clean relative path inside the storage (no //, . or .. segments), e.g. .trash/", tp)
	}
	return ""
}

func (c *Config) validateWatches(p *problems, list string, ws []*Watch, seen map[string]string) {
	for i, w := range ws {
		f := fmt.Sprintf("%s[%d]", list, i)
		if w == nil {
			p.add(f, "empty entry; give table, columns and storage")
			continue
		}
		w.Schema, w.Name, w.ColNames, w.JSONSteps = "", "", nil, nil
		w.Template, w.DerivedTemplates, w.MatchConds = nil, nil, nil
		tableOK := false
		if w.Table == "" {
			p.add(f+".table", "required; give a table, e.g. public.gallery_photo")
		} else if schema, name, err := ParseQualifiedName(w.Table); err != nil {
			p.add(f+".table", "%v", err)
		} else {
			w.Schema, w.Name, tableOK = schema, name, true
		}
		c.validateMatch(p, f, w)
		// The same column (or template) twice is a mistake, unless match
		// tells the entries' rows apart.
		key := func(what string) string {
			k := QuoteIdentifier(w.Schema) + "." + QuoteIdentifier(w.Name) + "." + what
			for _, m := range w.MatchConds {
				k += "|" + QuoteIdentifier(m.Column) + "=" + m.Value
			}
			return k
		}
		switch {
		case len(w.Columns) > 0 && w.Path != "":
			p.add(f, "give either columns (each column's value is a path) or path (a template over the row's columns), not both")
		case len(w.Columns) == 0 && w.Path == "":
			p.add(f+".columns", "at least one column is required, e.g. [image]; or give path, a template such as \"{key[0:2]}/{key[2:4]}/{key}\"")
		case w.Path != "":
			t, err := cdccleaner.ParseTemplate(w.Path, ParseIdentifier)
			if err != nil {
				p.add(f+".path", "%v", err)
				break
			}
			w.Template = &t
			if !tableOK {
				break
			}
			k := key(t.String())
			if first, dup := seen[k]; dup {
				p.add(f+".path", "template %s of %s.%s is already listed in %s; list each once, or tell their rows apart with match", t.Source, w.Schema, w.Name, first)
			} else {
				seen[k] = f + ".path"
			}
		}
		for j, col := range w.Columns {
			cf := fmt.Sprintf("%s.columns[%d]", f, j)
			name, err := ParseIdentifier(col)
			if err != nil {
				p.add(cf, "%v", err)
				continue
			}
			w.ColNames = append(w.ColNames, name)
			if !tableOK || w.Path != "" {
				continue
			}
			k := key(QuoteIdentifier(name))
			if first, dup := seen[k]; dup {
				p.add(cf, "column %s of %s.%s is already listed in %s; list each column once, or tell their rows apart with match", name, w.Schema, w.Name, first)
			} else {
				seen[k] = cf
			}
		}
		if len(w.ColNames) != len(w.Columns) {
			w.ColNames = nil // only complete when every column parsed
		}
		if w.JSONPath != "" {
			if w.Path != "" {
				p.add(f+".json_path", "applies to columns: a template's columns are text, each value whole or sliced")
			} else if steps, err := cdccleaner.ParseJSONPath(w.JSONPath); err != nil {
				p.add(f+".json_path", "%v; write keys separated by dots and [*] for array elements, e.g. files[*].path", err)
			} else {
				w.JSONSteps = steps
			}
		}
		c.validateDerived(p, list, f, w)
		for j, prefix := range w.StripPrefix {
			if prefix == "" {
				p.add(fmt.Sprintf("%s.strip_prefix[%d]", f, j), "empty; give the text that values start with, e.g. https://cdn.example.com/media/ or /media/")
			}
		}
		switch _, ok := c.Storages[w.Storage]; {
		case w.Storage == "":
			p.add(f+".storage", "required; name one of the storages")
		case !ok:
			p.add(f+".storage", "storage %q is not defined under storages%s", w.Storage, definedStorages(c.Storages))
		}
	}
}

// validateMatch parses the column names of w.Match into w.MatchConds,
// sorted by name.
func (c *Config) validateMatch(p *problems, f string, w *Watch) {
	for _, raw := range slices.Sorted(maps.Keys(w.Match)) {
		name, err := ParseIdentifier(raw)
		if err != nil {
			p.add(f+".match."+raw, "%v", err)
			continue
		}
		w.MatchConds = append(w.MatchConds, cdccleaner.Match{Column: name, Value: w.Match[raw]})
	}
	slices.SortFunc(w.MatchConds, func(a, b cdccleaner.Match) int { return strings.Compare(a.Column, b.Column) })
	for j := 1; j < len(w.MatchConds); j++ {
		if w.MatchConds[j].Column == w.MatchConds[j-1].Column {
			p.add(f+".match", "column %s is named twice (spelled two ways); name it once", w.MatchConds[j].Column)
		}
	}
}

// validateDerived parses w.Derived into w.DerivedTemplates. A derived
// template is rendered from the values that gave the removed path, so it
// may name only columns the entry's path is built from.
func (c *Config) validateDerived(p *problems, list, f string, w *Watch) {
	if len(w.Derived) == 0 {
		return
	}
	if list == "protect" {
		p.add(f+".derived", "applies to watch entries: a protect entry never removes anything")
		return
	}
	var from []string
	switch {
	case w.Template != nil:
		from = w.Template.Columns()
	case len(w.ColNames) == 1 && w.JSONPath == "":
		from = w.ColNames
	default:
		p.add(f+".derived", "needs path, or exactly one column whose whole value is the path: derived files are named from the values that gave the removed path")
		return
	}
	for j, src := range w.Derived {
		df := fmt.Sprintf("%s.derived[%d]", f, j)
		// Whole values, and all of the path's: scan maps a file back
		// through the template to the path it derives from, which it
		// must keep while that path is referenced.
		t, err := cdccleaner.ParseTemplate(src, ParseIdentifier)
		if err != nil {
			p.add(df, "%v", err)
			continue
		}
		for _, col := range t.Columns() {
			if !slices.Contains(from, col) {
				p.add(df, "%q names column %s, which the path is not built from (%s); a derived file is named from the values of the removed path", src, col, strings.Join(from, ", "))
			}
		}
		for _, col := range from {
			if !slices.Contains(t.Columns(), col) {
				p.add(df, "%q does not name column %s, which the path is built from: a file found below it could not be mapped back to the path it derives from; name every column of the path ({%s})", src, col, col)
			}
		}
		if w.Template != nil && t.String() == w.Template.String() {
			p.add(df, "%q is the path itself", src)
		}
		w.DerivedTemplates = append(w.DerivedTemplates, t)
	}
}

func definedStorages(m map[string]*Storage) string {
	if len(m) == 0 {
		return ""
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return " (defined: " + strings.Join(names, ", ") + ")"
}

// maxPublicationLen keeps "cdc_cleaner_replica_identity_" + publication, the
// event trigger setup installs, within PostgreSQL's 63 bytes, so that two
// publications never share a trigger.
const maxPublicationLen = 34

// validateOverlap rejects two storages that share files: local storages
// whose roots are the same directory or one inside the other, s3 storages
// whose prefixes in one bucket contain each other (the bucket compared as
// S3Location compares it, whatever the endpoint's spelling). The reference
// check is per storage, so a file reachable through both could be deleted
// while the other storage's columns still reference it.
func (c *Config) validateOverlap(p *problems, names []string) {
	for i, a := range names {
		sa := c.Storages[a]
		if sa != nil && sa.Type == StorageS3 {
			la := NewS3Location(sa.Endpoint, sa.Bucket, sa.Prefix)
			for _, b := range names[i+1:] {
				sb := c.Storages[b]
				if sb == nil || sb.Type != StorageS3 || !la.Overlaps(NewS3Location(sb.Endpoint, sb.Bucket, sb.Prefix)) {
					continue
				}
				p.add("storages."+b+".prefix", "%q in bucket %q overlaps storage %q (prefix %q in bucket %q%s): objects under both would be checked against only one storage's columns; use one storage, or prefixes that do not contain each other",
					sb.Prefix, sb.Bucket, a, sa.Prefix, sa.Bucket, sameServer(sa, sb))
			}
			continue
		}
		if sa == nil || sa.Type != StorageLocal || !path.IsAbs(sa.Root) {
			continue
		}
		for _, b := range names[i+1:] {
			sb := c.Storages[b]
			if sb == nil || sb.Type != StorageLocal || !path.IsAbs(sb.Root) {
				continue
			}
			ra, rb := path.Clean(sa.Root), path.Clean(sb.Root)
			if ra == rb || strings.HasPrefix(rb+"/", ra+"/") || strings.HasPrefix(ra+"/", rb+"/") {
				p.add("storages."+b+".root", "%q overlaps storage %q (%q): files reachable from both would be checked against only one storage's columns; use one storage for both, or separate directories", sb.Root, a, sa.Root)
			}
		}
	}
}

// sameServer explains, for an overlap message, why two s3 storages written
// differently reach one server; "" when they are written alike.
func sameServer(sa, sb *Storage) string {
	aws := S3Server(sa.Endpoint) == awsServer
	if sa.Endpoint == sb.Endpoint && (!aws || sa.Region == sb.Region) {
		return ""
	}
	show := func(s *Storage) string {
		switch {
		case s.Endpoint != "":
			return "endpoint " + strconv.Quote(s.Endpoint)
		case s.Region != "":
			return "the AWS endpoint of region " + s.Region
		}
		return "the default AWS endpoint"
	}
	where := "server " + S3Server(sa.Endpoint)
	if aws {
		where = "AWS, where bucket names are global"
	}
	return fmt.Sprintf("; %s and %s both reach %s", show(sa), show(sb), where)
}
