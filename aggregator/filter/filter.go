// Package filter compiles and runs the CEL expressions of List and Watch
// requests (their filter field) over the API's rows.
//
// An expression is parsed and type-checked once per request against plain
// views of the rows (see views.go): a misspelt field is an error before any
// row is read, enums are their names, and a component's flags are a map.
// Evaluation is bounded in cost per row, as Kubernetes bounds its own CEL; an
// expression that would cost more is refused. Top-level equalities on the
// fields the store indexes are handed back to the caller to serve from the
// index, and only the rest is evaluated per row.
package filter

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
	"github.com/google/cel-go/parser"

	v1 "github.com/kubeatlas/kubeatlas/proto/kubeatlas/v1"
)

// Limits, in the spirit of Kubernetes' CEL (its per-call limit is 1,000,000
// cost units): an expression is at most MaxBytes long, and evaluating it on
// one row may cost at most CostLimit.
const (
	MaxBytes  = 10 << 10
	CostLimit = 1_000_000
)

// Kind is the resource a filter runs over, and names its variable.
type Kind int

// Kinds.
const (
	Clusters Kind = iota
	Nodes
	Components
	Processes
	Manifests
	Findings
	// Events are Watch events: components and findings.
	Events
	Certificates
)

// variables are each kind's variables and their view types.
var variables = map[Kind][]struct {
	name string
	typ  reflect.Type
}{
	Clusters:     {{"cluster", reflect.TypeOf(Cluster{})}},
	Nodes:        {{"node", reflect.TypeOf(Node{})}},
	Components:   {{"component", reflect.TypeOf(Component{})}},
	Processes:    {{"process", reflect.TypeOf(Process{})}},
	Manifests:    {{"manifest", reflect.TypeOf(Manifest{})}},
	Findings:     {{"finding", reflect.TypeOf(Finding{})}},
	Events:       {{"component", reflect.TypeOf(Component{})}, {"finding", reflect.TypeOf(Finding{})}},
	Certificates: {{"certificate", reflect.TypeOf(Certificate{})}},
}

// Indexed are the component fields the store serves from an index.
var Indexed = []string{"cluster", "node", "component", "implementation", "how"}

// Filter is a compiled expression.
type Filter struct {
	prg  cel.Program // nil when every conjunct was pushed down
	kind Kind
	// flags says whether the expression may read a component's flags; the
	// map is built only then.
	flags bool
	// Pushed holds the top-level equalities on indexed fields the caller
	// serves from the store's index instead: field → value. Only for
	// Components.
	Pushed map[string]string
}

// envs are built once per kind.
var envs = map[Kind]*cel.Env{}

func init() {
	for kind, vars := range variables {
		opts := []cel.EnvOption{cel.OptionalTypes(), ext.Strings(), cel.ParserExpressionSizeLimit(MaxBytes)}
		var natives []any
		for _, v := range vars {
			natives = append(natives, v.typ)
		}
		opts = append(opts, ext.NativeTypes(append([]any{ext.ParseStructTags(true)}, natives...)...))
		for _, v := range vars {
			opts = append(opts, cel.Variable(v.name, cel.ObjectType("filter."+v.typ.Name())))
		}
		env, err := cel.NewEnv(opts...)
		if err != nil {
			panic(fmt.Sprintf("filter: %v", err))
		}
		envs[kind] = env
	}
}

// cache keeps compiled filters: a client pages through a List with the same
// filter in every request, and a fleet's operators ask the same questions.
var cache = struct {
	sync.Mutex
	m map[cacheKey]*Filter
}{m: map[cacheKey]*Filter{}}

type cacheKey struct {
	kind Kind
	expr string
}

// cacheSize bounds the cache; past it, the cache starts again empty.
const cacheSize = 512

