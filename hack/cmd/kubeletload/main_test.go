package main

import "testing"

func TestParseStat(t *testing.T) {
	tests := map[string]struct {
		line    string
		want    procStat
		wantErr bool
	}{
		"plain": {line: "42 (berthd) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 12 0 100 0 0",
			want: procStat{comm: "berthd", ppid: 1, cpu: 300, children: 10}},
		// comm may hold spaces and parentheses: the fields start after the last ')'
		"odd comm": {line: "7 (a) b (c)) R 6 7 7 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 0 0 0",
			want: procStat{comm: "a) b (c)", ppid: 6, cpu: 3, children: 7}},
		"no comm":    {line: "7 a R 6", wantErr: true},
		"truncated":  {line: "7 (a) R 6 7 7 0 -1 0 0 0 0 0 1", wantErr: true},
		"empty line": {line: "", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseStat(tc.line)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseStat(%q) error = %v, want error %v", tc.line, err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("parseStat(%q) = %+v, want %+v", tc.line, got, tc.want)
			}
		})
	}
}
