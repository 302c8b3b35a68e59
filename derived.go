package cdccleaner

import (
	"slices"
	"strings"
)

// DerivedParents returns the paths of c that path may derive from through
// one of c.Derived (a derived file, or a file below a derived prefix), for
// a caller deciding whether path is referenced: it is when one of them is.
// known is false when path may derive from a path of c that cannot be
// named (a derived template that slices a column it never names whole,
// names only some of the columns the path is built from, or a path split
// too many ways): the caller must then keep the file.
func (c Column) DerivedParents(path string) (parents []string, known bool) {
	known = true
	for _, t := range c.Derived {
		var tries []string
		if t.Prefix() {
			// Every directory above the file may be the prefix.
			for i := 0; i < len(path)-1; i++ {
				if path[i] == '/' {
					tries = append(tries, path[:i+1])
				}
			}
		} else {
			tries = []string{path}
		}
		for _, try := range tries {
			if !t.reversible() {
				if strings.HasPrefix(try, t.literalPrefix()) {
					known = false
				}
				continue
			}
			sols, complete := t.Reverse(try, maxDerivedWays)
			if !complete {
				known = false
			}
			for _, sol := range sols {
				parent, ok := c.parentOf(sol)
				if !ok {
					known = false
					continue
				}
				if parent != "" && !slices.Contains(parents, parent) {
					parents = append(parents, parent)
				}
			}
		}
	}
	return parents, known
}

// maxDerivedWays bounds the ways one path maps back through a derived
// template.
const maxDerivedWays = 64

// parentOf renders the path of c that the column values sol give, ""
// when they give none; ok is false when sol lacks a column it needs.
func (c Column) parentOf(sol map[string]string) (string, bool) {
	if c.Template == nil {
		v, ok := sol[c.Name]
		return v, ok // the value is the path itself
	}
	for _, col := range c.Template.Columns() {
		if _, ok := sol[col]; !ok {
			return "", false
		}
	}
	v, ok := c.Template.Render(func(col string) (string, bool) { v, ok := sol[col]; return v, ok })
	if !ok {
		return "", true
	}
	p, ok := c.Strip(v)
	if !ok {
		return "", true
	}
	return p, true
}

// reversible reports whether every column t names appears whole, so that
// Reverse can find its values.
func (t Template) reversible() bool {
	whole := map[string]bool{}
	for _, p := range t.Parts {
		if p.Column != "" {
			whole[p.Column] = whole[p.Column] || p.Whole()
		}
	}
	for _, ok := range whole {
		if !ok {
			return false
		}
	}
	return true
}

// literalPrefix is the literal text before t's first column.
func (t Template) literalPrefix() string {
	if len(t.Parts) > 0 && t.Parts[0].Column == "" {
		return t.Parts[0].Literal
	}
	return ""
}
