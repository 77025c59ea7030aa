package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

func entry(mediaType, seed string, p *ocispec.Platform) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromString(seed), Size: 100, Platform: p}
}

func plat(os, arch string) *ocispec.Platform { return &ocispec.Platform{OS: os, Architecture: arch} }

func indexOf(t testing.TB, entries ...ocispec.Descriptor) Manifest {
	b, err := json.Marshal(ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: entries})
	if err != nil {
		t.Fatal(err)
	}
	return Manifest{Digest: digest.FromBytes(b), Data: b}
}

func TestPickEntry(t *testing.T) {
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	ours := plat("linux", runtime.GOARCH)
	many := make([]ocispec.Descriptor, MaxIndexEntries+1)
	for i := range many {
		many[i] = entry(ocispec.MediaTypeImageManifest, fmt.Sprint(i), plat("linux", other))
	}
	for name, tc := range map[string]struct {
		entries []ocispec.Descriptor
		path    []digest.Digest // besides the index itself
		want    string          // seed of the entry picked
		err     error
		msg     string
	}{
		"the platform's image": {entries: []ocispec.Descriptor{entry(ocispec.MediaTypeImageManifest, "a", plat("linux", other)),
			entry(mediaTypeDockerManifest, "b", ours)}, want: "b"},
		"an image without platform when none names ours": {entries: []ocispec.Descriptor{
			entry(ocispec.MediaTypeImageManifest, "a", plat("windows", runtime.GOARCH)), entry(ocispec.MediaTypeImageManifest, "b", nil)}, want: "b"},
		"our image before an unnamed one": {entries: []ocispec.Descriptor{entry(ocispec.MediaTypeImageManifest, "a", nil),
			entry(ocispec.MediaTypeImageManifest, "b", ours)}, want: "b"},
		"a nested index for our platform when no image is ours": {entries: []ocispec.Descriptor{
			entry(ocispec.MediaTypeImageManifest, "a", plat("linux", other)), entry(ocispec.MediaTypeImageIndex, "b", ours)}, want: "b"},
		"an image before a nested index": {entries: []ocispec.Descriptor{entry(mediaTypeDockerManifestList, "a", ours),
			entry(ocispec.MediaTypeImageManifest, "b", nil)}, want: "b"},
		"attestations and artifacts are never followed": {entries: []ocispec.Descriptor{
			entry("application/vnd.in-toto+json", "a", ours), entry("application/octet-stream", "b", nil)},
			err: errdefs.ErrNotFound, msg: "no image for platform linux/" + runtime.GOARCH},
		"more entries than the cap": {entries: many, err: errdefs.ErrFailedPrecondition,
			msg: fmt.Sprintf("lists %d entries, at most %d", MaxIndexEntries+1, MaxIndexEntries)},
		"as many entries as the cap": {entries: append(many[:MaxIndexEntries-1:MaxIndexEntries-1],
			entry(ocispec.MediaTypeImageManifest, "last", ours)), want: "last"},
		"an entry that is an index above": {entries: []ocispec.Descriptor{entry(ocispec.MediaTypeImageIndex, "top", ours)},
			path: []digest.Digest{digest.FromString("top")}, err: errdefs.ErrFailedPrecondition, msg: "lists itself"},
		"a bad digest": {entries: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:../../x",
			Size: 1, Platform: ours}}, err: errdefs.ErrFailedPrecondition, msg: "digest"},
		"a negative size": {entries: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest,
			Digest: digest.FromString("x"), Size: -1, Platform: ours}}, err: errdefs.ErrFailedPrecondition, msg: "negative size"},
	} {
		t.Run(name, func(t *testing.T) {
			m := indexOf(t, tc.entries...)
			got, err := pickEntry(m, append(tc.path, m.Digest))
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("pickEntry = %+v, %v; want %v: %s", got, err, tc.err, tc.msg)
				}
				return
			}
			if err != nil || got.Digest != digest.FromString(tc.want) {
				t.Fatalf("pickEntry = %+v, %v; want entry %q", got, err, tc.want)
			}
		})
	}
	self := indexOf(t, entry(ocispec.MediaTypeImageIndex, "x", ours))
	var idx ocispec.Index
	json.Unmarshal(self.Data, &idx)
	idx.Manifests[0].Digest = self.Digest // what no hash allows, but a parser must not loop on
	self.Data, _ = json.Marshal(idx)
	if _, err := pickEntry(self, []digest.Digest{self.Digest}); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "lists itself") {
		t.Errorf("an index listing its own digest: %v, want lists itself", err)
	}
}

