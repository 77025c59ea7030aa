// Package config loads berthd's TOML configuration: defaults, then the main file, then drop-ins in lexical order.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/berthcri/berth/internal/errdefs"
)

// Default locations of the main file and the drop-in directory.
const (
	DefaultFile      = "/etc/berth/berth.toml"
	DefaultDropInDir = "/etc/berth/berth.d"
)

// Config is berthd's configuration. README-config.md documents every key.
type Config struct {
	RootDir      string `toml:"root_dir"`      // persistent state: images, snapshots, records
	StateDir     string `toml:"state_dir"`     // runtime state that a reboot may drop: monitors, sockets
	Listen       string `toml:"listen"`        // path of the CRI unix socket
	CgroupDriver string `toml:"cgroup_driver"` // auto, cgroupfs or systemd
	// UsernsGroup names the host group that may traverse berth's shared dirs (state_dir, its pods dir) on the way to
	// a user-namespaced pod's files: the pod's root is no one on the host. Empty, or a group the host lacks, keeps
	// those dirs 0700 and user namespaces off.
	UsernsGroup string `toml:"userns_group"`
	// MinOOMScoreAdj is the lowest oom_score_adj berth will ever request; lower requests are raised to it.
	// Default -1000, range -1000..1000. The config stays pure: the runtime applies the clamp, raising the floor at
	// start-up to berthd's own /proc/self/oom_score_adj when it lacks CAP_SYS_RESOURCE.
	MinOOMScoreAdj  int      `toml:"min_oom_score_adj"`
	SandboxImage    string   `toml:"sandbox_image"`
	PinnedImages    []string `toml:"pinned_images"`    // never removed by image GC or RemoveImage
	ShutdownTimeout Duration `toml:"shutdown_timeout"` // how long a stop waits for in-flight requests
	// SyncWritableLayers mounts containers' writable layers without overlayfs's volatile option. See README.
	SyncWritableLayers bool `toml:"sync_writable_layers"`

	Log      LogConfig      `toml:"log"`
	CNI      CNIConfig      `toml:"cni"`
	Registry RegistryConfig `toml:"registry"`
	Stream   StreamConfig   `toml:"stream"`
	Metrics  MetricsConfig  `toml:"metrics"`
	CDI      CDIConfig      `toml:"cdi"`
	// Runtimes are the RuntimeClass handlers besides "" and "runc" (libcontainer, in berth-monitor), keyed by
	// handler name as in [runtimes.crun]. A handler table in a later file replaces that handler's whole entry.
	Runtimes map[string]RuntimeConfig `toml:"runtimes"`
	NRI      NRIConfig                `toml:"nri"`
}

type LogConfig struct {
	Level  string `toml:"level"`  // debug, info, warn or error
	Format string `toml:"format"` // text or json
}

type CNIConfig struct {
	ConfDir      string   `toml:"conf_dir"`
	BinDirs      []string `toml:"bin_dirs"`
	SetupTimeout Duration `toml:"setup_timeout"` // bound on one ADD or DEL of a pod network
	// ConfTemplate is a template file (Go template syntax, cni/conftemplate) rendered into conf_dir when the kubelet hands down the node's pod CIDR
	// (containerd's conf_template: .PodCIDR, .PodCIDRRanges, .Routes); "" for none.
	ConfTemplate string `toml:"conf_template"`
}

type RegistryConfig struct {
	MaxConcurrentDownloads int `toml:"max_concurrent_downloads"` // layers fetched at once per pull
	// PullProgressTimeout cancels a pull that received no bytes for this long.
	PullProgressTimeout Duration `toml:"pull_progress_timeout"`
	// Caps against hostile images, checked before anything is buffered or written (see Default for the values).
	MaxManifestSize Size `toml:"max_manifest_size"` // one manifest or index
	MaxConfigSize   Size `toml:"max_config_size"`   // the image config
	MaxUnpackedSize Size `toml:"max_unpacked_size"` // all a pull unpacks: its layers' tar streams and sparse holes
	// ConfigPath is a containerd-style certs.d directory (<dir>/<host>/hosts.toml, or docker's *.crt, *.cert and
	// *.key files), or a colon-separated list of them (the first that has a host wins), read at start and on SIGHUP;
	// empty reads none. A host may be configured here or in Hosts, not both.
	ConfigPath string `toml:"config_path"`
	// DockerConfig is a docker config.json whose auths, credHelpers and credsStore are the credentials of hosts
	// that a pull's own credential does not cover; empty uses none.
	DockerConfig string `toml:"docker_config"`
	// Hosts is keyed by registry host[:port], as in [registry.hosts."registry.k8s.io"], or "_default" for every
	// host without an entry. A host table in a later file replaces that host's whole entry; other hosts are kept.
	Hosts map[string]RegistryHost `toml:"hosts"`
}

// DefaultHost is the Hosts key (and the certs.d dir name) whose entry serves every host without its own.
const DefaultHost = "_default"

