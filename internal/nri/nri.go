// Package nri starts containerd's NRI adaptation (github.com/containerd/nri/pkg/adaptation), the runtime side of
// Node Resource Interface plugins that containerd and CRI-O use, with berth's configuration and logger. cri/ maps
// its pods and containers to NRI (cri/nri*.go) and relays the events.
package nri

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	nrilog "github.com/containerd/nri/pkg/log"
)

// Config is internal/config's [nri] table.
type Config struct {
	SocketPath          string
	PluginPath          string
	PluginConfigPath    string
	RegistrationTimeout time.Duration
	RequestTimeout      time.Duration
}

// Runtime is what the adaptation calls back: the state a connecting plugin is synchronized with, and the
// container updates plugins ask for on their own.
type Runtime interface {
	SynchronizeNRI(ctx context.Context, cb adaptation.SyncCB) error
	UpdateContainersNRI(ctx context.Context, updates []*adaptation.ContainerUpdate) ([]*adaptation.ContainerUpdate, error)
}

var setLogger sync.Once

// Start creates the adaptation, starts the pre-installed plugins in cfg.PluginPath and listens on cfg.SocketPath.
// The adaptation's timeouts are process-wide: one berthd runs one adaptation.
func Start(cfg Config, name, version string, rt Runtime, log *slog.Logger) (*adaptation.Adaptation, error) {
	setLogger.Do(func() { nrilog.Set(slogAdapter{log.With("component", "nri")}) })
	adaptation.SetPluginRegistrationTimeout(cfg.RegistrationTimeout)
	adaptation.SetPluginRequestTimeout(cfg.RequestTimeout)
	a, err := adaptation.New(name, version, rt.SynchronizeNRI, rt.UpdateContainersNRI,
		adaptation.WithSocketPath(cfg.SocketPath), adaptation.WithPluginPath(cfg.PluginPath),
		adaptation.WithPluginConfigPath(cfg.PluginConfigPath))
	if err != nil {
		return nil, fmt.Errorf("nri: %w", err)
	}
	if err := a.Start(); err != nil {
		a.Stop() // Start runs the pre-installed plugins before it listens, and leaves them when listening fails
		return nil, fmt.Errorf("nri: start on %s: %w", cfg.SocketPath, err)
	}
	return a, nil
}

// slogAdapter routes the adaptation's log (which names the plugin in each message about one) to berthd's.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debugf(ctx context.Context, f string, args ...any) {
	a.l.DebugContext(ctx, fmt.Sprintf(f, args...))
}
func (a slogAdapter) Infof(ctx context.Context, f string, args ...any) {
	a.l.InfoContext(ctx, fmt.Sprintf(f, args...))
}
func (a slogAdapter) Warnf(ctx context.Context, f string, args ...any) {
	a.l.WarnContext(ctx, fmt.Sprintf(f, args...))
}
func (a slogAdapter) Errorf(ctx context.Context, f string, args ...any) {
	msg := fmt.Sprintf(f, args...)
	// berthd is built without WebAssembly plugins (nri_no_wasm, Makefile): the adaptation says so as an error at
	// every start, which is no fault.
	if strings.Contains(msg, adaptation.ErrWasmDisabled.Error()) {
		a.l.InfoContext(ctx, msg)
		return
	}
	a.l.ErrorContext(ctx, msg)
}
