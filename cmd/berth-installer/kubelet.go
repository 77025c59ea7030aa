package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
)

// kubeletFiles are where the kubelet's runtime endpoint is set: its KubeletConfiguration (YAML) and the flag files
// its service reads (kubeadm's, Debian's and RHEL's). Command-line flags win over the configuration file.
type kubeletFiles struct {
	config    string
	flagFiles []string
}

var defaultKubeletFiles = kubeletFiles{
	config:    "/var/lib/kubelet/config.yaml",
	flagFiles: []string{"/var/lib/kubelet/kubeadm-flags.env", "/etc/default/kubelet", "/etc/sysconfig/kubelet"},
}

// kubeletSettings are the kubelet settings berth's configuration must agree with.
type kubeletSettings struct {
	cgroupDriver string // KubeletConfiguration cgroupDriver
	sandboxImage string // --pod-infra-container-image
}

func (h *host) readKubelet(kf kubeletFiles) (kubeletSettings, error) {
	var s kubeletSettings
	data, err := h.readOptional(kf.config)
	if err != nil {
		return s, err
	}
	if data != nil {
		s.cgroupDriver, _ = yamlValue(data, "cgroupDriver")
	}
	for _, f := range kf.flagFiles {
		data, err := h.readOptional(f)
		if err != nil {
			return s, err
		}
		if v, ok := flagValue(data, "pod-infra-container-image"); ok {
			s.sandboxImage = v
		}
	}
	return s, nil
}

// kubeletEdit is the new content of one kubelet file.
type kubeletEdit struct {
	path string
	data []byte
}

// pointKubeletAt returns the edits that make the kubelet use endpoint for containers and images: the configuration
// file gets containerRuntimeEndpoint (and imageServiceEndpoint where it is set), flag files that set
// --container-runtime-endpoint or --image-service-endpoint get the new value. No edits: it already does.
func (h *host) pointKubeletAt(kf kubeletFiles, endpoint string) ([]kubeletEdit, error) {
	var edits []kubeletEdit
	found := false
	data, err := h.readOptional(kf.config)
	if err != nil {
		return nil, err
	}
	if data != nil {
		if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
			return nil, fmt.Errorf("kubelet config %s: JSON is not supported, only YAML", kf.config)
		}
		found = true
		out := setYAMLValue(data, "containerRuntimeEndpoint", endpoint, true)
		out = setYAMLValue(out, "imageServiceEndpoint", endpoint, false)
		if !bytes.Equal(out, data) {
			edits = append(edits, kubeletEdit{kf.config, out})
		}
	}
	for _, f := range kf.flagFiles {
		data, err := h.readOptional(f)
		if err != nil {
			return nil, err
		}
		if _, ok := flagValue(data, "container-runtime-endpoint"); ok {
			found = true
		}
		out := setFlagValue(data, "container-runtime-endpoint", endpoint)
		out = setFlagValue(out, "image-service-endpoint", endpoint)
		if !bytes.Equal(out, data) {
			edits = append(edits, kubeletEdit{f, out})
		}
	}
	if !found {
		return nil, fmt.Errorf("the kubelet's runtime endpoint is set in none of %s %s: use --kubelet-config",
			kf.config, strings.Join(kf.flagFiles, " "))
	}
	return edits, nil
}

// readOptional returns the content of host file p, or nil if there is none.
func (h *host) readOptional(p string) ([]byte, error) {
	data, err := os.ReadFile(h.path(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return data, nil
}

// yamlKeyRE matches a top-level "key: value" line; KubeletConfiguration's fields are top-level keys.
func yamlKeyRE(key string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `[ \t]*:[ \t]*(.*?)[ \t]*(?:#.*)?$`)
}

func yamlValue(data []byte, key string) (string, bool) {
	m := yamlKeyRE(key).FindSubmatch(data)
	if m == nil {
		return "", false
	}
	return unquote(string(m[1])), true
}

// setYAMLValue sets top-level key to value, editing the line in place (comments and layout stay); add appends the
// key when it is missing.
func setYAMLValue(data []byte, key, value string, add bool) []byte {
	if v, ok := yamlValue(data, key); ok {
		if v == value {
			return data
		}
		line := []byte(key + ": " + value)
		return yamlKeyRE(key).ReplaceAllLiteral(data, line)
	}
	if !add {
		return data
	}
	out := bytes.Clone(data)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, key+": "+value+"\n"...)
}

// flagRE matches --name=value or --name value, the value bare or quoted.
func flagRE(name string) *regexp.Regexp {
	return regexp.MustCompile(`(--` + regexp.QuoteMeta(name) + `(?:=|[ \t]+))("[^"]*"|'[^']*'|[^\s"']+)`)
}

func flagValue(data []byte, name string) (string, bool) {
	m := flagRE(name).FindSubmatch(data)
	if m == nil {
		return "", false
	}
	return unquote(string(m[2])), true
}

func setFlagValue(data []byte, name, value string) []byte {
	if v, ok := flagValue(data, name); !ok || v == value {
		return data
	}
	re := flagRE(name)
	return re.ReplaceAllFunc(data, func(m []byte) []byte {
		return append(bytes.Clone(re.FindSubmatch(m)[1]), value...)
	})
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}