func TestParseImageManifest(t *testing.T) {
	lim := limits{manifestSize: 4 << 20, configSize: 8 << 20, layers: 500}
	layers := func(n int) []ocispec.Descriptor {
		out := make([]ocispec.Descriptor, n)
		for i := range out {
			out[i] = entry(ocispec.MediaTypeImageLayerGzip, fmt.Sprint(i), nil)
		}
		return out
	}
	cfg := entry(ocispec.MediaTypeImageConfig, "config", nil)
	for name, tc := range map[string]struct {
		man  ocispec.Manifest
		err  error
		msgs []string
	}{
		"an image":                  {man: ocispec.Manifest{Config: cfg, Layers: layers(3)}},
		"a Docker image":            {man: ocispec.Manifest{Config: entry(mediaTypeDockerConfig, "c", nil), Layers: layers(1)}},
		"no layers":                 {man: ocispec.Manifest{Config: cfg}},
		"as many layers as the cap": {man: ocispec.Manifest{Config: cfg, Layers: layers(500)}},
		"one layer more than the cap": {man: ocispec.Manifest{Config: cfg, Layers: layers(501)}, err: errdefs.ErrFailedPrecondition,
			msgs: []string{"501 layers", "at most 500"}},
		"a config over the cap": {man: ocispec.Manifest{Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig,
			Digest: digest.FromString("big"), Size: 8<<20 + 1}}, err: errdefs.ErrResourceExhausted,
			msgs: []string{"config " + digest.FromString("big").String(), ocispec.MediaTypeImageConfig, "registry.max_config_size (8MiB)"}},
		"a config at the cap": {man: ocispec.Manifest{Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig,
			Digest: digest.FromString("big"), Size: 8 << 20}}},
		"an artifact": {man: ocispec.Manifest{Config: entry("application/vnd.cncf.helm.config.v1+json", "c", nil)},
			err: errdefs.ErrFailedPrecondition, msgs: []string{"not a container image"}},
		"a layer digest that is a path": {man: ocispec.Manifest{Config: cfg, Layers: []ocispec.Descriptor{{Digest: "sha256:../../../etc"}}},
			err: errdefs.ErrFailedPrecondition, msgs: []string{"layer 0"}},
	} {
		t.Run(name, func(t *testing.T) {
			b, _ := json.Marshal(tc.man)
			c, ls, err := parseImageManifest(Manifest{Digest: digest.FromBytes(b), Data: b}, lim)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("parseImageManifest: %v, want %v", err, tc.err)
				}
				for _, m := range tc.msgs {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("error %q does not say %q", err, m)
					}
				}
				return
			}
			if err != nil || c.Digest != tc.man.Config.Digest || len(ls) != len(tc.man.Layers) {
				t.Fatalf("parseImageManifest = %+v, %d layers, %v", c, len(ls), err)
			}
		})
	}
}

