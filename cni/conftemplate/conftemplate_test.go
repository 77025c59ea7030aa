package conftemplate

import (
	"strings"
	"testing"
	"text/template"
)

// What Execute runs renders as text/template renders it (the test may link text/template; berthd does not).
func TestExecuteMatchesTextTemplate(t *testing.T) {
	data := []Data{
		{PodCIDR: "10.244.1.0/24", PodCIDRRanges: []string{"10.244.1.0/24"}, Routes: []string{"0.0.0.0/0"}},
		{PodCIDR: "10.244.1.0/24", PodCIDRRanges: []string{"10.244.1.0/24", "fd00::/64"}, Routes: []string{"0.0.0.0/0", "::/0"}},
		{},
	}
	cases := map[string]string{
		"field":    `subnet {{.PodCIDR}} routes {{.Routes}}`,
		"dollar":   `{{$.PodCIDR}} {{$}}`,
		"if else":  `{{if .PodCIDR}}yes{{else}}no{{end}}`,
		"else if":  `{{if .Routes}}r{{else if .PodCIDR}}c{{else}}none{{end}}`,
		"with":     `{{with .PodCIDR}}[{{.}}]{{else}}none{{end}}`,
		"range":    `{{range .PodCIDRRanges}}<{{.}}>{{else}}empty{{end}}`,
		"range v":  `{{range $r := .Routes}}{{$r}};{{end}}`,
		"range iv": `{{range $i, $r := .PodCIDRRanges}}{{if $i}}, {{end}}{{$i}}={{$r}}{{end}}`,
		"var":      `{{$c := .PodCIDR}}{{range .Routes}}{{$c}}/{{.}} {{end}}{{$c}}`,
		"scope":    `{{range $i, $r := .Routes}}{{$x := $r}}{{$x}}{{end}}{{$x := "out"}}{{$x}}`,
		"consts":   `{{"s"}} {{true}} {{if false}}f{{end}}`,
		"trim":     "[\n  {{- range $i, $r := .PodCIDRRanges}}\n  {{- if $i}},{{end}}\n  {\"subnet\": \"{{$r}}\"}\n  {{- end}}\n]",
		"comment-free containerd": `{"ranges": [{{range $i, $range := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$range}}"}]{{end}}],
"routes": [{{range $i, $route := .Routes}}{{if $i}}, {{end}}{"dst": "{{$route}}"}{{end}}]}`,
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			ours, err := Parse(name, text)
			if err != nil {
				t.Fatal(err)
			}
			theirs := template.Must(template.New(name).Parse(text))
			for _, d := range data {
				got, err := ours.Execute(d)
				if err != nil {
					t.Fatalf("%+v: %v", d, err)
				}
				var want strings.Builder
				if err := theirs.Execute(&want, d); err != nil {
					t.Fatal(err)
				}
				if string(got) != want.String() {
					t.Errorf("%+v:\n got %q\nwant %q", d, got, want.String())
				}
			}
		})
	}
}

// What Execute does not run is refused at Parse, naming the place.
func TestParseRefuses(t *testing.T) {
	cases := map[string]struct{ text, want string }{
		"function":       {`{{len .Routes}}`, `function "len" not defined`},
		"printf":         {`{{printf "%s" .PodCIDR}}`, `function "printf" not defined`},
		"pipeline":       {`{{.PodCIDR | .Routes}}`, "t:1:2: .PodCIDR | .Routes: a pipeline is not supported"},
		"number":         {`{{1}}`, "this operand is not supported"},
		"unknown field":  {"\n{{.PodSubnet}}", "t:2:2: .PodSubnet: no such field (PodCIDR, PodCIDRRanges, Routes are)"},
		"nested field":   {`{{.PodCIDR.IP}}`, "no such field"},
		"dollar field":   {`{{$.Subnet}}`, "no such field"},
		"variable field": {`{{range $r := .Routes}}{{$r.X}}{{end}}`, "a field of a variable other than $ is not supported"},
		"define":         {`{{define "x"}}a{{end}}{{template "x"}}`, "not supported"},
		"template":       {`{{template "t"}}`, "not supported"},
		"assign":         {`{{$x := 1}}{{$x = .PodCIDR}}`, "not supported"},
		"break":          {`{{range .Routes}}{{break}}{{end}}`, "this action is not supported"},
		"syntax":         {`{{if .PodCIDR}}`, "unexpected EOF"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("t", tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) = %v, want %q", tc.text, err, tc.want)
			}
		})
	}
}
