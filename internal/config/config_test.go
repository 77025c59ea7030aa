package config

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berthcri/berth/internal/errdefs"
)

// writeFiles creates dir/name for each entry and returns dir.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDefault(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	dir := t.TempDir()
	got, err := Load(filepath.Join(dir, "missing.toml"), filepath.Join(dir, "missing.d"))
	if err != nil {
		t.Fatalf("Load without files: %v", err)
	}
	if !reflect.DeepEqual(got, d) {
		t.Fatalf("Load without files = %+v, want Default() %+v", got, d)
	}
	checks := map[string]struct{ got, want any }{
		"root_dir":                          {d.RootDir, "/var/lib/berth"},
		"state_dir":                         {d.StateDir, "/run/berth"},
		"listen":                            {d.Listen, "/run/berth/berth.sock"},
		"cgroup_driver":                     {d.CgroupDriver, "auto"},
		"userns_group":                      {d.UsernsGroup, "berth-userns"},
		"min_oom_score_adj":                 {d.MinOOMScoreAdj, -1000},
		"sandbox_image":                     {d.SandboxImage, "registry.k8s.io/pause:3.10.1"},
		"shutdown_timeout":                  {d.ShutdownTimeout.Duration, 10 * time.Second},
		"sync_writable_layers":              {d.SyncWritableLayers, false},
		"log.level":                         {d.Log.Level, "info"},
		"log.format":                        {d.Log.Format, "text"},
		"cni.conf_dir":                      {d.CNI.ConfDir, "/etc/cni/net.d"},
		"cni.bin_dirs":                      {d.CNI.BinDirs, []string{"/opt/cni/bin"}},
		"cni.setup_timeout":                 {d.CNI.SetupTimeout.Duration, 2 * time.Minute},
		"registry.max_concurrent_downloads": {d.Registry.MaxConcurrentDownloads, 3},
		"registry.pull_progress_timeout":    {d.Registry.PullProgressTimeout.Duration, 5 * time.Minute},
		"registry.max_manifest_size":        {d.Registry.MaxManifestSize, Size(4 << 20)},
		"registry.max_config_size":          {d.Registry.MaxConfigSize, Size(8 << 20)},
		"registry.max_unpacked_size":        {d.Registry.MaxUnpackedSize, Size(64 << 30)},
		"stream.address":                    {d.Stream.Address, "127.0.0.1"},
		"stream.port":                       {d.Stream.Port, 0},
		"metrics.address":                   {d.Metrics.Address, ""},
		"metrics.pprof":                     {d.Metrics.Pprof, false},
		"cdi.enabled":                       {d.CDI.Enabled, true},
		"cdi.spec_dirs":                     {d.CDI.SpecDirs, []string{"/etc/cdi", "/var/run/cdi"}},
		"nri.enable":                        {d.NRI.Enable, false},
		"nri.socket_path":                   {d.NRI.SocketPath, "/var/run/nri/nri.sock"},
		"nri.plugin_path":                   {d.NRI.PluginPath, "/opt/nri/plugins"},
		"nri.plugin_config_path":            {d.NRI.PluginConfigPath, "/etc/nri/conf.d"},
		"nri.registration_timeout":          {d.NRI.RegistrationTimeout.Duration, 5 * time.Second},
		"nri.request_timeout":               {d.NRI.RequestTimeout.Duration, 2 * time.Second},
	}
	for key, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("default %s = %v, want %v", key, c.got, c.want)
		}
	}
}

