// Package stablejson writes a protobuf message as indented protojson that is
// the same for every build.
//
// protojson varies its spacing on purpose, per binary, so that nobody
// compares its bytes: in multi-line output it may put two spaces after a
// key's colon. Bundles, golden files and `-o json` are compared and diffed,
// so kubeatlas prints every message with exactly one.
package stablejson

import (
	"sync"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Indent is the indentation of every level.
const Indent = "  "

var options = protojson.MarshalOptions{Multiline: true, Indent: Indent}

// Marshal returns m as protojson, one field a line, indented by Indent, with
// one space after each colon. It gives the bytes json.Indent gives for
// protojson's compact output, in one pass instead of two.
func Marshal(m proto.Message) ([]byte, error) {
	b, err := options.Marshal(m)
	if err != nil {
		return nil, err
	}
	if doubled() {
		b = singleSpace(b)
	}
	return b, nil
}

// doubled reports whether this binary's protojson puts two spaces after a
// key's colon. The choice is fixed for the life of the binary.
var doubled = sync.OnceValue(func() bool {
	probe, err := options.Marshal(&structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStringValue("v")}})
	// singleSpace is right for any output, so it runs when in doubt.
	return err != nil || string(probe) != "{\n"+Indent+"\"k\": \"v\"\n}"
})

// singleSpace drops the second space after every colon that follows a key,
// in place. Colons inside strings are left alone: a string's own quotes are
// escaped, so the scan knows where every string ends.
func singleSpace(b []byte) []byte {
	out := b[:0]
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		out = append(out, c)
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ':' && i+2 < len(b) && b[i+1] == ' ' && b[i+2] == ' ':
			out = append(out, ' ')
			i += 2
		}
	}
	return out
}