type RegistryHost struct {
	Mirrors     []string `toml:"mirrors,omitempty"`      // tried in order before the host itself
	MirrorsOnly bool     `toml:"mirrors_only,omitempty"` // never contact the host itself
	PlainHTTP   bool     `toml:"plain_http,omitempty"`   // talk HTTP, not HTTPS, to the host
	CAFile      string   `toml:"ca_file,omitempty"`      // PEM bundle trusted for the host and its mirrors
	SkipVerify  bool     `toml:"skip_verify,omitempty"`  // do not verify the host's TLS certificate
	// ClientCert is a PEM client certificate presented to the host; ClientKey its key, when not in the same file.
	ClientCert string `toml:"client_cert,omitempty"`
	ClientKey  string `toml:"client_key,omitempty"`
	// Credentials: username and password, or auth (base64 of "user:pass"), or an identity (refresh) token.
	Username      string `toml:"username,omitempty"`
	Password      string `toml:"password,omitempty"`
	Auth          string `toml:"auth,omitempty"`
	IdentityToken string `toml:"identity_token,omitempty"`
}

type StreamConfig struct {
	Address string `toml:"address"` // address the exec/attach/port-forward server binds
	Port    int    `toml:"port"`    // 0 picks a free port
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
}

type MetricsConfig struct {
	Address string `toml:"address"` // host:port of the Prometheus endpoint; empty turns it off
	Pprof   bool   `toml:"pprof"`   // also serve /debug/pprof on that address
}

// CDIConfig is where CDI (Container Device Interface) specs are read from; oci/cdi watches these directories.
type CDIConfig struct {
	Enabled bool `toml:"enabled"`
	// SpecDirs are read in order; a device defined in a later directory overrides the same name in an earlier one.
	SpecDirs []string `toml:"spec_dirs"`
}

// NRIConfig turns on Node Resource Interface plugins (cri/nri*.go); off by default.
type NRIConfig struct {
	Enable           bool   `toml:"enable"`
	SocketPath       string `toml:"socket_path"`        // where plugins started outside berthd connect
	PluginPath       string `toml:"plugin_path"`        // pre-installed plugins berthd starts, NN-name
	PluginConfigPath string `toml:"plugin_config_path"` // their configuration drop-ins
	// RegistrationTimeout bounds a plugin's registration; RequestTimeout each event a plugin handles: past it the
	// plugin is dropped and the CRI call goes on without it.
	RegistrationTimeout Duration `toml:"registration_timeout"`
	RequestTimeout      Duration `toml:"request_timeout"`
}

// maxNRITimeout bounds the NRI timeouts: a plugin that hangs holds up the CRI call for up to request_timeout.
const maxNRITimeout = 5 * time.Minute

// Duration is a time.Duration written in TOML as a string such as "5m" or "1h30m".
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. \"90s\", \"5m\")", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the shortest form that reads back the same: "2m" rather than "2m0s".
func (d Duration) MarshalText() ([]byte, error) {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return []byte(s), nil
}

// Size is a byte count written in TOML as a string with a binary unit, such as "4MiB" or "64GiB": B, KiB, MiB,
// GiB or TiB; a bare number (or a TOML integer) is bytes.
type Size int64

