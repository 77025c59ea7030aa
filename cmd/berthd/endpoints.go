package main

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/distribution/reference"

	"github.com/berthcri/berth/image/registry"
	"github.com/berthcri/berth/internal/config"
)

// printEndpoints writes, for image, the endpoints a pull would try, in order, with what each may be used for, its
// TLS settings, where its credential would come from and where it is configured: `berthd config endpoints IMAGE`.
func printEndpoints(w io.Writer, cfg config.Config, image string) error {
	named, err := reference.ParseDockerRef(image)
	if err != nil {
		return fmt.Errorf("image %q: %v", image, err)
	}
	c, err := registry.Load(cfg.Registry, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	eps, err := c.Endpoints(reference.Domain(named))
	if err != nil {
		return err
	}
	_, digested := named.(reference.Digested)
	fmt.Fprintf(w, "# %s: endpoints in the order a pull tries them\n", named)
	for i, ep := range eps {
		role := "registry"
		if ep.Mirror {
			role = "mirror"
		}
		fmt.Fprintf(w, "%d. %s://%s%s  %s  capabilities=%s  tls=%s  credentials=%s", i+1, ep.Scheme, ep.Host, ep.Path,
			role, ep.Capabilities, describeTLS(ep), c.CredentialSource(ep))
		if len(ep.Header) > 0 {
			fmt.Fprintf(w, "  headers=%s", strings.Join(slices.Sorted(maps.Keys(ep.Header)), ","))
		}
		if ep.Source != "" {
			fmt.Fprintf(w, "  from=%s", ep.Source)
		}
		if !ep.Usable(digested) {
			fmt.Fprint(w, "  SKIPPED: a pull of this reference needs pull,resolve (pull for a digest)")
		}
		fmt.Fprintln(w)
	}
	return nil
}

func describeTLS(ep registry.Endpoint) string {
	if ep.Scheme == "http" {
		return "none"
	}
	var parts []string
	if ep.TLS.SkipVerify {
		parts = append(parts, "skip_verify")
	}
	for _, ca := range ep.TLS.CAFiles {
		parts = append(parts, "ca:"+ca)
	}
	for _, pair := range ep.TLS.Clients {
		p := "client:" + pair[0]
		if pair[1] != "" {
			p += "+" + pair[1]
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "system-roots"
	}
	return strings.Join(parts, ",")
}