func TestLoadDropInOrder(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"berth.toml": `
root_dir = "/srv/berth"
pinned_images = ["a", "b"]
[log]
level = "warn"
[registry.hosts."registry.k8s.io"]
mirrors = ["https://m1.example", "https://m2.example"]
username = "u"
password = "p"
[registry.hosts."docker.io"]
mirrors = ["https://hub.example"]
`,
		"berth.d/20-b.toml": `
root_dir = "/data/berth"
pinned_images = ["c"]
[registry.hosts."registry.k8s.io"]
plain_http = true
`,
		"berth.d/10-a.toml": `
state_dir = "/run/b"
[log]
level = "debug"
format = "json"
[registry.hosts."localhost:5000"]
plain_http = true
`,
		"berth.d/30-ignored.conf": `not toml at all`,
	})
	got, err := Load(filepath.Join(dir, "berth.toml"), filepath.Join(dir, "berth.d"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.RootDir = "/data/berth"      // 20-b.toml over the main file
	want.StateDir = "/run/b"          // only in 10-a.toml
	want.PinnedImages = []string{"c"} // arrays are replaced, not appended to
	want.Log = LogConfig{"debug", "json"}
	want.Registry.Hosts = map[string]RegistryHost{
		"registry.k8s.io": {PlainHTTP: true}, // a later table replaces the host's whole entry
		"docker.io":       {Mirrors: []string{"https://hub.example"}},
		"localhost:5000":  {PlainHTTP: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load =\n%+v\nwant\n%+v", got, want)
	}
}

// TestLoadErrors checks that every rejected file names the file (when one set the key), the key and the reason.
func TestLoadErrors(t *testing.T) {
	auth := base64.StdEncoding.EncodeToString([]byte("user:pass"))
	cases := map[string]struct {
		main   string
		dropIn string // written as berth.d/50-x.toml
		want   []string
	}{
		"unknown top-level key": {dropIn: `root_dri = "/x"`, want: []string{"50-x.toml: root_dri: unknown key"}},
		"unknown key in table":  {dropIn: "[log]\nlevl = \"debug\"", want: []string{"50-x.toml: log.levl: unknown key"}},
		"unknown table":         {dropIn: "[foo]\nbar = 1\nbaz = 2", want: []string{"50-x.toml: foo: unknown key"}},
		"unknown host key": {dropIn: "[registry.hosts.\"r.io\"]\nmirror = [\"https://m\"]",
			want: []string{`50-x.toml: registry.hosts."r.io".mirror: unknown key`}},
		"syntax error":       {main: "root_dir = ", want: []string{"berth.toml", "root_dir", "line 1"}},
		"wrong type":         {main: "root_dir = 5", want: []string{"berth.toml", "root_dir", "incompatible types"}},
		"bad duration":       {dropIn: `shutdown_timeout = "soon"`, want: []string{"50-x.toml: shutdown_timeout", `invalid duration "soon"`}},
		"unitless duration":  {dropIn: `shutdown_timeout = 10`, want: []string{"50-x.toml: shutdown_timeout", `invalid duration "10"`}},
		"relative root_dir":  {main: `root_dir = "var/lib/berth"`, want: []string{"berth.toml: root_dir:", "not an absolute path"}},
		"relative state_dir": {dropIn: `state_dir = "run"`, want: []string{"50-x.toml: state_dir:", "not an absolute path"}},
		"relative listen":    {dropIn: `listen = "berth.sock"`, want: []string{"listen:", "not an absolute path"}},
		"long listen": {dropIn: `listen = "/` + strings.Repeat("x", 120) + `"`,
			want: []string{"listen:", "unix socket path"}},
		"cgroup driver":         {dropIn: `cgroup_driver = "cgroupv2"`, want: []string{"cgroup_driver:", `"cgroupv2" is not one of auto, cgroupfs, systemd`}},
		"userns group":          {dropIn: `userns_group = "a:b"`, want: []string{"userns_group:", `"a:b" is not a group name`}},
		"oom too low":           {dropIn: `min_oom_score_adj = -1001`, want: []string{"min_oom_score_adj:", "-1001 is outside -1000..1000"}},
		"oom too high":          {dropIn: `min_oom_score_adj = 1001`, want: []string{"min_oom_score_adj:", "outside"}},
		"empty sandbox":         {dropIn: `sandbox_image = ""`, want: []string{"sandbox_image: empty"}},
		"empty pinned":          {dropIn: `pinned_images = ["a", ""]`, want: []string{"pinned_images[1]: empty"}},
		"zero shutdown":         {dropIn: `shutdown_timeout = "0s"`, want: []string{"shutdown_timeout:", "not > 0"}},
		"log level":             {dropIn: "[log]\nlevel = \"trace\"", want: []string{"50-x.toml: log.level:", `"trace" is not one of`}},
		"log format":            {dropIn: "[log]\nformat = \"xml\"", want: []string{"log.format:", `"xml"`}},
		"cni conf_dir":          {dropIn: "[cni]\nconf_dir = \"net.d\"", want: []string{"cni.conf_dir:", "not an absolute path"}},
		"cni no bin_dirs":       {dropIn: "[cni]\nbin_dirs = []", want: []string{"cni.bin_dirs: empty"}},
		"cni bin_dir":           {dropIn: "[cni]\nbin_dirs = [\"/opt/cni/bin\", \"bin\"]", want: []string{"cni.bin_dirs[1]:", `"bin" is not an absolute path`}},
		"cni timeout":           {dropIn: "[cni]\nsetup_timeout = \"-1m\"", want: []string{"cni.setup_timeout:", "-1m0s is not > 0"}},
		"cni template relative": {dropIn: "[cni]\nconf_template = \"net.tmpl\"", want: []string{"cni.conf_template:", "not an absolute path"}},
		"cni template missing": {dropIn: "[cni]\nconf_template = \"/nonexistent/net.tmpl\"",
			want: []string{"cni.conf_template:", "not readable"}},
		"cni template syntax": {dropIn: "[cni]\nconf_template = \"@bad.tmpl\"", want: []string{"cni.conf_template:", "unclosed action"}},
		"cni template function": {dropIn: "[cni]\nconf_template = \"@func.tmpl\"",
			want: []string{"cni.conf_template:", `function "printf" not defined`}},
		"downloads":      {dropIn: "[registry]\nmax_concurrent_downloads = 0", want: []string{"registry.max_concurrent_downloads:", "0 is not >= 1"}},
		"pull progress":  {dropIn: "[registry]\npull_progress_timeout = \"0s\"", want: []string{"registry.pull_progress_timeout:", "not > 0"}},
		"bad size":       {dropIn: "[registry]\nmax_manifest_size = \"4MB\"", want: []string{"50-x.toml: registry.max_manifest_size", `invalid size "4MB"`}},
		"negative size":  {dropIn: "[registry]\nmax_config_size = -1", want: []string{"registry.max_config_size", `invalid size "-1"`}},
		"size overflows": {dropIn: "[registry]\nmax_unpacked_size = \"9000000TiB\"", want: []string{"registry.max_unpacked_size", "invalid size"}},
		"manifest cap too small": {dropIn: "[registry]\nmax_manifest_size = \"1KiB\"",
			want: []string{"50-x.toml: registry.max_manifest_size: 1KiB is less than 4KiB"}},
		"config cap too small": {dropIn: "[registry]\nmax_config_size = 100", want: []string{"registry.max_config_size: 100B is less than 4KiB"}},
		"unpacked cap too small": {dropIn: "[registry]\nmax_unpacked_size = \"64KiB\"",
			want: []string{"registry.max_unpacked_size: 64KiB is less than 1MiB"}},
		"mirror scheme": {dropIn: "[registry.hosts.\"registry.k8s.io\"]\nmirrors = [\"ftp://m.example\"]",
			want: []string{`50-x.toml: registry.hosts."registry.k8s.io".mirrors[0]:`, "scheme must be http or https"}},
		"mirror without scheme": {dropIn: "[registry.hosts.\"r.io\"]\nmirrors = [\"https://ok.example\", \"m.example\"]",
			want: []string{`registry.hosts."r.io".mirrors[1]:`, "scheme"}},
		"mirror without host": {dropIn: "[registry.hosts.\"r.io\"]\nmirrors = [\"https:///v2\"]",
			want: []string{`registry.hosts."r.io".mirrors[0]:`, "no host"}},
		"mirrors_only alone": {dropIn: "[registry.hosts.\"r.io\"]\nmirrors_only = true",
			want: []string{`registry.hosts."r.io".mirrors_only: set without mirrors`}},
		"bad host key": {dropIn: "[registry.hosts.\"https://r.io\"]\nplain_http = true",
			want: []string{`registry.hosts."https://r.io": a registry host is host[:port], not a URL`}},
		"bad host name": {dropIn: "[registry.hosts.\"r_io\"]\nplain_http = true",
			want: []string{`registry.hosts.r_io: DNS label "r_io" is invalid (want host[:port] or "_default")`}},
		"client_key alone": {dropIn: "[registry.hosts.\"r.io\"]\nclient_key = \"/etc/hostname\"",
			want: []string{`registry.hosts."r.io".client_key: set without client_cert`}},
		"client_cert missing": {dropIn: "[registry.hosts.\"r.io\"]\nclient_cert = \"/nonexistent/c.pem\"",
			want: []string{`registry.hosts."r.io".client_cert: not readable`}},
		"plain_http with TLS": {dropIn: "[registry.hosts.\"r.io\"]\nplain_http = true\nskip_verify = true",
			want: []string{`registry.hosts."r.io".plain_http: set together with skip_verify or client_cert`}},
		"mirror with a query": {dropIn: "[registry.hosts.\"r.io\"]\nmirrors = [\"https://m.example/p?x=1\"]",
			want: []string{`registry.hosts."r.io".mirrors[0]:`, "only scheme, host[:port] and path"}},
		"config_path relative": {dropIn: "[registry]\nconfig_path = \"certs.d\"",
			want: []string{`registry.config_path[0]: "certs.d" is not an absolute path`}},
		"config_path list": {dropIn: "[registry]\nconfig_path = \"/etc/containerd/certs.d:docker\"",
			want: []string{`registry.config_path[1]: "docker" is not an absolute path`}},
		"docker_config missing": {dropIn: "[registry]\ndocker_config = \"/nonexistent/config.json\"",
			want: []string{`registry.docker_config: not readable`}},
		"bad host port": {dropIn: "[registry.hosts.\"r.io:99999\"]\nplain_http = true",
			want: []string{`registry.hosts."r.io:99999":`, "port"}},
		"ca_file missing": {dropIn: "[registry.hosts.\"r.io\"]\nca_file = \"/nonexistent/ca.pem\"",
			want: []string{`registry.hosts."r.io".ca_file: not readable`}},
		"auth not base64": {dropIn: "[registry.hosts.\"r.io\"]\nauth = \"%%%\"",
			want: []string{`registry.hosts."r.io".auth:`, "base64"}},
		"auth without colon": {dropIn: "[registry.hosts.\"r.io\"]\nauth = \"" + base64.StdEncoding.EncodeToString([]byte("user")) + "\"",
			want: []string{`registry.hosts."r.io".auth:`, `"user:password"`}},
		"auth and username": {dropIn: "[registry.hosts.\"r.io\"]\nauth = \"" + auth + "\"\nusername = \"u\"",
			want: []string{`registry.hosts."r.io".auth: set together with username`}},
		"password alone": {dropIn: "[registry.hosts.\"r.io\"]\npassword = \"p\"",
			want: []string{`registry.hosts."r.io".password: set without username`}},
		"stream address": {dropIn: "[stream]\naddress = \"not an address\"", want: []string{"stream.address:", "invalid"}},
		"stream port":    {dropIn: "[stream]\nport = 70000", want: []string{"stream.port:", "70000 is outside 0..65535"}},
		"cert only":      {dropIn: "[stream]\ntls_cert = \"/etc/hostname\"", want: []string{"50-x.toml: stream.tls_cert: set without stream.tls_key"}},
		"key only":       {dropIn: "[stream]\ntls_key = \"/etc/hostname\"", want: []string{"stream.tls_key: set without stream.tls_cert"}},
		"key unreadable": {dropIn: "[stream]\ntls_cert = \"/etc/hostname\"\ntls_key = \"/nonexistent/key.pem\"",
			want: []string{"stream.tls_key: not readable"}},
		"metrics no port":  {dropIn: "[metrics]\naddress = \"127.0.0.1\"", want: []string{"metrics.address:", "want host:port"}},
		"metrics bad port": {dropIn: "[metrics]\naddress = \"127.0.0.1:http\"", want: []string{"metrics.address:", `port "http"`}},
		"pprof alone":      {dropIn: "[metrics]\npprof = true", want: []string{"metrics.pprof: set without metrics.address"}},
		"cdi relative dir": {dropIn: "[cdi]\nspec_dirs = [\"/etc/cdi\", \"cdi\"]", want: []string{"50-x.toml: cdi.spec_dirs[1]:", `"cdi" is not an absolute path`}},
		"cdi duplicate dir": {dropIn: "[cdi]\nspec_dirs = [\"/etc/cdi\", \"/var/run/cdi\", \"/etc/cdi/\"]",
			want: []string{"cdi.spec_dirs[2]:", `"/etc/cdi/" is already spec_dirs[0]`}},
		"cdi no dirs":           {dropIn: "[cdi]\nspec_dirs = []", want: []string{"cdi.spec_dirs: empty; set cdi.enabled = false"}},
		"cdi off still checked": {dropIn: "[cdi]\nenabled = false\nspec_dirs = [\"rel\"]", want: []string{"cdi.spec_dirs[0]:", "not an absolute path"}},
		"nri relative socket":   {dropIn: "[nri]\nsocket_path = \"nri.sock\"", want: []string{"nri.socket_path:", "not an absolute path"}},
		"nri long socket": {dropIn: "[nri]\nsocket_path = \"/" + strings.Repeat("s", 110) + "\"",
			want: []string{"nri.socket_path:", "longer than 107 bytes"}},
		"nri relative plugins": {dropIn: "[nri]\nplugin_path = \"plugins\"", want: []string{"nri.plugin_path:", "not an absolute path"}},
		"nri relative config":  {dropIn: "[nri]\nplugin_config_path = \"conf.d\"", want: []string{"nri.plugin_config_path:", "not an absolute path"}},
		"nri zero request":     {dropIn: "[nri]\nrequest_timeout = \"0s\"", want: []string{"nri.request_timeout:", "outside (0, 5m0s]"}},
		"nri long registration": {dropIn: "[nri]\nregistration_timeout = \"1h\"",
			want: []string{"nri.registration_timeout:", "1h0m0s is outside (0, 5m0s]"}},
		"every failure reported": {dropIn: "root_dir = \"a\"\n[log]\nlevel = \"x\"",
			want: []string{"root_dir:", "log.level:"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			files := map[string]string{"berth.toml": tc.main, "bad.tmpl": "{{.PodCIDR", "func.tmpl": `{{printf "%s" .PodCIDR}}`}
			dir := writeFiles(t, files)
			if tc.dropIn != "" { // "@name" is a file in dir
				os.Mkdir(filepath.Join(dir, "berth.d"), 0o755)
				if err := os.WriteFile(filepath.Join(dir, "berth.d", "50-x.toml"), []byte(strings.ReplaceAll(tc.dropIn, "@", dir+"/")), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(filepath.Join(dir, "berth.toml"), filepath.Join(dir, "berth.d"))
			if err == nil {
				t.Fatalf("Load succeeded, want an error mentioning %q", tc.want)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %q does not wrap ErrInvalidArgument", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestValidAccepted(t *testing.T) {
	auth := base64.StdEncoding.EncodeToString([]byte("user:pass"))
	dir := writeFiles(t, map[string]string{"berth.toml": `
[registry.hosts."localhost:5000"]
plain_http = true
[registry.hosts."[::1]:5000"]
mirrors = ["http://127.0.0.1:5001/prefix"]
mirrors_only = true
[registry.hosts."r.io"]
auth = "` + auth + `"
identity_token = "t"
ca_file = "/etc/hostname"
[stream]
address = "::1"
port = 10010
[metrics]
address = ":9090"
pprof = true
[cdi]
enabled = false
spec_dirs = []
[nri]
enable = true
socket_path = "/run/berth-test/nri.sock"
request_timeout = "10s"
`})
	if _, err := Load(filepath.Join(dir, "berth.toml"), ""); err != nil {
		t.Fatal(err)
	}
}

func TestTOMLRoundTrip(t *testing.T) {
	full := Default()
	full.RootDir = "/srv/berth"
	full.CgroupDriver = "cgroupfs"
	full.MinOOMScoreAdj = -998
	full.PinnedImages = []string{"registry.k8s.io/pause:3.10.1", "busybox"}
	full.ShutdownTimeout = Duration{90 * time.Second}
	full.Log = LogConfig{Level: "debug", Format: "json"}
	full.CNI.BinDirs = []string{"/opt/cni/bin", "/usr/lib/cni"}
	full.CNI.SetupTimeout = Duration{time.Hour + 30*time.Minute}
	full.Registry.MaxConcurrentDownloads = 5
	full.Registry.MaxManifestSize = 1536 << 10
	full.Registry.MaxConfigSize = 10_000_000
	full.Registry.MaxUnpackedSize = 2 << 40
	full.Registry.Hosts = map[string]RegistryHost{
		"registry.k8s.io": {Mirrors: []string{"https://m.example/v2"}, MirrorsOnly: true, CAFile: "/etc/hostname",
			Username: "u", Password: `p"w\`},
		"localhost:5000": {PlainHTTP: true, IdentityToken: "tok"},
	}
	full.Stream = StreamConfig{Address: "0.0.0.0", Port: 10010, TLSCert: "/etc/hostname", TLSKey: "/etc/hostname"}
	full.Metrics = MetricsConfig{Address: "127.0.0.1:9090", Pprof: true}
	full.CDI = CDIConfig{Enabled: false, SpecDirs: []string{"/opt/cdi"}}

	for name, c := range map[string]Config{"default": Default(), "every key set": full} {
		t.Run(name, func(t *testing.T) {
			b, err := c.TOML()
			if err != nil {
				t.Fatal(err)
			}
			dir := writeFiles(t, map[string]string{"berth.toml": string(b)})
			got, err := Load(filepath.Join(dir, "berth.toml"), "")
			if err != nil {
				t.Fatalf("Load(TOML()) = %v\n%s", err, b)
			}
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("round trip changed the config:\n got %+v\nwant %+v\nTOML:\n%s", got, c, b)
			}
		})
	}
}

func TestDurationText(t *testing.T) {
	for in, want := range map[time.Duration]string{
		10 * time.Second:                   "10s",
		2 * time.Minute:                    "2m",
		time.Hour:                          "1h",
		time.Hour + 30*time.Minute:         "1h30m",
		time.Hour + 30*time.Second:         "1h0m30s",
		1500 * time.Millisecond:            "1.5s",
		time.Minute + 500*time.Millisecond: "1m0.5s",
	} {
		b, _ := Duration{in}.MarshalText()
		if string(b) != want {
			t.Errorf("MarshalText(%v) = %q, want %q", in, b, want)
		}
		var d Duration
		if err := d.UnmarshalText(b); err != nil || d.Duration != in {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", b, d.Duration, err, in)
		}
	}
}

func TestSizeText(t *testing.T) {
	for in, want := range map[string]Size{
		"4MiB": 4 << 20, "64GiB": 64 << 30, "2TiB": 2 << 40, "1536KiB": 1536 << 10, "100B": 100, "100": 100,
		" 8 MiB ": 8 << 20, "0": 0,
	} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err != nil || s != want {
			t.Errorf("UnmarshalText(%q) = %d, %v; want %d", in, s, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "4MB", "4 mib", "1.5GiB", "-1", "0x10", "8589934592GiB"} {
		var s Size
		if err := s.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) = %d, want an error", bad, s)
		}
	}
	for in, want := range map[Size]string{4 << 20: "4MiB", 1536 << 10: "1536KiB", 100: "100B", 0: "0B", 1<<30 + 1: "1073741825B"} {
		if b, _ := in.MarshalText(); string(b) != want {
			t.Errorf("MarshalText(%d) = %q, want %q", in, b, want)
		}
	}
}

func TestRedacted(t *testing.T) {
	c := Default()
	c.Registry.Hosts = map[string]RegistryHost{"r.example.com": {Username: "u", Password: "secret", IdentityToken: "tok"}}
	r := c.Redacted()
	if h := r.Registry.Hosts["r.example.com"]; h.Password != "<redacted>" || h.IdentityToken != "<redacted>" || h.Username != "u" || h.Auth != "" {
		t.Errorf("redacted host = %+v", h)
	}
	if c.Registry.Hosts["r.example.com"].Password != "secret" {
		t.Error("Redacted changed the original")
	}
}

func TestJSONUsesFileKeys(t *testing.T) {
	c := Default()
	c.Registry.Hosts = map[string]RegistryHost{"r.example.com": {Username: "u", Password: "<redacted>"}}
	b, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	cni, _ := m["cni"].(map[string]any)
	hosts, _ := m["registry"].(map[string]any)["hosts"].(map[string]any)
	if m["root_dir"] != c.RootDir || m["shutdown_timeout"] != "10s" || cni["conf_dir"] != c.CNI.ConfDir || hosts["r.example.com"] == nil {
		t.Errorf("config JSON = %s", b)
	}
	if _, goName := m["RootDir"]; goName {
		t.Errorf("config JSON has Go field names: %s", b)
	}
}
