// Package conftemplate runs CNI conf templates (cni.conf_template): Go template syntax over the node's pod CIDRs, as
// containerd's conf_template. Templates are parsed by text/template/parse and run here, not by text/template: its
// executor calls reflect's MethodByName, which makes the linker keep every exported method of every type in berthd
// (4.6 MB, a fifth of the executable and so of its memory). The data is three fields, and conf templates use a small
// part of the language: fields, variables, if/else, range and with, and string and boolean constants. Anything else
// (functions, pipelines, numbers, define/template, break/continue) is refused when the template is parsed, naming
// where it is, and so is a field Data does not have.
package conftemplate

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"text/template/parse"
)

// Data is what a template sees.
type Data struct {
	PodCIDR       string   // the first CIDR
	PodCIDRRanges []string // every CIDR (dual-stack: one per family)
	Routes        []string // "0.0.0.0/0" if a CIDR is IPv4, "::/0" if one is IPv6
}

// Template is a parsed conf template.
type Template struct{ tree *parse.Tree }

// Parse parses text, named name in errors, and checks that it uses only what Execute runs.
func Parse(name, text string) (*Template, error) {
	trees, err := parse.Parse(name, text, "", "") // no functions: a call fails here as "not defined"
	if err != nil {
		return nil, err
	}
	if len(trees) != 1 || trees[name] == nil {
		return nil, fmt.Errorf("%s: define and block are not supported", name)
	}
	t := &Template{tree: trees[name]}
	if err := t.check(t.tree.Root); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Template) unsupported(n parse.Node, what string) error {
	loc, context := t.tree.ErrorContext(n)
	return fmt.Errorf("%s: %s: %s is not supported (fields, variables, if, range and with are)", loc, context, what)
}

func (t *Template) check(n parse.Node) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := t.check(c); err != nil {
				return err
			}
		}
		return nil
	case *parse.TextNode:
		return nil
	case *parse.ActionNode:
		return t.checkPipe(n.Pipe, 1)
	case *parse.IfNode:
		return t.checkBranch(&n.BranchNode, 0)
	case *parse.WithNode:
		return t.checkBranch(&n.BranchNode, 0)
	case *parse.RangeNode:
		return t.checkBranch(&n.BranchNode, 2)
	}
	return t.unsupported(n, "this action")
}

func (t *Template) checkBranch(b *parse.BranchNode, maxDecl int) error {
	if len(b.Pipe.Decl) > maxDecl {
		return t.unsupported(b.Pipe, "declaring variables here")
	}
	if err := t.checkPipe(b.Pipe, maxDecl); err != nil {
		return err
	}
	if err := t.check(b.List); err != nil {
		return err
	}
	return t.check(b.ElseList)
}

// checkPipe allows one command of one argument, with at most maxDecl declared variables.
func (t *Template) checkPipe(p *parse.PipeNode, maxDecl int) error {
	switch {
	case len(p.Decl) > maxDecl || p.IsAssign:
		return t.unsupported(p, "assigning variables here")
	case len(p.Cmds) != 1:
		return t.unsupported(p, "a pipeline")
	case len(p.Cmds[0].Args) != 1:
		return t.unsupported(p, "a call")
	}
	switch a := p.Cmds[0].Args[0].(type) {
	case *parse.DotNode, *parse.StringNode, *parse.BoolNode:
		return nil
	case *parse.FieldNode:
		return t.checkField(a, a.Ident)
	case *parse.VariableNode:
		if len(a.Ident) == 1 {
			return nil
		}
		if a.Ident[0] != "$" {
			return t.unsupported(a, "a field of a variable other than $")
		}
		return t.checkField(a, a.Ident[1:])
	}
	return t.unsupported(p, "this operand")
}

// checkField refuses, at parse time, what can never be a field: a typo shows at load, not at the first CIDR.
func (t *Template) checkField(n parse.Node, idents []string) error {
	if len(idents) != 1 || !slices.Contains(fields, idents[0]) {
		loc, context := t.tree.ErrorContext(n)
		return fmt.Errorf("%s: %s: no such field (%s are)", loc, context, strings.Join(fields, ", "))
	}
	return nil
}

// fields are Data's.
var fields = []string{"PodCIDR", "PodCIDRRanges", "Routes"}

