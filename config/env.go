package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts the name of every environment variable that overrides a
// setting.
const EnvPrefix = "CDC_CLEANER_"

// envSetting is one setting an environment variable can override.
type envSetting struct {
	path string       // as in the file and in Validate's errors: "watch[0].table"
	typ  reflect.Type // type of the value
	set  func(reflect.Value) error
}

// applyEnv applies the CDC_CLEANER_* variables of environ to cfg. The
// settings are found by walking cfg by its YAML tags, so that every field
// is covered without a list to keep up to date.
func applyEnv(cfg *Config, environ []string) error {
	settings := map[string][]envSetting{}
	collectEnv(reflect.ValueOf(cfg).Elem(), "", strings.TrimSuffix(EnvPrefix, "_"), settings)

	type variable struct{ name, value string }
	var vars []variable
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(name, EnvPrefix) {
			vars = append(vars, variable{name, value})
		}
	}
	// By name, so that a whole list (..._COLUMNS) is set before its entries
	// (..._COLUMNS_0); stable, so that the last of duplicates wins.
	sort.SliceStable(vars, func(i, j int) bool { return vars[i].name < vars[j].name })

	var errs []error
	for _, v := range vars {
		ss := settings[v.name]
		switch len(ss) {
		case 0:
			errs = append(errs, fmt.Errorf("%s: no such setting; check the spelling (storages and list entries can be overridden only when the file has them)", v.name))
			continue
		case 1:
		default:
			paths := make([]string, len(ss))
			for i, s := range ss {
				paths[i] = s.path
			}
			errs = append(errs, fmt.Errorf("%s: ambiguous, it names %s; rename a storage so that their names differ in more than case and punctuation", v.name, strings.Join(paths, " and ")))
			continue
		}
		s := ss[0]
		val, err := parseEnvValue(s.typ, s.path, v.value)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", v.name, err))
			continue
		}
		if err := s.set(val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", v.name, err))
			continue
		}
		if cfg.envSet == nil {
			cfg.envSet = map[string]string{}
		}
		cfg.envSet[s.path] = v.name
		if s.typ.Kind() == reflect.Slice {
			// A replaced list has other entries now.
			settings = map[string][]envSetting{}
			collectEnv(reflect.ValueOf(cfg).Elem(), "", strings.TrimSuffix(EnvPrefix, "_"), settings)
		}
	}
	return errors.Join(errs...)
}

// envName turns a YAML key, map key or list index into its part of an
// environment variable name: upper case, anything but letters and digits as "_".
func envName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

var (
	yamlUnmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// isScalarType reports whether a value of type t is written as one YAML scalar.
func isScalarType(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(yamlUnmarshalerType) && t.Kind() != reflect.Struct {
		return true
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return true
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// collectEnv records in out every setting under v, which is at YAML path
// path and environment name env.
func collectEnv(v reflect.Value, path, env string, out map[string][]envSetting) {
	add := func(path, env string, t reflect.Type, set func(reflect.Value) error) {
		out[env] = append(out[env], envSetting{path: path, typ: t, set: set})
	}
	t := v.Type()
	if isScalarType(t) {
		if v.CanSet() {
			add(path, env, t, func(x reflect.Value) error { v.Set(x); return nil })
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			collectEnv(v.Elem(), path, env, out)
		}
	case reflect.Struct:
		for _, f := range yamlFields(t) {
			collectEnv(v.Field(f.index), joinPath(path, f.key), env+"_"+envName(f.key), out)
		}
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return
		}
		iter := v.MapRange()
		for iter.Next() {
			k, e := iter.Key(), iter.Value()
			p, n := path+"."+k.String(), env+"_"+envName(k.String())
			switch {
			case e.Kind() == reflect.Pointer:
				collectEnv(e, p, n, out)
			case isScalarType(e.Type()):
				add(p, n, e.Type(), func(x reflect.Value) error { v.SetMapIndex(k, x); return nil })
			}
		}
	case reflect.Slice:
		et := t.Elem()
		if isScalarType(et) {
			// The whole list, as a YAML flow list...
			if v.CanSet() {
				add(path, env, t, func(x reflect.Value) error { v.Set(x); return nil })
			}
			// ...and each entry, looked up when set since the whole list
			// may have been replaced before.
			for i := range v.Len() {
				add(fmt.Sprintf("%s[%d]", path, i), env+"_"+strconv.Itoa(i), et, func(x reflect.Value) error {
					if i >= v.Len() {
						return fmt.Errorf("%s has only %d entries", path, v.Len())
					}
					v.Index(i).Set(x)
					return nil
				})
			}
			return
		}
		for i := range v.Len() {
			collectEnv(v.Index(i), fmt.Sprintf("%s[%d]", path, i), env+"_"+strconv.Itoa(i), out)
		}
	}
}

// parseEnvValue parses raw as YAML would parse it as the value of the
// setting at path, of type t: a string is taken literally, other scalars by
// YAML's rules ("10s", "true", "1GiB"), lists as YAML flow lists ("[a,
// b]"). Its errors name the setting, as the file's do.
func parseEnvValue(t reflect.Type, path, raw string) (reflect.Value, error) {
	p := reflect.New(t)
	var n *yaml.Node
	switch {
	case t.Kind() == reflect.String && isScalarType(t):
		n = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: raw}
	case isScalarType(t):
		raw = strings.TrimSpace(raw)
		if raw == "" {
			return reflect.Value{}, fmt.Errorf("empty; give %s or unset the variable", describeType(t))
		}
		n = &yaml.Node{Kind: yaml.ScalarNode, Value: raw}
	default:
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(raw), &doc); err != nil || len(doc.Content) != 1 {
			return reflect.Value{}, fmt.Errorf("%s: cannot parse %q as %s", path, redactValue(raw), describeType(t))
		}
		n = doc.Content[0]
	}
	c := newValueChecker(false)
	c.check(n, t, path)
	if msgs := c.messages(); len(msgs) > 0 {
		return reflect.Value{}, errors.New(strings.Join(msgs, "; "))
	}
	if err := n.Decode(p.Interface()); err != nil {
		return reflect.Value{}, fmt.Errorf("%s: cannot parse %q as %s", path, redactValue(raw), describeType(t))
	}
	return p.Elem(), nil
}

// describeType says in words what a value of type t looks like.
func describeType(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return "a duration (e.g. 10s, 5m, 1h30m)"
	case reflect.TypeFor[ByteSize]():
		return "a size (e.g. 1GiB, 512MiB, 1048576)"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a YAML list (e.g. [a, b])"
	case reflect.String:
		return "a string"
	}
	return t.String()
}