// Compile parses and checks expr for kind. An empty expression is no filter
// (nil). Errors carry CEL's message and the position in the expression.
// Compiled filters are kept and shared: they are safe for concurrent use.
func Compile(kind Kind, expr string) (*Filter, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	key := cacheKey{kind, expr}
	cache.Lock()
	f, ok := cache.m[key]
	cache.Unlock()
	if ok {
		return f, nil
	}
	f, err := compile(kind, expr)
	if err != nil {
		return nil, err
	}
	cache.Lock()
	if len(cache.m) >= cacheSize {
		cache.m = map[cacheKey]*Filter{}
	}
	cache.m[key] = f
	cache.Unlock()
	return f, nil
}

func compile(kind Kind, expr string) (*Filter, error) {
	if len(expr) > MaxBytes {
		return nil, fmt.Errorf("filter is %d bytes, over the limit of %d", len(expr), MaxBytes)
	}
	env := envs[kind]
	checked, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("filter: %s", strings.TrimSpace(iss.Err().Error()))
	}
	if !checked.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("filter: the expression is %s, not a bool", checked.OutputType())
	}
	f := &Filter{kind: kind, flags: strings.Contains(expr, "flags")}
	rest := checked
	if kind == Components {
		f.Pushed, rest = pushDown(env, checked)
		if rest == nil {
			return f, nil
		}
	}
	prg, err := env.Program(rest, cel.CostLimit(CostLimit), cel.InterruptCheckFrequency(100))
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	f.prg = prg
	return f, nil
}

// ErrTooCostly is returned when evaluating the filter on a row passes
// CostLimit.
var ErrTooCostly = errors.New("filter: evaluating the expression on one row costs more than the limit")

// eval runs the program over one row's variables. A runtime error (a key the
// row lacks) is no match; only passing the cost limit is an error.
func (f *Filter) eval(vars map[string]any) (bool, error) {
	if f == nil || f.prg == nil {
		return true, nil
	}
	out, _, err := f.prg.Eval(vars)
	if err != nil {
		var cancelled interpreter.EvalCancelledError
		if errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded {
			return false, ErrTooCostly
		}
		if strings.Contains(err.Error(), "cost limit exceeded") {
			return false, ErrTooCostly
		}
		return false, nil
	}
	return out == types.True, nil
}

// NeedsDetail reports whether the filter evaluates an expression on each
// row, which may read any of its fields (flags and evidence included).
func (f *Filter) NeedsDetail() bool { return f != nil && f.prg != nil }

// Rest reports whether a component instance matches what was not pushed
// down, for a caller that serves Pushed itself.
func (f *Filter) Rest(in *v1.ComponentInstance) (bool, error) {
	if f == nil || f.prg == nil {
		return true, nil
	}
	return f.eval(map[string]any{"component": ptr(componentView(in, f.flags))})
}

// Component reports whether a component instance matches: the pushed-down
// equalities (cheap, and true of every row the index gave) and the rest.
func (f *Filter) Component(in *v1.ComponentInstance) (bool, error) {
	if f == nil {
		return true, nil
	}
	for field, want := range f.Pushed {
		var got string
		switch field {
		case "cluster":
			got = in.Cluster
		case "node":
			got = in.Node
		case "component":
			got = in.Component
		case "implementation":
			got = in.Implementation
		case "how":
			got = in.How.String()
		}
		if got != want {
			return false, nil
		}
	}
	if f.prg == nil {
		return true, nil
	}
	return f.eval(map[string]any{"component": ptr(componentView(in, f.flags))})
}

// Event reports whether a Watch event's object matches; the other kind's
// variable is an empty row.
func (f *Filter) Event(in *v1.ComponentInstance, fi *v1.Finding) (bool, error) {
	if f == nil || f.prg == nil {
		return true, nil
	}
	return f.eval(map[string]any{"component": ptr(componentView(in, f.flags)), "finding": ptr(findingView(fi))})
}

// Cluster reports whether a cluster matches.
func (f *Filter) Cluster(c *v1.Cluster) (bool, error) {
	if f == nil {
		return true, nil
	}
	return f.eval(map[string]any{"cluster": ptr(clusterView(c))})
}