// Execute renders the template for d.
func (t *Template) Execute(d Data) ([]byte, error) {
	s := &state{t: t, vars: []variable{{"$", d}}}
	var b bytes.Buffer
	if err := s.walk(&b, d, t.tree.Root); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type variable struct {
	name  string
	value any
}

type state struct {
	t    *Template
	vars []variable // innermost last
}

func (s *state) walk(b *bytes.Buffer, dot any, n parse.Node) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := s.walk(b, dot, c); err != nil {
				return err
			}
		}
	case *parse.TextNode:
		b.Write(n.Text)
	case *parse.ActionNode:
		v, err := s.eval(dot, n.Pipe)
		if err != nil {
			return err
		}
		if len(n.Pipe.Decl) == 1 {
			s.vars = append(s.vars, variable{n.Pipe.Decl[0].Ident[0], v})
			return nil
		}
		fmt.Fprint(b, v)
	case *parse.IfNode:
		return s.branch(b, dot, &n.BranchNode, false)
	case *parse.WithNode:
		return s.branch(b, dot, &n.BranchNode, true)
	case *parse.RangeNode:
		return s.rangeOver(b, dot, n)
	}
	return nil
}

// branch runs an if (the dot stays) or a with (the value becomes the dot); variables set inside end with it.
func (s *state) branch(b *bytes.Buffer, dot any, n *parse.BranchNode, with bool) error {
	v, err := s.eval(dot, n.Pipe)
	if err != nil {
		return err
	}
	defer s.pop(len(s.vars))
	if !truth(v) {
		return s.walk(b, dot, n.ElseList)
	}
	if with {
		dot = v
	}
	return s.walk(b, dot, n.List)
}

func (s *state) rangeOver(b *bytes.Buffer, dot any, n *parse.RangeNode) error {
	v, err := s.eval(dot, n.Pipe)
	if err != nil {
		return err
	}
	items, ok := v.([]string)
	if !ok {
		loc, _ := s.t.tree.ErrorContext(n)
		return fmt.Errorf("%s: range over %T, not a list", loc, v)
	}
	defer s.pop(len(s.vars))
	if len(items) == 0 {
		return s.walk(b, dot, n.ElseList)
	}
	mark := len(s.vars)
	for i, item := range items {
		s.pop(mark)
		switch d := n.Pipe.Decl; len(d) {
		case 1:
			s.vars = append(s.vars, variable{d[0].Ident[0], item})
		case 2:
			s.vars = append(s.vars, variable{d[0].Ident[0], i}, variable{d[1].Ident[0], item})
		}
		if err := s.walk(b, item, n.List); err != nil {
			return err
		}
	}
	return nil
}

func (s *state) pop(mark int) { s.vars = s.vars[:mark] }

// eval evaluates a pipeline that check allowed: one operand.
func (s *state) eval(dot any, p *parse.PipeNode) (any, error) {
	switch a := p.Cmds[0].Args[0].(type) {
	case *parse.FieldNode:
		return s.field(dot, a, a.Ident)
	case *parse.VariableNode:
		v, err := s.variable(a)
		if err != nil || len(a.Ident) == 1 {
			return v, err
		}
		return s.field(v, a, a.Ident[1:])
	case *parse.DotNode:
		return dot, nil
	case *parse.StringNode:
		return a.Text, nil
	case *parse.BoolNode:
		return a.True, nil
	}
	return nil, nil // check refused everything else
}

func (s *state) variable(n *parse.VariableNode) (any, error) {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == n.Ident[0] {
			return s.vars[i].value, nil
		}
	}
	loc, _ := s.t.tree.ErrorContext(n)
	return nil, fmt.Errorf("%s: undefined variable %s", loc, n.Ident[0])
}

// field reads the fields of Data; the other values (strings, lists, indexes) have none.
func (s *state) field(v any, n parse.Node, idents []string) (any, error) {
	d, ok := v.(Data)
	if !ok || len(idents) != 1 {
		loc, _ := s.t.tree.ErrorContext(n)
		return nil, fmt.Errorf("%s: %T has no field %s", loc, v, strings.Join(idents, "."))
	}
	switch idents[0] {
	case "PodCIDR":
		return d.PodCIDR, nil
	case "PodCIDRRanges":
		return d.PodCIDRRanges, nil
	case "Routes":
		return d.Routes, nil
	}
	return nil, nil // checkField refused every other name
}

// truth is text/template's: the zero value and empty lists are false.
func truth(v any) bool {
	switch v := v.(type) {
	case string:
		return v != ""
	case []string:
		return len(v) > 0
	case int:
		return v != 0
	case bool:
		return v
	}
	return v != nil
}
