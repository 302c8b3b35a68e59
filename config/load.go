package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultConfig returns the configuration that applies where the file and
// the environment say nothing.
func DefaultConfig() *Config {
	return &Config{
		Postgres: Postgres{
			Slot:           "cdc_cleaner",
			Publication:    "cdc_cleaner",
			StatusInterval: 10 * time.Second,
			MaxLagWarn:     1 << 30,
			FailoverSlot:   true,
		},
		DeleteDelay: 0,
		HTTP:        HTTP{Listen: "127.0.0.1:9187"},
		Log:         Log{Level: "info", Format: "json"},
	}
}

// DefaultStorage returns the settings a storage starts from before its
// entry in the file is read: trash on, trash_prefix ".trash/",
// trash_retention 720h. Trash is on by default for promise 7: a removed
// file that a committed row references again can only come back from the
// trash, within its retention (the undo window).
func DefaultStorage() *Storage {
	return &Storage{
		Trash:          true,
		TrashPrefix:    ".trash/",
		TrashRetention: 720 * time.Hour,
	}
}

// Load reads the YAML configuration file at path over DefaultConfig, applies
// the environment overrides found in environ (in os.Environ form), falls
// back to DATABASE_URL for an empty postgres.url, and validates the result.
//
// Every scalar setting can be overridden by CDC_CLEANER_<PATH>, PATH being
// the YAML keys upper-cased and joined by "_": CDC_CLEANER_POSTGRES_URL,
// CDC_CLEANER_STORAGES_MEDIA_ROOT (for a storage named in the file),
// CDC_CLEANER_WATCH_0_TABLE (for a list entry present in the file). A list
// of strings can also be replaced as a whole with a YAML flow list:
// CDC_CLEANER_WATCH_0_COLUMNS='[image, thumbnail]'. Values follow YAML's
// rules for scalars ("10s", "true", "1GiB"). A CDC_CLEANER_ variable that
// names no setting is an error.
func Load(path string, environ []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w (give its path with --config)", err)
	}
	cfg, err := load(data, environ)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return cfg, nil
}

// load is Load without the file system.
func load(data []byte, environ []string) (*Config, error) {
	cfg := DefaultConfig()
	doc, err := parseYAML(data)
	// The passwords to hide are collected before anything is checked: the
	// document is checked before it is decoded, so cfg.Postgres.URL is
	// still empty when the first messages are written.
	secrets := configSecrets(doc, environ)
	if err == nil {
		err = loadInto(cfg, doc, environ)
	}
	if err != nil {
		// No message should quote a connection string, but a password may
		// still turn up where it does not belong (as a size, say): hide it.
		secrets = append(secrets, connSecrets(cfg.Postgres.URL)...)
		return nil, redactError(err, secrets)
	}
	return cfg, nil
}

// loadInto reads document doc (nil for an empty file) and the environment
// into cfg, and validates the result.
func loadInto(cfg *Config, doc *yaml.Node, environ []string) error {
	if doc != nil {
		if err := decodeYAML(doc, cfg); err != nil {
			return err
		}
	}
	for name, s := range cfg.Storages {
		if s == nil { // "media:" with no settings
			cfg.Storages[name] = DefaultStorage()
		}
	}
	if err := applyEnv(cfg, environ); err != nil {
		return err
	}
	if cfg.Postgres.URL == "" {
		cfg.Postgres.URL = getenv(environ, "DATABASE_URL")
	}
	return cfg.Validate()
}

// yamlError carries a YAML error with a message reworded for users.
type yamlError struct {
	msg string
	err error
}

func (e *yamlError) Error() string { return e.msg }
func (e *yamlError) Unwrap() error { return e.err }

// parseYAML parses data, which must hold at most one YAML document. It
// returns nil for an empty file, and the first document, when there is one,
// even with an error: the caller finds in it the passwords to hide.
func parseYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return nil, nil // empty file: everything from defaults and the environment
	}
	if err != nil {
		return nil, &yamlError{msg: strings.TrimPrefix(err.Error(), "yaml: "), err: err}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return &doc, &yamlError{msg: strings.TrimPrefix(err.Error(), "yaml: "), err: err}
	default:
		return &doc, fmt.Errorf("line %d: a second YAML document; keep the whole configuration in one", next.Line)
	}
	return &doc, nil
}

// decodeYAML decodes document doc into cfg. The document is first checked
// by a valueChecker, whose messages name the settings; yaml then decodes
// what passed.
func decodeYAML(doc *yaml.Node, cfg *Config) error {
	c := newValueChecker(true)
	c.check(doc, reflect.TypeOf(cfg).Elem(), "")
	if msgs := c.messages(); len(msgs) > 0 {
		return &yamlError{msg: strings.Join(msgs, "\n"), err: &yaml.TypeError{Errors: msgs}}
	}
	// What the checker missed, yaml still reports, in its words.
	if err := doc.Decode(cfg); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msgs := make([]string, len(te.Errors))
			for i, m := range te.Errors {
				msgs[i] = rewordYAMLError(m)
			}
			return &yamlError{msg: strings.Join(msgs, "\n"), err: err}
		}
		return &yamlError{msg: strings.TrimPrefix(err.Error(), "yaml: "), err: err}
	}
	return nil
}