// Node reports whether a node matches.
func (f *Filter) Node(n *v1.Node) (bool, error) {
	if f == nil {
		return true, nil
	}
	return f.eval(map[string]any{"node": ptr(nodeView(n))})
}

// Process reports whether a node's process matches.
func (f *Filter) Process(cluster, node string, p *v1.Process) (bool, error) {
	if f == nil {
		return true, nil
	}
	return f.eval(map[string]any{"process": ptr(processView(cluster, node, p))})
}

// Manifest reports whether a node's static pod manifest matches.
func (f *Filter) Manifest(cluster, node, mirror string, m *v1.StaticPodManifest) (bool, error) {
	if f == nil {
		return true, nil
	}
	return f.eval(map[string]any{"manifest": ptr(manifestView(cluster, node, mirror, m))})
}

// Certificate reports whether a node's certificate matches.
func (f *Filter) Certificate(cluster, node string, c *v1.Certificate) (bool, error) {
	if f == nil {
		return true, nil
	}
	return f.eval(map[string]any{"certificate": ptr(certificateView(cluster, node, c))})
}

// Finding reports whether a finding matches.
func (f *Filter) Finding(fi *v1.Finding) (bool, error) {
	if f == nil {
		return true, nil
	}
	return f.eval(map[string]any{"finding": ptr(findingView(fi))})
}

// pushDown takes the top-level conjuncts "component.<indexed> == literal"
// out of the expression. It returns them, and the rest as a checked
// expression (nil when nothing is left).
func pushDown(env *cel.Env, checked *cel.Ast) (map[string]string, *cel.Ast) {
	native := checked.NativeRep()
	var conj []ast.Expr
	var flatten func(e ast.Expr)
	flatten = func(e ast.Expr) {
		if e.Kind() == ast.CallKind && e.AsCall().FunctionName() == "_&&_" {
			for _, a := range e.AsCall().Args() {
				flatten(a)
			}
			return
		}
		conj = append(conj, e)
	}
	flatten(native.Expr())
	pushed := map[string]string{}
	var rest []string
	for _, e := range conj {
		if field, value, ok := indexedEquality(e); ok && (pushed[field] == "" || pushed[field] == value) {
			pushed[field] = value
			continue
		}
		s, err := parser.Unparse(e, native.SourceInfo())
		if err != nil {
			// Cannot be written back: evaluate the whole expression.
			return nil, checked
		}
		rest = append(rest, "("+s+")")
	}
	if len(pushed) == 0 {
		return nil, checked
	}
	if len(rest) == 0 {
		return pushed, nil
	}
	again, iss := env.Compile(strings.Join(rest, " && "))
	if iss.Err() != nil {
		return nil, checked
	}
	return pushed, again
}

// indexedEquality reads "component.<field> == 'value'" (either way round).
func indexedEquality(e ast.Expr) (field, value string, ok bool) {
	if e.Kind() != ast.CallKind || e.AsCall().FunctionName() != "_==_" || len(e.AsCall().Args()) != 2 {
		return "", "", false
	}
	a, b := e.AsCall().Args()[0], e.AsCall().Args()[1]
	if a.Kind() == ast.LiteralKind {
		a, b = b, a
	}
	if a.Kind() != ast.SelectKind || b.Kind() != ast.LiteralKind || a.AsSelect().IsTestOnly() {
		return "", "", false
	}
	op := a.AsSelect().Operand()
	if op.Kind() != ast.IdentKind || op.AsIdent() != "component" {
		return "", "", false
	}
	lit, isString := b.AsLiteral().Value().(string)
	if !isString {
		return "", "", false
	}
	for _, f := range Indexed {
		if a.AsSelect().FieldName() == f {
			return f, lit, true
		}
	}
	return "", "", false
}

func ptr[T any](v T) *T { return &v }
