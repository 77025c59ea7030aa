package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/berthcri/berth/internal/errdefs"
)

// Reference counting is derived, not stored: a blob or snapshot is in use while an image record lists it or a
// pull in flight holds it. Records stay while containers use the image (record.Users), even after removal.
// Content is freed synchronously, under mu, when the last reference to it goes.

// hold marks content a pull is about to look at or create, so that no removal frees it meanwhile.
func (s *Service) hold(r refs) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range r.blobs {
		s.heldBlobs[d]++
	}
	for _, d := range r.snaps {
		s.heldSnaps[d]++
	}
}

// unhold drops a pull's holds. After a failed pull it frees whatever of that content nothing else references,
// so a failed pull leaves no new files.
func (s *Service) unhold(r refs, failed bool) {
	s.mu.Lock()
	for _, d := range r.blobs {
		if s.heldBlobs[d]--; s.heldBlobs[d] == 0 {
			delete(s.heldBlobs, d)
		}
	}
	for _, d := range r.snaps {
		if s.heldSnaps[d]--; s.heldSnaps[d] == 0 {
			delete(s.heldSnaps, d)
		}
	}
	var trash []string
	var err error
	if failed {
		trash, err = s.freeLocked(r)
	}
	s.mu.Unlock()
	if err = errors.Join(err, removeAll(trash)); err != nil {
		s.log.Warn("clean up after failed pull", "err", err)
	}
}

// Remove removes the image ref names (id, id prefix, tag or digest) with all its tags. Its content is freed
// before Remove returns unless a container uses the image; then the image is hidden at once and freed when the
// last container releases it. An unknown image is errdefs.ErrNotFound; a pinned one (pinned_images, the sandbox
// image), by whichever name, is errdefs.ErrFailedPrecondition and stays.
func (s *Service) Remove(ref string) error {
	s.mu.Lock()
	r, err := s.find(ref)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if name := s.pinnedAs(r); name != "" {
		s.mu.Unlock()
		return errdefs.FailedPrecondition("image %s (%s) is pinned (pinned_images or sandbox_image): not removed", name, r.ID)
	}
	var trash []string
	if len(r.Users) > 0 {
		_, err = s.records.Update(r.ID, func(r *record) error {
			r.Removed, r.RepoTags, r.RepoDigests = true, nil, nil
			return nil
		})
	} else {
		trash, err = s.deleteLocked(r)
	}
	s.mu.Unlock()
	if err = errors.Join(err, removeAll(trash)); err != nil {
		return fmt.Errorf("remove image %s: %w", r.ID, err)
	}
	return nil
}

// Acquire resolves ref like Status and records user (a container id) as using the image, so that removing the
// image does not free it until Release. Acquiring twice for one user is one use.
func (s *Service) Acquire(ref, user string) (Image, error) {
	if user == "" {
		return Image{}, errdefs.InvalidArgument("user", "empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.find(ref)
	if err != nil {
		return Image{}, err
	}
	r, err = s.records.Update(r.ID, func(r *record) error {
		r.Users = addUnique(r.Users, user)
		return nil
	})
	if err != nil {
		return Image{}, fmt.Errorf("acquire image %s: %w", ref, err)
	}
	return s.toImage(r), nil
}

// Release ends user's use of image id. The last release of a removed image frees it. Releasing an unknown
// image or user is not an error, so container removal can be retried.
func (s *Service) Release(id, user string) error {
	s.mu.Lock()
	r, ok := s.records.Get(id)
	if !ok || !slices.Contains(r.Users, user) {
		s.mu.Unlock()
		return nil
	}
	var trash []string
	r, err := s.records.Update(id, func(r *record) error {
		r.Users = slices.DeleteFunc(r.Users, func(u string) bool { return u == user })
		return nil
	})
	if err == nil && r.Removed && len(r.Users) == 0 {
		trash, err = s.deleteLocked(r)
	}
	s.mu.Unlock()
	if err = errors.Join(err, removeAll(trash)); err != nil {
		return fmt.Errorf("release image %s: %w", id, err)
	}
	return nil
}

// KeepUsers drops every image user that known rejects and frees removed images left without users; it returns the
// users dropped. berthd calls it at start with its container records, before serving: users are recorded before the
// container record is written, so a create killed between the two leaves a user no container will ever release.
func (s *Service) KeepUsers(known func(user string) bool) ([]string, error) {
	lost := func(u string) bool { return !known(u) }
	s.mu.Lock()
	var dropped, trash []string
	var errs []error
	for _, r := range s.records.List() {
		if !slices.ContainsFunc(r.Users, lost) {
			continue
		}
		for _, u := range r.Users {
			if lost(u) {
				dropped = append(dropped, u)
			}
		}
		r, err := s.records.Update(r.ID, func(r *record) error {
			r.Users = slices.DeleteFunc(r.Users, lost)
			return nil
		})
		if err == nil && r.Removed && len(r.Users) == 0 {
			var t []string
			t, err = s.deleteLocked(r)
			trash = append(trash, t...)
		}
		errs = append(errs, err)
	}
	s.mu.Unlock()
	if err := errors.Join(append(errs, removeAll(trash))...); err != nil {
		return dropped, fmt.Errorf("drop image users: %w", err)
	}
	return dropped, nil
}

// deleteLocked deletes record r and frees its content that nothing else references. Callers hold mu and
// remove the returned snapshot dirs after unlocking.
func (s *Service) deleteLocked(r record) ([]string, error) {
	if err := s.records.Delete(r.ID); err != nil {
		return nil, err
	}
	return s.freeLocked(r.refs())
}

// freeLocked deletes the blobs of r that nothing references and moves such snapshots out of sight (a rename,
// fast under mu); it returns the moved dirs for the caller to delete after unlocking mu.
func (s *Service) freeLocked(r refs) ([]string, error) {
	blobs, snaps := s.inUse()
	var errs []error
	for _, d := range r.blobs {
		if !blobs[d] {
			errs = append(errs, s.content.Delete(d))
		}
	}
	var trash []string
	for _, d := range r.snaps {
		if snaps[d] {
			continue
		}
		tmp := filepath.Join(s.snapshots, fmt.Sprintf("trash-%s-%d", d.Encoded(), s.trashSeq.Add(1)))
		switch err := os.Rename(s.snapshotDir(d), tmp); {
		case err == nil:
			trash = append(trash, tmp)
		case !errors.Is(err, os.ErrNotExist):
			errs = append(errs, fmt.Errorf("free layer %s: %w", d, err))
		}
	}
	return trash, errors.Join(errs...)
}

func removeAll(dirs []string) error {
	var errs []error
	for _, d := range dirs {
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}
