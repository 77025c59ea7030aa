// Command cni-gate is a CNI plugin for the network integration tests. Chained after others, it fails the ADD of
// pods named "fail", hangs in the ADD of pods named "hang" and passes the result on for every other pod.
package main

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: add, Del: func(*skel.CmdArgs) error { return nil }}, version.All, "cni-gate")
}

func add(args *skel.CmdArgs) error {
	switch podName(args.Args) {
	case "fail":
		return errors.New("induced failure")
	case "hang":
		time.Sleep(time.Hour) // until berthd's setup timeout kills it
	}
	var conf types.PluginConf
	if err := json.Unmarshal(args.StdinData, &conf); err != nil {
		return err
	}
	if err := version.ParsePrevResult(&conf); err != nil {
		return err
	}
	return types.PrintResult(conf.PrevResult, conf.CNIVersion)
}

func podName(cniArgs string) string {
	for kv := range strings.SplitSeq(cniArgs, ";") {
		if v, ok := strings.CutPrefix(kv, "K8S_POD_NAME="); ok {
			return v
		}
	}
	return ""
}
