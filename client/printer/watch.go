package printer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Event prints one watch event: a line of words, or in JSON and YAML one
// JSON object a line, so that the stream can be piped.
func Event(w io.Writer, f Format, ev *v1.WatchResponse) error {
	if f.Structured() {
		raw, err := protojson.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encoding output: %w", err)
		}
		// Compact: protojson's own spacing varies on purpose.
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return fmt.Errorf("encoding output: %w", err)
		}
		buf.WriteByte('\n')
		_, err = w.Write(buf.Bytes())
		return err
	}
	typ := ev.Type.Word()
	switch o := ev.Object.(type) {
	case *v1.WatchResponse_Component:
		in := o.Component
		_, err := fmt.Fprintf(w, "%-8s component %s/%s %s (%s) %s %s\n", typ, in.Cluster, in.Node, in.Component, in.Implementation, How(in.How), Detail(in))
		return err
	case *v1.WatchResponse_Finding:
		x := o.Finding
		_, err := fmt.Fprintf(w, "%-8s finding   %s/%s [%s] %s\n", typ, x.Cluster, x.Node, Severity(x.Severity), x.Summary)
		return err
	}
	_, err := fmt.Fprintf(w, "%s\n", typ)
	return err
}

// Reconnecting says on w that a watch lost its connection and when it tries
// again, and from where.
func Reconnecting(w io.Writer, err error, in time.Duration, resume uint64) error {
	from := "from the start"
	if resume != 0 {
		from = fmt.Sprintf("after index %d", resume)
	}
	_, werr := fmt.Fprintf(w, "watch: %v; reconnecting in %v, %s\n", err, in, from)
	return werr
}

// Notef prints one line of progress for a command that makes things rather
// than answers questions (`kubeatlas certs`).
func Notef(w io.Writer, format string, args ...any) error {
	_, err := fmt.Fprintf(w, format+"\n", args...)
	return err
}
