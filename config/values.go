package config

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// valueChecker walks a YAML document alongside the type it will be decoded
// into and reports, naming each setting by its path
// ("storages.media.concurrency"), what yaml would refuse or accept wrongly:
// a value of the wrong kind, a number where a duration with a unit belongs,
// a fraction where a whole number belongs. yaml's own messages name the Go
// type ("cannot unmarshal !!str `four` into int") and not the key. It also
// reports the unknown and duplicate keys yaml reports, in yaml's words, so
// that the document can then be decoded without yaml's KnownFields, which
// Node.Decode lacks.
//
// It rewrites what it accepts and yaml would not: a duration written as a
// bare 0 becomes the string "0", which yaml parses with time.ParseDuration.
type valueChecker struct {
	fromFile bool // the nodes carry lines of the file
	problems []valueProblem
	seen     map[visit]bool // the nodes checked as a type, so that aliases are checked once
}

type visit struct {
	n *yaml.Node
	t reflect.Type
}

// valueProblem is one message, at line of the file (0: not from the file).
type valueProblem struct {
	line int
	msg  string
}

func (p valueProblem) String() string {
	if p.line > 0 {
		return fmt.Sprintf("line %d: %s", p.line, p.msg)
	}
	return p.msg
}

func newValueChecker(fromFile bool) *valueChecker {
	return &valueChecker{fromFile: fromFile, seen: map[visit]bool{}}
}

// messages returns the problems found, in the order of their lines, each
// once (a mapping merged into two may be reported for both).
func (c *valueChecker) messages() []string {
	slices.SortStableFunc(c.problems, func(a, b valueProblem) int { return a.line - b.line })
	var out []string
	for _, p := range c.problems {
		if m := p.String(); !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// add records a problem with the setting at path, whose value is node n.
func (c *valueChecker) add(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	c.problems = append(c.problems, valueProblem{line: c.line(n), msg: msg})
}

func (c *valueChecker) line(n *yaml.Node) int {
	if !c.fromFile {
		return 0
	}
	return n.Line
}

var durationType = reflect.TypeFor[time.Duration]()

// check checks node n as the value of the setting at path, of type t.
func (c *valueChecker) check(n *yaml.Node, t reflect.Type, path string) {
	n = resolveAlias(n)
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) != 1 {
			return
		}
		n = resolveAlias(n.Content[0])
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // yaml leaves the default (or a nil pointer, list or map)
	}
	if c.seen[visit{n, t}] {
		return
	}
	c.seen[visit{n, t}] = true
	switch {
	case t == durationType:
		c.checkDuration(n, path)
	case isScalarType(t):
		c.checkScalar(n, t, path)
	case t.Kind() == reflect.Struct:
		c.checkStruct(n, t, path)
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.add(n, path, "expected a mapping of names to settings, not %s", describeNode(n))
			return
		}
		c.checkDuplicates(n)
		for _, e := range mappingEntries(n) {
			if e.key.Kind != yaml.ScalarNode {
				continue // yaml reports it
			}
			c.check(e.value, t.Elem(), mapEntryPath(path, e.key.Value))
		}
	case t.Kind() == reflect.Slice:
		switch n.Kind {
		case yaml.SequenceNode:
			for i, item := range n.Content {
				c.check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			}
		case yaml.ScalarNode:
			if isScalarType(t.Elem()) {
				c.add(n, path, "%s is not a list; write [%s]", describeNode(n), flowItem(n.Value))
				return
			}
			c.add(n, path, "expected a list (in the file, each entry on its own line starting with \"- \"), not %s", describeNode(n))
		default:
			c.add(n, path, "expected a list (in the file, each entry on its own line starting with \"- \"), not %s", describeNode(n))
		}
	}
}

// checkStruct checks mapping n as the settings of struct type t.
func (c *valueChecker) checkStruct(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		c.add(n, path, "expected a mapping with keys %s, not %s", strings.Join(yamlKeys(t), ", "), describeNode(n))
		return
	}
	c.checkDuplicates(n)
	fields := map[string]yamlField{}
	known := map[string]bool{}
	for _, f := range yamlFields(t) {
		fields[f.key] = f
		known[f.key] = true
	}
	var unknown []string
	checkKeys(n, known, t.String(), &unknown, map[*yaml.Node]bool{})
	for _, u := range unknown {
		c.problems = append(c.problems, yamlProblem(rewordYAMLError(u)))
	}
	for _, e := range mappingEntries(n) {
		if f, ok := fields[e.key.Value]; ok && e.key.Kind == yaml.ScalarNode {
			c.check(e.value, f.typ, joinPath(path, f.key))
		}
	}
}

// checkDuplicates reports keys that mapping n repeats, as yaml does, and
// also a key repeated as an alias (*k), which yaml decodes as the key its
// anchor names. Keys that are not scalars are reported elsewhere.
func (c *valueChecker) checkDuplicates(n *yaml.Node) {
	for i := 0; i < len(n.Content); i += 2 {
		for j := i + 2; j < len(n.Content); j += 2 {
			ai, aj := n.Content[i], n.Content[j]
			if isMergeKey(ai) != isMergeKey(aj) {
				continue // "<<" merges; an alias of "<<" is a key
			}
			ki, kj := resolveAlias(ai), resolveAlias(aj)
			if ki.Kind == yaml.ScalarNode && kj.Kind == yaml.ScalarNode && ki.Value == kj.Value {
				c.problems = append(c.problems, valueProblem{line: c.line(aj),
					msg: fmt.Sprintf("mapping key %#v already defined at line %d", kj.Value, ai.Line)})
			}
		}
	}
}

