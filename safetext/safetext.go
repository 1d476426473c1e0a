// Package safetext keeps text that came from a node fit to be sent and
// stored: valid UTF-8, and cut only on rune boundaries.
//
// A process's argv, a file name or an /etc/passwd entry can hold any bytes;
// protobuf strings must be UTF-8, and grpc-go refuses to marshal a message
// that holds an invalid one. Cutting at a byte count can split a character
// and make valid text invalid, so every cut here backs up to a rune start.
package safetext

import (
	"errors"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Valid returns s with every invalid byte sequence replaced by U+FFFD.
func Valid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// Cut returns the longest prefix of s of at most n bytes that ends on a rune
// boundary. s is made valid first.
func Cut(s string, n int) string {
	s = Valid(s)
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Ellipsis cuts s to at most n bytes as Cut does and marks a cut with "…".
func Ellipsis(s string, n int) string {
	c := Cut(s, n)
	if len(c) < len(Valid(s)) {
		return c + "…"
	}
	return c
}

// Message makes every string in m valid UTF-8, in place, at any depth:
// singular, repeated and map fields, map keys included. It returns the
// number of strings it changed.
func Message(m proto.Message) int {
	if m == nil {
		return 0
	}
	return message(m.ProtoReflect())
}

func message(m protoreflect.Message) int {
	changed := 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			changed += mapField(fd, v.Map())
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				switch fd.Kind() {
				case protoreflect.StringKind:
					if s := l.Get(i).String(); !utf8.ValidString(s) {
						l.Set(i, protoreflect.ValueOfString(Valid(s)))
						changed++
					}
				case protoreflect.MessageKind, protoreflect.GroupKind:
					changed += message(l.Get(i).Message())
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			if s := v.String(); !utf8.ValidString(s) {
				m.Set(fd, protoreflect.ValueOfString(Valid(s)))
				changed++
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			changed += message(v.Message())
		}
		return true
	})
	return changed
}

func mapField(fd protoreflect.FieldDescriptor, mp protoreflect.Map) int {
	changed := 0
	type entry struct {
		k protoreflect.MapKey
		v protoreflect.Value
	}
	var rekey []entry
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		switch fd.MapValue().Kind() {
		case protoreflect.StringKind:
			if s := v.String(); !utf8.ValidString(s) {
				v = protoreflect.ValueOfString(Valid(s))
				mp.Set(k, v)
				changed++
			}
		case protoreflect.MessageKind:
			changed += message(v.Message())
		}
		if fd.MapKey().Kind() == protoreflect.StringKind && !utf8.ValidString(k.String()) {
			rekey = append(rekey, entry{k, v})
		}
		return true
	})
	for _, e := range rekey {
		mp.Clear(e.k)
		mp.Set(protoreflect.ValueOfString(Valid(e.k.String())).MapKey(), e.v)
		changed++
	}
	return changed
}

// Wire returns a message's wire form with every invalid UTF-8 sequence in
// its string fields (at any depth, map keys and values included) replaced by
// U+FFFD, so that it decodes. md describes the message. Fields it does not
// know are kept as they are. It reports how many strings it changed.
func Wire(b []byte, md protoreflect.MessageDescriptor) ([]byte, int, error) {
	return wire(b, md, 0)
}

// maxWireDepth bounds nesting, as the protobuf decoder does.
const maxWireDepth = 100

func wire(b []byte, md protoreflect.MessageDescriptor, depth int) ([]byte, int, error) {
	if depth > maxWireDepth {
		return nil, 0, errors.New("message nested too deeply")
	}
	out := make([]byte, 0, len(b))
	changed := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, 0, protowire.ParseError(n)
		}
		fd := md.Fields().ByNumber(num)
		if typ != protowire.BytesType || fd == nil || (fd.Kind() != protoreflect.StringKind && fd.Kind() != protoreflect.MessageKind) {
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if m < 0 {
				return nil, 0, protowire.ParseError(m)
			}
			out = append(out, b[:n+m]...)
			b = b[n+m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return nil, 0, protowire.ParseError(m)
		}
		out = protowire.AppendTag(out, num, typ)
		if fd.Kind() == protoreflect.StringKind {
			if !utf8.Valid(v) {
				v = []byte(strings.ToValidUTF8(string(v), "\uFFFD"))
				changed++
			}
			out = protowire.AppendBytes(out, v)
		} else {
			sub, c, err := wire(v, fd.Message(), depth+1)
			if err != nil {
				return nil, 0, err
			}
			changed += c
			out = protowire.AppendBytes(out, sub)
		}
		b = b[n+m:]
	}
	return out, changed, nil
}
