package recognize

import (
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// scriptCommand returns the command a short shell script runs, in literal
// words: the command an "exec" names, or else the script's last command when
// every word of it is literal. Anything else (pipelines, loops, expansions in
// the program's name) returns nil: the script is not one command.
func scriptCommand(script string) []string {
	if len(script) > 64<<10 {
		return nil
	}
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(script), "")
	if err != nil {
		return nil
	}
	var last, exec []string
	for _, st := range f.Stmts {
		for _, call := range calls(st.Cmd) {
			w := literal(call.Args)
			if len(w) == 0 {
				last = nil
				continue
			}
			if w[0] == "exec" && len(w) > 1 {
				exec = w[1:]
			}
			last = w
		}
	}
	if exec != nil {
		return exec
	}
	return last
}

// calls returns the simple commands of a statement: itself, or the parts of
// an "a && b" list, in order.
func calls(cmd syntax.Command) []*syntax.CallExpr {
	switch c := cmd.(type) {
	case *syntax.CallExpr:
		return []*syntax.CallExpr{c}
	case *syntax.BinaryCmd:
		if c.Op == syntax.AndStmt || c.Op == syntax.OrStmt {
			return append(calls(c.X.Cmd), calls(c.Y.Cmd)...)
		}
	}
	return nil
}

// literal returns the words as text, quotes removed, when the program's name
// is literal; a word that is not literal (an expansion) is kept as written.
func literal(words []*syntax.Word) []string {
	out := make([]string, 0, len(words))
	for i, w := range words {
		if lit, ok := wordText(w); ok {
			out = append(out, lit)
			continue
		}
		if i == 0 {
			return nil
		}
		var b strings.Builder
		syntax.NewPrinter().Print(&b, w)
		out = append(out, b.String())
	}
	return out
}

// wordText returns a word's text when it has no expansion in it.
func wordText(w *syntax.Word) (string, bool) {
	var b strings.Builder
	for _, part := range w.Parts {
		switch p := part.(type) {
		case *syntax.Lit:
			b.WriteString(p.Value)
		case *syntax.SglQuoted:
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			for _, q := range p.Parts {
				lit, ok := q.(*syntax.Lit)
				if !ok {
					return "", false
				}
				b.WriteString(lit.Value)
			}
		default:
			return "", false
		}
	}
	return b.String(), true
}