// checkDuration checks a duration: a number with a unit ("10s", "1h30m"),
// as time.ParseDuration reads it, or a bare 0. yaml refuses a bare number
// (even 0), which is right but says only "cannot unmarshal !!int `10`
// into time.Duration".
func (c *valueChecker) checkDuration(n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode {
		c.add(n, path, "expected a duration (e.g. 10s, 5m, 1h30m), not %s", describeNode(n))
		return
	}
	if _, err := time.ParseDuration(n.Value); err == nil {
		// Only 0 (and -0, +0) parse without a unit; yaml takes those
		// for integers and would refuse them.
		n.Tag = "!!str"
		return
	}
	v := strings.TrimSpace(n.Value)
	if bareNumberRE.MatchString(v) {
		c.add(n, path, "%s has no unit; write %ss (or %sm, %sh)", v, v, v, v)
		return
	}
	c.add(n, path, "%s is not a duration; write a number and a unit, e.g. 10s, 5m or 1h30m", describeNode(n))
}

var bareNumberRE = regexp.MustCompile(`^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)$`)

// checkScalar checks a scalar setting of type t that is not a duration.
func (c *valueChecker) checkScalar(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		c.add(n, path, "expected %s, not %s", describeType(t), describeNode(n))
		return
	}
	err := n.Decode(reflect.New(t).Interface())
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		switch n.ShortTag() {
		case "!!int":
			if err != nil {
				c.add(n, path, "%s is out of range", n.Value)
			}
			return
		case "!!float":
			// yaml drops the fraction; 1.5 requests in flight is a mistake.
			if f, perr := strconv.ParseFloat(n.Value, 64); err == nil && perr == nil && f == math.Trunc(f) {
				return
			}
			c.add(n, path, "%s is not a whole number", n.Value)
			return
		}
		if err != nil {
			c.add(n, path, "%s is not a number", describeNode(n))
		}
		return
	case reflect.Bool:
		if err != nil {
			c.add(n, path, "%s is not a boolean; write true or false", describeNode(n))
		}
		return
	}
	if err == nil {
		return
	}
	// A type that reads itself (ByteSize) says what is wrong in its
	// message, after yaml's "line N: ".
	var msgs []string
	if te, ok := err.(*yaml.TypeError); ok {
		for _, m := range te.Errors {
			msgs = append(msgs, lineRE.ReplaceAllString(m, ""))
		}
	}
	// Its message quotes the value, which must not show a password.
	if len(msgs) == 0 || strings.Contains(msgs[0], "cannot unmarshal") || redactValue(n.Value) != n.Value {
		c.add(n, path, "%s is not %s", describeNode(n), describeType(t))
		return
	}
	c.add(n, path, "%s", strings.Join(msgs, "; "))
}

var lineRE = regexp.MustCompile(`^line \d+: `)

// yamlProblem turns a message in yaml's form ("line 3: ...") into a problem
// at that line.
func yamlProblem(msg string) valueProblem {
	if m := lineRE.FindString(msg); m != "" {
		line, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(m, "line "), ": "))
		return valueProblem{line: line, msg: msg[len(m):]}
	}
	return valueProblem{msg: msg}
}

// describeNode shows a value in a message: a scalar as written (quoted
// when it is a string), a list or mapping by its kind. A scalar that looks
// like a connection string is shown without its password (redactValue).
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	v := redactValue(n.Value)
	if n.ShortTag() == "!!str" {
		return strconv.Quote(v)
	}
	return v
}

var plainItemRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_./-]*$`)

// flowItem writes s as an item of a YAML flow list.
func flowItem(s string) string {
	if plainItemRE.MatchString(s) {
		return s
	}
	return strconv.Quote(s)
}

// mapEntryPath is the path of entry key of the mapping at path, as
// Validate writes it: "storages.media", or storages["my store"] for a
// name Validate would refuse.
func mapEntryPath(path, key string) string {
	if storageNameRE.MatchString(key) {
		return path + "." + key
	}
	return fmt.Sprintf("%s[%q]", path, key)
}

type mappingEntry struct{ key, value *yaml.Node }

// mappingEntries lists the entries of mapping n as yaml decodes them: its
// own keys, then the keys of the mappings merged into it with "<<" that it
// does not set itself, the first merged mapping winning. A key written as
// an alias (*k) is listed as the node its anchor names, as yaml decodes it;
// an alias of "<<" is a key, not a merge.
func mappingEntries(n *yaml.Node) []mappingEntry {
	var out []mappingEntry
	set := map[string]bool{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			merges = append(merges, v)
			continue
		}
		k = resolveAlias(k)
		out = append(out, mappingEntry{k, v})
		set[k.Value] = true
	}
	seen := map[*yaml.Node]bool{n: true}
	var merge func(m *yaml.Node)
	merge = func(m *yaml.Node) {
		m = resolveAlias(m)
		if seen[m] {
			return
		}
		seen[m] = true
		switch m.Kind {
		case yaml.SequenceNode:
			for _, item := range m.Content {
				merge(item)
			}
		case yaml.MappingNode:
			for _, e := range mappingEntries(m) {
				if !set[e.key.Value] {
					set[e.key.Value] = true
					out = append(out, e)
				}
			}
		}
	}
	for _, m := range merges {
		merge(m)
	}
	return out
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge")
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}
