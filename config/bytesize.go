package config

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ByteSize is an amount of bytes. In YAML and in environment variables it is
// written as an integer number of bytes or as a number with a unit:
// "1GiB", "512MiB", "1.5GiB" (KiB, MiB, GiB, TiB, PiB, EiB: powers of 1024),
// "10MB" (KB, MB, GB, TB, PB, EB: powers of 1000), "1024B" or "1024".
// Units are case-insensitive; a fraction of a byte is dropped.
type ByteSize uint64

type byteUnit struct {
	name string
	size uint64
}

// byteUnits lists the units String tries, largest first; binary units first
// so that sizes written in them render the same way.
var byteUnits = []byteUnit{
	{"EiB", 1 << 60}, {"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"EB", 1e18}, {"PB", 1e15}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
}

// maxByteSizeNumber bounds the length of the number part, so that absurd
// input cannot make parsing slow.
const maxByteSizeNumber = 40

// ParseByteSize parses a size such as "1GiB", "10MB", "1.5GiB" or "1024".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	intPart, frac, _ := strings.Cut(num, ".")
	switch {
	case num == "" || num == "." || strings.Count(num, ".") > 1:
		return 0, fmt.Errorf("%q is not a size; write e.g. 1GiB, 512MiB, 10MB or 1024", s)
	case len(num) > maxByteSizeNumber:
		return 0, fmt.Errorf("%q is not a size: number too long", s)
	}
	mult := uint64(1)
	if unit != "" && !strings.EqualFold(unit, "B") {
		found := false
		for _, u := range byteUnits {
			if strings.EqualFold(unit, u.name) {
				mult, found = u.size, true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("%q has unknown unit %q; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB", s, unit)
		}
	}
	// value = (intPart.frac) * mult, computed exactly, fraction of a byte dropped.
	n, ok := new(big.Int).SetString(intPart+frac, 10)
	if !ok { // only when both parts are empty, excluded above
		return 0, fmt.Errorf("%q is not a size", s)
	}
	n.Mul(n, new(big.Int).SetUint64(mult))
	n.Quo(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil))
	if !n.IsUint64() {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return ByteSize(n.Uint64()), nil
}

// String renders the size with the largest unit that divides it exactly,
// e.g. "1GiB", "1536MiB", "10MB", "100B".
func (b ByteSize) String() string {
	if b == 0 {
		return "0B"
	}
	for _, u := range byteUnits {
		if uint64(b)%u.size == 0 {
			return strconv.FormatUint(uint64(b)/u.size, 10) + u.name
		}
	}
	return strconv.FormatUint(uint64(b), 10) + "B"
}

// UnmarshalYAML accepts an integer number of bytes or a string ParseByteSize accepts.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	fail := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		if n.Line > 0 {
			msg = fmt.Sprintf("line %d: %s", n.Line, msg)
		}
		return &yaml.TypeError{Errors: []string{msg}}
	}
	if n.Kind != yaml.ScalarNode {
		return fail("cannot unmarshal %s into a size; write e.g. 1GiB", n.ShortTag())
	}
	if n.ShortTag() == "!!int" {
		var u uint64
		if err := n.Decode(&u); err != nil {
			return fail("%q is not a size; write e.g. 1GiB or a number of bytes", n.Value)
		}
		*b = ByteSize(u)
		return nil
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fail("%s", err)
	}
	*b = v
	return nil
}

// MarshalYAML writes the size as String does, so that it reads back the same.
func (b ByteSize) MarshalYAML() (any, error) {
	return b.String(), nil
}
