package fleet

import (
	"unsafe"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// shareStrings moves every string of m, its nested messages' and lists'
// included, into one buffer that they all share. A fleet view keeps every
// node's summary for as long as the node is published; one buffer in place
// of a dozen strings a node is that many fewer objects for each collection
// to mark. Map fields are left as they are. The buffer is never written
// again, so the strings stay as immutable as Go's own.
func shareStrings(m protoreflect.Message) {
	n := 0
	eachString(m, func(s string) string { n += len(s); return s })
	if n == 0 {
		return
	}
	buf := make([]byte, 0, n)
	eachString(m, func(s string) string {
		if s == "" {
			return s
		}
		start := len(buf)
		buf = append(buf, s...)
		return unsafe.String(&buf[start], len(s))
	})
}

// eachString replaces each string of m, in its nested messages and lists
// too (not in maps), with what f returns for it.
func eachString(m protoreflect.Message, f func(string) string) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		message := fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind
		switch {
		case fd.IsMap():
		case fd.IsList() && fd.Kind() == protoreflect.StringKind:
			l := v.List()
			for i := range l.Len() {
				l.Set(i, protoreflect.ValueOfString(f(l.Get(i).String())))
			}
		case fd.IsList() && message:
			l := v.List()
			for i := range l.Len() {
				eachString(l.Get(i).Message(), f)
			}
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString(f(v.String())))
		case message:
			eachString(v.Message(), f)
		}
		return true
	})
}
