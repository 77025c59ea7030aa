// Command berthd is berth's daemon: a Kubernetes container runtime serving the CRI on a unix socket.
//
//	berthd [flags] [serve]   run the daemon (default)
//	berthd [flags] config    print the effective merged configuration as TOML
//	berthd version           print the version
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
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

func run(args []string, stdout, stderr io.Writer) int {
	sub := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("berthd "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f flags
	fs.StringVar(&f.config, "config", defaultConfigFile, "config file; drop-ins are read from <file without .toml>.d/*.toml")
	fs.StringVar(&f.root, "root", "", "root dir for persistent data (overrides root_dir)")
	fs.StringVar(&f.state, "state", "", "state dir for runtime state (overrides state_dir)")
	fs.StringVar(&f.listen, "listen", "", "CRI unix socket path (overrides listen)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug|info|warn|error (overrides log.level)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "berthd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	switch sub {
	case "version":
		fmt.Fprintf(stdout, "%s %s\n", version.RuntimeName, version.Version)
		return 0
	case "config", "serve":
	default:
		fmt.Fprintf(stderr, "berthd: unknown command %q (want serve, config or version)\n", sub)
		return 2
	}

	cfg, err := loadConfig(f)
	if err != nil {
		fmt.Fprintf(stderr, "berthd: %v\n", err)
		return 1
	}
	if sub == "config" {
		out, err := cfg.Redacted().TOML()
		if err != nil {
			fmt.Fprintf(stderr, "berthd: %v\n", err)
			return 1
		}
		stdout.Write(out)
		return 0
	}
	if err := serve(cfg); err != nil {
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