func TestMediaTypeOf(t *testing.T) {
	for name, tc := range map[string]struct {
		body, contentType, desc, want string
	}{
		"its own field wins":       {`{"mediaType":"` + mediaTypeDockerManifest + `"}`, ocispec.MediaTypeImageIndex, "", mediaTypeDockerManifest},
		"then the Content-Type":    {`{"config":{}}`, ocispec.MediaTypeImageIndex + "; charset=utf-8", "", ocispec.MediaTypeImageIndex},
		"an unknown Content-Type":  {`{"config":{}}`, "application/json", ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageIndex},
		"then the descriptor":      {`{"config":{}}`, "", mediaTypeDockerManifest, mediaTypeDockerManifest},
		"then an index's fields":   {`{"manifests":[]}`, "text/plain", "", ocispec.MediaTypeImageIndex},
		"then a manifest's fields": {`{"config":{},"layers":[]}`, "", "", ocispec.MediaTypeImageManifest},
		"nothing to tell":          {`{}`, "", "", ""},
		"not JSON":                 {`<html>`, ocispec.MediaTypeImageManifest, "", ""},
		"schema 1 is reported as is": {`{"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}`, "", "",
			"application/vnd.docker.distribution.manifest.v1+prettyjws"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := mediaTypeOf([]byte(tc.body), tc.contentType, tc.desc)
			if tc.want == "" {
				if !errdefs.IsFailedPrecondition(err) {
					t.Fatalf("mediaTypeOf = %q, %v; want failed precondition", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("mediaTypeOf = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// countingBody counts what was read of a response body.
type countingBody struct {
	r    io.Reader
	read int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += int64(n)
	return n, err
}

func (b *countingBody) Close() error { return nil }

func TestReadBody(t *testing.T) {
	const limit = 1000
	for name, tc := range map[string]struct {
		body          int64 // bytes the registry would send
		contentLength int64 // -1: none
		size          int64 // descriptor size, -1: unknown
		err           error
		msg           string
	}{
		"under the cap":                          {body: 10, contentLength: 10, size: -1},
		"at the cap, streamed":                   {body: limit, contentLength: -1, size: -1},
		"Content-Length over the cap":            {body: 1 << 30, contentLength: 1 << 30, size: -1, err: errdefs.ErrResourceExhausted, msg: "1073741824 bytes, more than key (1000B)"},
		"streamed over the cap":                  {body: 1 << 30, contentLength: -1, size: -1, err: errdefs.ErrResourceExhausted, msg: "more than key"},
		"as the descriptor says":                 {body: 10, contentLength: -1, size: 10},
		"Content-Length other than descriptor's": {body: 20, contentLength: 20, size: 10, err: errdefs.ErrFailedPrecondition, msg: "20 bytes, its descriptor says 10"},
		"streamed past the descriptor":           {body: 1 << 30, contentLength: -1, size: 10, err: errdefs.ErrFailedPrecondition, msg: "more than the 10 bytes its descriptor says"},
		"shorter than the descriptor":            {body: 5, contentLength: -1, size: 10, err: errdefs.ErrFailedPrecondition, msg: "got 5 bytes, its descriptor says 10"},
	} {
		t.Run(name, func(t *testing.T) {
			body := &countingBody{r: io.LimitReader(zeros{}, tc.body)}
			got, err := readBody(&http.Response{Body: body, ContentLength: tc.contentLength}, "thing", "host", tc.size, limit, "key")
			if body.read > limit+1 {
				t.Errorf("read %d bytes of the body, cap %d", body.read, limit)
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("readBody: %v, want %v: %s", err, tc.err, tc.msg)
				}
				return
			}
			if err != nil || int64(len(got)) != tc.body {
				t.Fatalf("readBody = %d bytes, %v; want %d", len(got), err, tc.body)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// FuzzManifest feeds registry answers to the manifest parsers: none may panic, and what they accept stays within the
// caps (an index entry picked from at most MaxIndexEntries, never one of the indexes above; at most limits.layers
// layers and a config within its cap).
func FuzzManifest(f *testing.F) {
	ours := plat("linux", runtime.GOARCH)
	for _, m := range []Manifest{
		indexOf(f, entry(ocispec.MediaTypeImageManifest, "a", ours), entry(ocispec.MediaTypeImageIndex, "b", nil)),
		indexOf(f, entry(mediaTypeDockerManifest, "a", plat("windows", "amd64"))),
	} {
		f.Add(m.Data, ocispec.MediaTypeImageIndex)
	}
	man, _ := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: entry(ocispec.MediaTypeImageConfig, "c", nil), Layers: []ocispec.Descriptor{entry(ocispec.MediaTypeImageLayer, "l", nil)}})
	f.Add(man, "")
	f.Add([]byte(`{"manifests":[{"digest":"sha256:","size":-1}],"config":{"digest":"x"}}`), "text/plain")
	lim := limits{manifestSize: 4 << 20, configSize: 1 << 10, layers: 3}
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		m := Manifest{Digest: digest.FromBytes(body), Data: body}
		mt, err := mediaTypeOf(body, contentType, "")
		if err != nil {
			return
		}
		if isIndex(mt) {
			above := digest.FromString("above")
			d, err := pickEntry(m, []digest.Digest{above, m.Digest})
			if err == nil {
				var idx ocispec.Index
				if json.Unmarshal(body, &idx) != nil || len(idx.Manifests) > MaxIndexEntries {
					t.Fatalf("picked %v from an index that is not one or has too many entries", d)
				}
				if d.Digest == above || d.Digest == m.Digest || d.Digest.Validate() != nil || d.Size < 0 {
					t.Fatalf("picked %+v", d)
				}
			}
		}
		cfg, layers, err := parseImageManifest(m, lim)
		if err == nil && (len(layers) > lim.layers || cfg.Size > lim.configSize || cfg.Digest.Validate() != nil) {
			t.Fatalf("accepted config %+v and %d layers", cfg, len(layers))
		}
	})
}
