package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// push puts img under every tag of d, skipping tags whose manifest in the registry already has
// img's digest; it reports one line per tag on out.
func push(ctx context.Context, out io.Writer, registry string, d imageDef, img v1.Image) error {
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image %s: digest: %w", d, err)
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	written := false
	for _, tag := range d.tags {
		ref, err := name.NewTag(registry + "/" + d.repo + ":" + tag)
		if err != nil {
			return fmt.Errorf("image %s: %w", d, err)
		}
		have, err := remoteDigest(ref, opts)
		if err != nil {
			return err
		}
		status := "unchanged"
		switch {
		case have == digest:
		case !written:
			if err := remote.Write(ref, img, opts...); err != nil {
				return fmt.Errorf("push %s: %w", ref, err)
			}
			written, status = true, "pushed"
		default:
			if err := remote.Tag(ref, img, opts...); err != nil {
				return fmt.Errorf("tag %s: %w", ref, err)
			}
			status = "tagged"
		}
		fmt.Fprintf(out, "%-72s %s %s\n", ref, digest, status)
	}
	return nil
}

// recipeUpToDate reports whether every tag of d already holds an image built from d.recipe, and
// then reports those tags as unchanged on out.
func recipeUpToDate(ctx context.Context, out io.Writer, registry string, d imageDef) (bool, error) {
	var lines []string
	for _, tag := range d.tags {
		ref, err := name.NewTag(registry + "/" + d.repo + ":" + tag)
		if err != nil {
			return false, fmt.Errorf("image %s: %w", d, err)
		}
		img, err := remote.Image(ref, remote.WithContext(ctx))
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("get %s: %w", ref, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return false, fmt.Errorf("config of %s: %w", ref, err)
		}
		if cf.Config.Labels[recipeKey] != d.recipe {
			return false, nil
		}
		digest, err := img.Digest()
		if err != nil {
			return false, fmt.Errorf("digest of %s: %w", ref, err)
		}
		lines = append(lines, fmt.Sprintf("%-72s %s unchanged\n", ref, digest))
	}
	for _, l := range lines {
		fmt.Fprint(out, l)
	}
	return true, nil
}

// remoteDigest returns the digest of the manifest ref names, or the zero hash if there is none.
func remoteDigest(ref name.Tag, opts []remote.Option) (v1.Hash, error) {
	desc, err := remote.Head(ref, opts...)
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return v1.Hash{}, nil
	}
	if err != nil {
		return v1.Hash{}, fmt.Errorf("head %s: %w", ref, err)
	}
	return desc.Digest, nil
}
