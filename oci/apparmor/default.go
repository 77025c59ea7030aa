package apparmor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/berthcri/berth/internal/atomicfile"
	"github.com/berthcri/berth/internal/tail"
)

// loadTimeout bounds one apparmor_parser run; compiling abstractions/base takes a second on a slow machine.
const loadTimeout = time.Minute

// Default keeps the default profile loaded in the kernel: loaded when missing (at start, and again on use if
// someone unloaded it), replaced when its text changed (a new berthd, a changed host). What was loaded is
// remembered by the text's hash in a file of the state dir, which a reboot drops together with the kernel's
// profiles.
type Default struct {
	name, parser string
	text         []byte
	hashFile     string
	profiles     string // the kernel's list of loaded profiles (a test's file)

	mu      sync.Mutex
	current bool // the loaded profile is known to be text
}

// NewDefault returns the keeper of the default profile for a host with f, loaded by the apparmor_parser at
// parser, remembering its hash in stateDir.
func NewDefault(parser, stateDir string, f Features) *Default {
	return &Default{name: DefaultName, parser: parser, text: Profile(DefaultName, f),
		hashFile: filepath.Join(stateDir, "apparmor-"+DefaultName+".sha256"), profiles: profilesFile}
}

// Name is the profile's name.
func (d *Default) Name() string { return d.name }

// Ensure makes sure the kernel has the profile, as this berthd generates it, loaded.
func (d *Default) Ensure(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	loaded, err := loadedIn(d.profiles, d.name)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(d.text)
	hash := hex.EncodeToString(sum[:])
	if loaded && (d.current || d.recorded(hash)) {
		d.current = true
		return nil
	}
	d.current = false
	if err := d.load(ctx); err != nil {
		return fmt.Errorf("load AppArmor profile %s: %w", d.name, err)
	}
	d.current = true
	// Without the record the next berthd loads it again: harmless.
	if err := atomicfile.WriteFile(d.hashFile, []byte(hash+"\n"), 0o600); err != nil {
		return fmt.Errorf("record AppArmor profile %s: %w", d.name, err)
	}
	return nil
}

// recorded reports whether the loaded profile is the text of hash.
func (d *Default) recorded(hash string) bool {
	b, err := os.ReadFile(d.hashFile)
	return err == nil && string(bytes.TrimSpace(b)) == hash
}

// load adds or replaces (-r) the profile, skipping the parser's cache (-K): the text comes on stdin.
func (d *Default) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.parser, "-Kr")
	cmd.Stdin = bytes.NewReader(d.text)
	out := tail.New(tail.MessageSize)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return fmt.Errorf("%s -Kr: %w: %s", d.parser, err, out)
	}
	// The parser may exit 0 having loaded nothing (a warning only).
	if ok, err := loadedIn(d.profiles, d.name); err != nil || !ok {
		return fmt.Errorf("%s -Kr exited 0 but the profile is not loaded (%v): %s", d.parser, err, out)
	}
	return nil
}
