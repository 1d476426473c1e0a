package redact

import (
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// maxShellBytes bounds the text handed to the shell lexer; longer text is
// read as whitespace-separated words only.
const maxShellBytes = 64 << 10

// shellLine redacts s read as a shell script (sh -c "…", a rewritten process
// title): every simple command in it, at any depth (command substitutions,
// pipelines, lists), is redacted as a command line, and every assignment
// (NAME=value, export NAME=value) by its name. Text the lexer cannot read
// is left to fieldsLine.
func shellLine(s string, depth int) (out string) {
	if len(s) > maxShellBytes {
		return s
	}
	// The lexer reads hostile text; a fault in it must not stop redaction,
	// which fieldsLine then does alone.
	defer func() {
		if recover() != nil {
			out = s
		}
	}()
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(s), "")
	if err != nil {
		return s
	}
	var edits []edit
	syntax.Walk(f, func(n syntax.Node) bool {
		switch x := n.(type) {
		case *syntax.CallExpr:
			edits = append(edits, callEdits(s, x.Args, depth)...)
		case *syntax.Assign:
			if x.Name == nil || x.Value == nil {
				return true
			}
			val, dynamic := wordValue(x.Value)
			st, en := offsets(x.Value, len(s))
			if st < 0 {
				return true
			}
			if IsSecretFlag(x.Name.Value) {
				if dynamic || (val != Marker && val != "" && !isBool(val)) {
					edits = append(edits, edit{st, en, Marker})
				}
				return true
			}
			if !dynamic {
				if v := freeText(val, depth); v != val {
					edits = append(edits, edit{st, en, requote(x.Value, v)})
				}
			}
		}
		return true
	})
	return apply(s, edits)
}

// callEdits redacts one simple command's words.
func callEdits(s string, args []*syntax.Word, depth int) []edit {
	words := make([]word, len(args))
	for i, w := range args {
		words[i].val, words[i].dynamic = wordValue(w)
	}
	var edits []edit
	for i, r := range redactWords(words, depth) {
		st, en := offsets(args[i], len(s))
		if st < 0 {
			continue
		}
		if r.changed {
			edits = append(edits, edit{st, en, requote(args[i], r.val)})
			continue
		}
		if words[i].dynamic {
			// The literal parts of a word with expansions are still text.
			edits = append(edits, partEdits(s, args[i], depth)...)
		}
	}
	return edits
}

// partEdits redacts the literal parts of a word one by one.
func partEdits(s string, w *syntax.Word, depth int) []edit {
	var edits []edit
	var visit func(parts []syntax.WordPart)
	visit = func(parts []syntax.WordPart) {
		for _, p := range parts {
			switch x := p.(type) {
			case *syntax.Lit:
				st, en := int(x.Pos().Offset()), int(x.End().Offset())
				if en > len(s) || st > en {
					continue
				}
				if v := freeText(x.Value, depth); v != x.Value {
					edits = append(edits, edit{st, en, v})
				}
			case *syntax.SglQuoted:
				st, en := int(x.Pos().Offset()), int(x.End().Offset())
				if en > len(s) || st > en {
					continue
				}
				if v := freeText(x.Value, depth); v != x.Value {
					edits = append(edits, edit{st, en, "'" + v + "'"})
				}
			case *syntax.DblQuoted:
				visit(x.Parts)
			}
		}
	}
	visit(w.Parts)
	return edits
}

// offsets returns a node's byte range in s, or -1 when it is not usable.
func offsets(n syntax.Node, size int) (int, int) {
	st, en := int(n.Pos().Offset()), int(n.End().Offset())
	if st < 0 || en > size || st > en {
		return -1, -1
	}
	return st, en
}

// wordValue returns a word's value as the program would see it, when it is
// made of literal parts only. A word with expansions is dynamic and its value
// is the literal text before the first expansion.
func wordValue(w *syntax.Word) (string, bool) {
	var b strings.Builder
	for _, p := range w.Parts {
		switch x := p.(type) {
		case *syntax.Lit:
			b.WriteString(unescape(x.Value, false))
		case *syntax.SglQuoted:
			b.WriteString(x.Value)
		case *syntax.DblQuoted:
			for _, q := range x.Parts {
				l, ok := q.(*syntax.Lit)
				if !ok {
					return b.String(), true
				}
				b.WriteString(unescape(l.Value, true))
			}
		default:
			return b.String(), true
		}
	}
	return b.String(), false
}

// unescape removes the shell's backslashes: all of them outside quotes, and
// those before $ ` " \ and newline inside double quotes.
func unescape(s string, dquoted bool) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			n := s[i+1]
			if !dquoted || n == '$' || n == '`' || n == '"' || n == '\\' || n == '\n' {
				i++
				if n != '\n' {
					b.WriteByte(n)
				}
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// requote writes a redacted value back in the quotes its word had.
func requote(w *syntax.Word, v string) string {
	if len(w.Parts) == 1 {
		switch w.Parts[0].(type) {
		case *syntax.SglQuoted:
			return "'" + v + "'"
		case *syntax.DblQuoted:
			return `"` + v + `"`
		}
	}
	return v
}