var sizeUnits = []struct {
	name  string
	shift uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

func (s *Size) UnmarshalText(b []byte) error {
	text := strings.TrimSpace(string(b))
	num, shift := text, uint(0)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(text, u.name); ok {
			num, shift = strings.TrimSpace(n), u.shift
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64>>shift {
		return fmt.Errorf("invalid size %q (want e.g. \"4MiB\", \"64GiB\", or bytes)", b)
	}
	*s = Size(v << shift)
	return nil
}

// MarshalText writes the largest unit that holds the size exactly: "4MiB", "1536KiB", "100B".
func (s Size) MarshalText() ([]byte, error) {
	return []byte(s.String()), nil
}

func (s Size) String() string {
	for _, u := range sizeUnits {
		if s != 0 && s%(1<<u.shift) == 0 {
			return strconv.FormatInt(int64(s)>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// Default returns the configuration used for every key that no file sets.
func Default() Config {
	return Config{
		RootDir:         "/var/lib/berth",
		StateDir:        "/run/berth",
		Listen:          "/run/berth/berth.sock",
		CgroupDriver:    "auto",
		UsernsGroup:     "berth-userns",
		MinOOMScoreAdj:  -1000,
		SandboxImage:    "registry.k8s.io/pause:3.10.1",
		ShutdownTimeout: Duration{10 * time.Second},
		Log:             LogConfig{Level: "info", Format: "text"},
		CNI: CNIConfig{
			ConfDir:      "/etc/cni/net.d",
			BinDirs:      []string{"/opt/cni/bin"},
			SetupTimeout: Duration{2 * time.Minute},
		},
		Registry: RegistryConfig{
			MaxConcurrentDownloads: 3,
			PullProgressTimeout:    Duration{5 * time.Minute},
			// 4 MiB: the distribution spec's floor for what registries accept, the limit of the distribution
			// registry (Docker Hub and most others refuse bigger manifests on push) and CRI-O's (containers/image).
			MaxManifestSize: 4 << 20,
			// 8 MiB: configs grow with history, one entry per build step; a 500-layer image with long RUN lines
			// stays far below. Twice containers/image's 4 MiB, which CRI-O has used for years.
			MaxConfigSize: 8 << 20,
			// 64 GiB: above the largest images in common use (CUDA/PyTorch/NGC images unpack to 20-30 GB), and still
			// what a node's image disk can take. A gzip or zstd layer inflates up to ~1000x, so without a cap a
			// 64 MiB download may fill any disk. Images that hold models may need more.
			MaxUnpackedSize: 64 << 30,
		},
		Stream: StreamConfig{Address: "127.0.0.1"},
		// containerd 2.x and CRI-O read CDI specs by default, from these two directories.
		CDI:      CDIConfig{Enabled: true, SpecDirs: []string{"/etc/cdi", "/var/run/cdi"}},
		Runtimes: map[string]RuntimeConfig{},
		// The paths and timeouts of containerd and CRI-O, which plugins and their installers expect.
		NRI: NRIConfig{
			SocketPath: "/var/run/nri/nri.sock", PluginPath: "/opt/nri/plugins", PluginConfigPath: "/etc/nri/conf.d",
			RegistrationTimeout: Duration{5 * time.Second}, RequestTimeout: Duration{2 * time.Second},
		},
	}
}

// Load applies mainFile and then dropInDir/*.toml in lexical order on top of Default, each later file winning
// key by key, and validates the result. A missing main file or drop-in directory is fine; an empty name skips it.
// Errors name the file, the key and the reason, and wrap errdefs.ErrInvalidArgument.
func Load(mainFile, dropInDir string) (Config, error) {
	var files []string
	if mainFile != "" {
		switch _, err := os.Stat(mainFile); {
		case err == nil:
			files = append(files, mainFile)
		case !errors.Is(err, os.ErrNotExist):
			return Config{}, fmt.Errorf("load config: %w", err)
		}
	}
	if dropInDir != "" {
		dropIns, err := filepath.Glob(filepath.Join(dropInDir, "*.toml")) // sorted
		if err != nil {
			return Config{}, fmt.Errorf("load config: %s: %w", dropInDir, err)
		}
		files = append(files, dropIns...)
	}

	c := Default()
	origin := map[string]string{} // key as toml.Key.String() -> last file that set it
	for _, f := range files {
		if err := decodeFile(&c, f, origin); err != nil {
			return Config{}, err
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, attribute(err, origin)
	}
	return c, nil
}

// decodeFile decodes one file on top of c: keys it sets win, tables it does not mention are kept.
func decodeFile(c *Config, file string, origin map[string]string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	md, err := toml.Decode(string(b), c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) && pe.LastKey != "" {
			return fmt.Errorf("%s: %s: %s (line %d): %w", file, pe.LastKey, pe.Message, pe.Position.Line, errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("%s: %v: %w", file, err, errdefs.ErrInvalidArgument)
	}
	var errs []error
	undecoded := map[string]bool{}
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
		if len(k) > 1 && undecoded[k[:len(k)-1].String()] {
			continue // the unknown table is reported, not each key in it
		}
		errs = append(errs, fmt.Errorf("%s: %s: unknown key: %w", file, k, errdefs.ErrInvalidArgument))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, k := range md.Keys() {
		origin[k.String()] = file
	}
	return nil
}

// attribute prefixes each validation error with the file that set its key, when a file did.
func attribute(err error, origin map[string]string) error {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return err
	}
	errs := joined.Unwrap()
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
		var fe *fieldError
		if errors.As(e, &fe) {
			if f, ok := origin[fe.key.String()]; ok {
				out[i] = fmt.Errorf("%s: %w", f, e)
			}
		}
	}
	return errors.Join(out...)
}

// TOML returns the effective configuration as TOML that Load reads back to the same Config.
func (c Config) TOML() ([]byte, error) {
	var buf bytes.Buffer
	enc := toml.NewEncoder(&buf)
	enc.Indent = ""
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// JSON returns the effective configuration as JSON with the file's keys and values (e.g. "shutdown_timeout":
// "10s"), for a verbose CRI Status: an operator reads the same names as in berth.toml.
func (c Config) JSON() ([]byte, error) {
	b, err := c.TOML()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := toml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return json.Marshal(m)
}

// Redacted returns a copy with registry secrets replaced, for printing and for a verbose CRI Status.
func (c Config) Redacted() Config {
	hosts := make(map[string]RegistryHost, len(c.Registry.Hosts))
	for name, h := range c.Registry.Hosts {
		for _, s := range []*string{&h.Password, &h.Auth, &h.IdentityToken} {
			if *s != "" {
				*s = "<redacted>"
			}
		}
		hosts[name] = h
	}
	c.Registry.Hosts = hosts
	return c
}
