package recognize

import (
	"sort"
	"strings"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
	"github.com/kubeatlas/kubeatlas/redact"
)

// Flags is a parsed command line: flag values by name (a repeated flag keeps
// every value, in order) and the positional words.
type Flags struct {
	Values     map[string][]string
	Positional []string
}

// Get returns a flag's last value and whether it was given.
func (f Flags) Get(name string) (string, bool) {
	v, ok := f.Values[name]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

// Has reports whether a flag was given at all.
func (f Flags) Has(name string) bool {
	_, ok := f.Values[name]
	return ok
}

// ParseFlags parses args (the words after the program) the way Go's flag and
// pflag packages accept them: --a=b, --a b, -a=b, -a b, and bare booleans --a.
// A flag followed by another flag or by nothing is a boolean "true". A word
// that does not start with a dash, and is not consumed as a value, is
// positional; after "--" every word is positional.
func ParseFlags(args []string) Flags {
	f := Flags{Values: map[string][]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			f.Positional = append(f.Positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' || isNumber(a) {
			f.Positional = append(f.Positional, a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		if name == "" {
			f.Positional = append(f.Positional, a)
			continue
		}
		if eq := strings.IndexByte(name, '='); eq >= 0 {
			if eq == 0 {
				f.Positional = append(f.Positional, a)
				continue
			}
			f.Values[name[:eq]] = append(f.Values[name[:eq]], name[eq+1:])
			continue
		}
		if i+1 < len(args) && (len(args[i+1]) == 0 || args[i+1][0] != '-' || isNumber(args[i+1])) {
			f.Values[name] = append(f.Values[name], args[i+1])
			i++
			continue
		}
		f.Values[name] = append(f.Values[name], "true")
	}
	return f
}

func isNumber(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	for _, c := range s[1:] {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// Proto turns parsed flags into API flags sorted by name, marking the ones
// whose values were redacted.
func (f Flags) Proto() []*v1.Flag {
	names := make([]string, 0, len(f.Values))
	for n := range f.Values {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*v1.Flag, 0, len(names))
	for _, n := range names {
		vals := f.Values[n]
		red := false
		for _, v := range vals {
			if strings.Contains(v, redact.Marker) {
				red = true
			}
		}
		out = append(out, &v1.Flag{Name: n, Values: append([]string(nil), vals...), Redacted: red})
	}
	return out
}
