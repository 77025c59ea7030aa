// Package cni attaches pods to the pod network with libcni: it keeps the network config current (watch.go), runs
// ADD and DEL in the pod's network namespace (network.go) and deletes attachments of pods that are gone (GC).
package cni

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// Config is a loaded network config and the file it came from.
type Config struct {
	File string
	List *libcni.NetworkConfigList
}

// Load returns the first network config in confDir (lexical order of .conflist, .conf and .json files, as the
// kubelet's dockershim and containerd choose), after checking that every plugin it names exists in binDirs.
// The error says exactly what is missing, for the NetworkReady condition.
func Load(confDir string, binDirs []string) (*Config, error) {
	files, err := libcni.ConfFiles(confDir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		return nil, fmt.Errorf("read network config dir %s: %w", confDir, err)
	}
	slices.Sort(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("no network config found in %s", confDir)
	}
	file := files[0]
	list, err := loadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(file), err)
	}
	for _, p := range list.Plugins {
		if !pluginExists(p.Network.Type, binDirs) {
			return nil, fmt.Errorf("%s: plugin '%s' not found in %s", filepath.Base(file), p.Network.Type, strings.Join(binDirs, ":"))
		}
	}
	return &Config{File: file, List: list}, nil
}

func loadFile(file string) (*libcni.NetworkConfigList, error) {
	if filepath.Ext(file) == ".conflist" {
		return libcni.NetworkConfFromFile(file)
	}
	// A .conf/.json file holds a single plugin config.
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	conf, err := libcni.NetworkPluginConfFromBytes(data)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromConf(conf)
}

func pluginExists(name string, binDirs []string) bool {
	if name == "" || filepath.Base(name) != name {
		return false
	}
	for _, dir := range binDirs {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return true
		}
	}
	return false
}
