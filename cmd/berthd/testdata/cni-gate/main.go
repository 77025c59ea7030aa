// Command cni-gate is a CNI plugin for the network integration tests. Chained after others, it fails the ADD of
// pods named "fail", hangs in the ADD of pods named "hang" and passes the result on for every other pod.
//
// With "gates": DIR in its config, files in DIR steer it: the ADD of pods named "hold" writes DIR/add-waiting and
// waits while DIR/hold-add exists; every DEL fails while DIR/fail-del exists.
package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

type conf struct {
	types.PluginConf
	Gates string `json:"gates,omitempty"`
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: add, Del: del}, version.All, "cni-gate")
}

func add(args *skel.CmdArgs) error {
	var c conf
	if err := json.Unmarshal(args.StdinData, &c); err != nil {
		return err
	}
	switch podName(args.Args) {
	case "fail":
		return errors.New("induced failure")
	case "hang":
		time.Sleep(time.Hour) // until berthd's setup timeout kills it
	case "hold":
		if c.Gates != "" {
			if err := os.WriteFile(filepath.Join(c.Gates, "add-waiting"), nil, 0o644); err != nil {
				return err
			}
			for exists(filepath.Join(c.Gates, "hold-add")) {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return err
	}
	return types.PrintResult(c.PrevResult, c.CNIVersion)
}

func del(args *skel.CmdArgs) error {
	var c conf
	if err := json.Unmarshal(args.StdinData, &c); err != nil {
		return err
	}
	if c.Gates != "" && exists(filepath.Join(c.Gates, "fail-del")) {
		return errors.New("induced DEL failure")
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func podName(cniArgs string) string {
	for kv := range strings.SplitSeq(cniArgs, ";") {
		if v, ok := strings.CutPrefix(kv, "K8S_POD_NAME="); ok {
			return v
		}
	}
	return ""
}
