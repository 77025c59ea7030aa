package main

import (
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const (
	// benchSeed fixes the benchmark images' random content: same seed, same digests.
	benchSeed = 20240101
	// recipeVersion goes into the recipe label: bump it when the generator code changes, or a
	// re-run will keep the images already in the registry.
	recipeVersion = "bench-v2"
)

// randomBytes returns n bytes of the stream; ChaCha8's output is specified, so it does not change
// between Go releases.
func randomBytes(rng *rand.ChaCha8, n int) []byte {
	b := make([]byte, n)
	_, _ = rng.Read(b) // ChaCha8.Read never fails
	return b
}

// newRNG returns the random stream for one layer.
func newRNG(stream uint64) *rand.ChaCha8 {
	var seed [32]byte
	for i := range 8 {
		seed[i] = byte(uint64(benchSeed) >> (8 * i))
		seed[8+i] = byte(stream >> (8 * i))
	}
	return rand.NewChaCha8(seed)
}

// randomTrees describes layers of random files: each layer has dirs x files, each file a random
// size in [minSize, maxSize].
type randomTrees struct {
	prefix           string
	stream           uint64 // first random stream; layer l uses stream+l
	layers           int
	dirs             int
	files            int
	minSize, maxSize int
}

func (r randomTrees) tree(l int) tree {
	rng := newRNG(r.stream + uint64(l))
	t := tree{}
	for d := range r.dirs {
		for f := range r.files {
			t.file(fmt.Sprintf("%s/layer%02d/dir%02d/file%03d", r.prefix, l, d, f), 0o644, randomBytes(rng, r.minSize+int(rng.Uint64()%uint64(r.maxSize-r.minSize+1))))
		}
	}
	return t
}

// generate returns the first layer's files (merged with the image's base) and the other layers,
// compressed at the fastest level: random data does not shrink anyway.
func (r randomTrees) generate() (tree, []v1.Layer, error) {
	var layers []v1.Layer
	for l := 1; l < r.layers; l++ {
		raw, err := r.tree(l).tar()
		if err != nil {
			return nil, nil, err
		}
		layer, err := gzipLayer(raw, gzip.BestSpeed)
		if err != nil {
			return nil, nil, fmt.Errorf("%s layer %d: %w", r.prefix, l, err)
		}
		layers = append(layers, layer)
	}
	return r.tree(0), layers, nil
}

// benchImages are kept out of the default set: a pull benchmark wants big, incompressible layers
// (bench/big, 5 layers of 4 x 10 MiB) and many small files (bench/small-files, 50 layers of 400
// files up to 4 KiB). Both run `sh` from a private copy of the static base in their first layer,
// so they share no layer with the validation images.
func benchImages(b *bases) ([]imageDef, error) {
	baseDigest, err := b.staticLayer.Digest()
	if err != nil {
		return nil, fmt.Errorf("static base: %w", err)
	}
	specs := []struct {
		repo string
		r    randomTrees
	}{
		{"bench/big", randomTrees{prefix: "bench/big", stream: 0, layers: 5, dirs: 1, files: 4, minSize: 10 << 20, maxSize: 10 << 20}},
		{"bench/small-files", randomTrees{prefix: "bench/small", stream: 1000, layers: 50, dirs: 10, files: 40, minSize: 1, maxSize: 4096}},
	}
	var defs []imageDef
	for _, s := range specs {
		r := s.r
		defs = append(defs, imageDef{
			repo: s.repo, tags: []string{"latest"}, base: staticBase, ownBase: true,
			config:   v1.Config{Cmd: []string{"sh"}},
			generate: r.generate,
			// The gzip output depends on the Go release, the content on everything else.
			recipe: fmt.Sprintf("%s seed=%d %+v base=%s go=%s", recipeVersion, benchSeed, r, baseDigest, runtime.Version()),
		})
	}
	return defs, nil
}
