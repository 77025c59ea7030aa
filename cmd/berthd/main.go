// Command berthd is berth's daemon: a Kubernetes container runtime serving the CRI on a unix socket.
//
//	berthd [flags] [serve]                 run the daemon (default); SIGHUP reloads the registry configuration,
//	                                       pinned images and the log level
//	berthd [flags] config                  print the effective merged configuration as TOML
//	berthd [flags] config endpoints IMAGE  print the endpoints a pull of IMAGE tries, in order
//	berthd version | --version             print the version
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/version"
)

const defaultConfigFile = "/etc/berth/berth.toml"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type flags struct {
	config, root, state, listen, logLevel string
}

const usage = `Usage:
  berthd [flags] [serve]                 run the daemon (the default); SIGHUP reloads the registry
                                         configuration, pinned images and the log level
  berthd [flags] config                  print the effective configuration as TOML
  berthd [flags] config endpoints IMAGE  print the endpoints a pull of IMAGE tries, in order
  berthd version                         print the version (also --version)

Flags:
`

func run(args []string, stdout, stderr io.Writer) int {
	sub := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("berthd "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" || a == "--h" }) {
		fs.SetOutput(stdout) // asked for: a pager can read it
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	var f flags
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.StringVar(&f.config, "config", defaultConfigFile, "config file; drop-ins are read from <file without .toml>.d/*.toml")
	fs.StringVar(&f.root, "root", "", "root dir for persistent data (overrides root_dir)")
	fs.StringVar(&f.state, "state", "", "state dir for runtime state (overrides state_dir)")
	fs.StringVar(&f.listen, "listen", "", "CRI unix socket path (overrides listen)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug|info|warn|error (overrides log.level)")
	if sub == "help" {
		fs.SetOutput(stdout)
		fs.Usage()
		return 0
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	// config endpoints IMAGE, with flags before or after.
	var endpointsOf string
	if sub == "config" && fs.NArg() >= 2 && fs.Arg(0) == "endpoints" {
		endpointsOf = fs.Arg(1)
		if err := fs.Parse(fs.Args()[2:]); err != nil {
			return 2
		}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "berthd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *showVersion {
		sub = "version"
	}

	switch sub {
	case "version":
		fmt.Fprintf(stdout, "%s %s\n", version.RuntimeName, version.Version)
		return 0
	case "config", "serve":
	default:
		fmt.Fprintf(stderr, "berthd: unknown command %q (want serve, config or version; see berthd --help)\n", sub)
		return 2
	}

	cfg, err := loadConfig(f)
	if err != nil {
		fmt.Fprintf(stderr, "berthd: %v\n", err)
		return 1
	}
	if endpointsOf != "" {
		if err := printEndpoints(stdout, cfg, endpointsOf); err != nil {
			fmt.Fprintf(stderr, "berthd: %v\n", err)
			return 1
		}
		return 0
	}
	if sub == "config" {
		// What berthd runs with: auto is shown as the driver it resolves to on this host.
		cfg.CgroupDriver = cgroupDriver(cfg.CgroupDriver)
		out, err := cfg.Redacted().TOML()
		if err != nil {
			fmt.Fprintf(stderr, "berthd: %v\n", err)
			return 1
		}
		stdout.Write(out)
		return 0
	}
	if err := serve(cfg, func() (config.Config, error) { return loadConfig(f) }); err != nil {
		fmt.Fprintf(stderr, "berthd: %v\n", err)
		return 1
	}
	return 0
}

// loadConfig reads the config file and its drop-ins, then applies the command-line overrides.
func loadConfig(f flags) (config.Config, error) {
	cfg, err := config.Load(f.config, strings.TrimSuffix(f.config, ".toml")+".d")
	if err != nil {
		return cfg, err
	}
	for _, o := range []struct {
		flag string
		dst  *string
	}{{f.root, &cfg.RootDir}, {f.state, &cfg.StateDir}, {f.listen, &cfg.Listen}, {f.logLevel, &cfg.Log.Level}} {
		if o.flag != "" {
			*o.dst = o.flag
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("command line: %w", err)
	}
	return cfg, nil
}