var (
	unknownFieldRE = regexp.MustCompile(`^line (\d+): field (.*) not found in type (\S+)$`)
	keyNotNameRE   = regexp.MustCompile(`^line (\d+): key (.*) not a name in type (\S+)$`)
)

// rewordYAMLError turns yaml's "field x not found in type config.Postgres"
// (and checkKeys' "key a mapping not a name in type config.Postgres") into
// a message that names the section and the keys it allows.
func rewordYAMLError(msg string) string {
	format := "line %[1]s: unknown key %[2]q%[3]s"
	m := unknownFieldRE.FindStringSubmatch(msg)
	if m == nil {
		format = "line %[1]s: a key%[3]s is %[2]s, not a name"
		if m = keyNotNameRE.FindStringSubmatch(msg); m == nil {
			return msg
		}
	}
	for t, where := range yamlSections() {
		if t.String() == m[3] {
			return fmt.Sprintf(format+"; known keys: %[4]s", m[1], m[2], " "+where, strings.Join(yamlKeys(t), ", "))
		}
	}
	return fmt.Sprintf(format, m[1], m[2], "")
}

// yamlSections maps each struct type of the configuration to where it
// appears in the file ("in postgres", "in storages.NAME").
func yamlSections() map[reflect.Type]string {
	seen := map[reflect.Type][]string{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			if isScalarType(t) {
				return
			}
			for _, p := range seen[t] {
				if p == path {
					return
				}
			}
			seen[t] = append(seen[t], path)
			for _, f := range yamlFields(t) {
				walk(f.typ, joinPath(path, f.key))
			}
		case reflect.Map:
			walk(t.Elem(), path+".NAME")
		case reflect.Slice:
			walk(t.Elem(), path+"[N]")
		}
	}
	walk(reflect.TypeFor[Config](), "")
	out := map[reflect.Type]string{}
	for t, paths := range seen {
		if len(paths) == 1 && paths[0] == "" {
			out[t] = "at the top level"
		} else {
			out[t] = "in " + strings.Join(paths, " and ")
		}
	}
	return out
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlField is an exported struct field and its YAML key.
type yamlField struct {
	key   string
	index int
	typ   reflect.Type
}

// yamlFields lists the fields of struct type t that YAML reads, by key.
func yamlFields(t reflect.Type) []yamlField {
	var out []yamlField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "-" {
			continue
		}
		if key == "" {
			key = strings.ToLower(f.Name)
		}
		out = append(out, yamlField{key: key, index: i, typ: f.Type})
	}
	return out
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for _, f := range yamlFields(t) {
		keys = append(keys, f.key)
	}
	return keys
}

// UnmarshalYAML reads one storage over DefaultStorage, so that keys the
// file leaves out get their defaults, and rejects unknown keys.
func (s *Storage) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf(
			"line %d: cannot unmarshal %s into config.Storage; a storage is a mapping of settings", n.Line, n.ShortTag())}}
	}
	// yaml.Node.Decode does not inherit KnownFields, so check keys here.
	known := map[string]bool{}
	for _, k := range yamlKeys(reflect.TypeFor[Storage]()) {
		known[k] = true
	}
	var problems []string
	checkKeys(n, known, "config.Storage", &problems, map[*yaml.Node]bool{})

	type storage Storage // without this method
	v := storage(*DefaultStorage())
	if err := n.Decode(&v); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return err
		}
		problems = append(problems, te.Errors...)
	}
	*s = Storage(v)
	if len(problems) > 0 {
		return &yaml.TypeError{Errors: problems}
	}
	return nil
}

// checkKeys reports keys of mapping n (and of mappings merged into it with
// "<<") that are not known, in the words yaml uses with KnownFields.
func checkKeys(n *yaml.Node, known map[string]bool, typeName string, problems *[]string, seen map[*yaml.Node]bool) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode || seen[n] {
		return
	}
	seen[n] = true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			for v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			if v.Kind == yaml.SequenceNode {
				for _, item := range v.Content {
					checkKeys(item, known, typeName, problems, seen)
				}
			} else {
				checkKeys(v, known, typeName, problems, seen)
			}
			continue
		}
		// A key written as an alias (*k) is the key its anchor names, as
		// yaml decodes it; it is reported at the alias's line.
		switch key := resolveAlias(k); {
		case key.Kind != yaml.ScalarNode:
			*problems = append(*problems, fmt.Sprintf("line %d: key %s not a name in type %s", k.Line, describeNode(key), typeName))
		case !known[key.Value]:
			*problems = append(*problems, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, key.Value, typeName))
		}
	}
}

// getenv returns the value of the last setting of name in environ.
func getenv(environ []string, name string) string {
	v := ""
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val
		}
	}
	return v
}
