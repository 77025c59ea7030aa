package deploy_test

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	manifestDir = "kubernetes"
	namespace   = "berth-system"
	account     = "berth-installer"
)

// decodeStrict decodes one YAML document into out through JSON, the way the API server does: field names match
// case-sensitively, and unknown fields and duplicate keys fail (encoding/json's DisallowUnknownFields alone would take
// "hostPid" for hostPID).
func decodeStrict(doc []byte, out any) error {
	data, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(data, out, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	return errors.Join(append(strict, err)...)
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// objects holds every object of the manifests, by kind.
type objects struct {
	namespaces   []corev1.Namespace
	accounts     []corev1.ServiceAccount
	roles        []rbacv1.ClusterRole
	bindings     []rbacv1.ClusterRoleBinding
	daemonSets   map[string]appsv1.DaemonSet // by file name
	fileOfObject map[string]string
}

func load(t *testing.T) objects {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	o := objects{daemonSets: map[string]appsv1.DaemonSet{}, fileOfObject: map[string]string{}}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(data), -1) {
			if err := o.add(f, []byte(doc)); err != nil {
				t.Errorf("%s document %d: %v", f, i+1, err)
			}
		}
	}
	return o
}

func (o *objects) add(file string, doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	decode := func(out any, meta *metav1.ObjectMeta) error {
		if err := decodeStrict(doc, out); err != nil {
			return err
		}
		o.fileOfObject[tm.Kind+"/"+meta.Name] = file
		return nil
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		var x corev1.Namespace
		err := decode(&x, &x.ObjectMeta)
		o.namespaces = append(o.namespaces, x)
		return err
	case "v1 ServiceAccount":
		var x corev1.ServiceAccount
		err := decode(&x, &x.ObjectMeta)
		o.accounts = append(o.accounts, x)
		return err
	case "rbac.authorization.k8s.io/v1 ClusterRole":
		var x rbacv1.ClusterRole
		err := decode(&x, &x.ObjectMeta)
		o.roles = append(o.roles, x)
		return err
	case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
		var x rbacv1.ClusterRoleBinding
		err := decode(&x, &x.ObjectMeta)
		o.bindings = append(o.bindings, x)
		return err
	case "apps/v1 DaemonSet":
		var x appsv1.DaemonSet
		err := decode(&x, &x.ObjectMeta)
		o.daemonSets[filepath.Base(file)] = x
		return err
	}
	return fmt.Errorf("unexpected object %s %s", tm.APIVersion, tm.Kind)
}

func TestDecodeStrictRejectsUnknownFields(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":  "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  lables: {}\n",
		"duplicate key":  "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  name: y\n",
		"wrong type":     "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [x]\n",
		"misplaced spec": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  spec: {}\n",
		"wrong case":     "apiVersion: v1\nkind: Namespace\nmetadata:\n  Name: x\n",
	} {
		var ns corev1.Namespace
		if err := decodeStrict([]byte(doc), &ns); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestManifests(t *testing.T) {
	o := load(t)
	if len(o.namespaces) != 1 || o.namespaces[0].Name != namespace {
		t.Errorf("namespaces %v, want one %s", o.namespaces, namespace)
	}
	if len(o.accounts) != 1 || o.accounts[0].Name != account || o.accounts[0].Namespace != namespace {
		t.Errorf("service accounts %v, want %s/%s", o.accounts, namespace, account)
	}

	// RBAC: read and patch nodes, list pods; nothing else.
	if len(o.roles) != 1 {
		t.Fatalf("%d cluster roles, want 1", len(o.roles))
	}
	wantRules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}},
	}
	if got := o.roles[0].Rules; fmt.Sprint(got) != fmt.Sprint(wantRules) {
		t.Errorf("cluster role rules %+v, want %+v", got, wantRules)
	}
	if len(o.bindings) != 1 {
		t.Fatalf("%d cluster role bindings, want 1", len(o.bindings))
	}
	b := o.bindings[0]
	wantSubject := rbacv1.Subject{Kind: "ServiceAccount", Name: account, Namespace: namespace}
	if b.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: o.roles[0].Name}) ||
		len(b.Subjects) != 1 || b.Subjects[0] != wantSubject {
		t.Errorf("binding %+v %+v does not bind %s to %s", b.RoleRef, b.Subjects, o.roles[0].Name, account)
	}

	wantArgs := map[string][]string{
		"daemonset.yaml": {"install", "--default-network", "--sleep"},
		"switch.yaml":    {"install", "--switch", "--default-network", "--sleep"},
		"uninstall.yaml": {"uninstall", "--sleep"},
	}
	if len(o.daemonSets) != len(wantArgs) {
		t.Errorf("daemon sets in %v, want %v", slices.Sorted(maps.Keys(o.daemonSets)), slices.Sorted(maps.Keys(wantArgs)))
	}
	var images []string
	for file, ds := range o.daemonSets {
		t.Run(file, func(t *testing.T) {
			checkDaemonSet(t, ds)
			c := ds.Spec.Template.Spec.Containers[0]
			if !slices.Equal(c.Args, wantArgs[file]) {
				t.Errorf("args %q, want %q", c.Args, wantArgs[file])
			}
			images = append(images, c.Image)
		})
	}
	if len(slices.Compact(slices.Sorted(slices.Values(images)))) != 1 {
		t.Errorf("the daemon sets use different images: %q", images)
	}
	if sel := o.daemonSets["switch.yaml"].Spec.Template.Spec.NodeSelector; sel["berth.dev/switch"] != "true" {
		t.Errorf("switch daemon set runs without the opt-in label: node selector %v", sel)
	}
}

func checkDaemonSet(t *testing.T, ds appsv1.DaemonSet) {
	t.Helper()
	if ds.Namespace != namespace {
		t.Errorf("namespace %q, want %q", ds.Namespace, namespace)
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("selector %v does not select the template's labels %v (%v)", ds.Spec.Selector, ds.Spec.Template.Labels, err)
	}
	us := ds.Spec.UpdateStrategy
	if us.Type != appsv1.RollingUpdateDaemonSetStrategyType || us.RollingUpdate == nil ||
		us.RollingUpdate.MaxUnavailable == nil || us.RollingUpdate.MaxUnavailable.String() != "1" {
		t.Errorf("update strategy %+v, want a rolling update with maxUnavailable 1", us)
	}

	spec := ds.Spec.Template.Spec
	if spec.ServiceAccountName != account {
		t.Errorf("service account %q, want %q", spec.ServiceAccountName, account)
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priority class %q", spec.PriorityClassName)
	}
	if !spec.HostPID || !spec.HostNetwork {
		t.Errorf("hostPID %v hostNetwork %v, want both", spec.HostPID, spec.HostNetwork)
	}
	if spec.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("node selector %v lacks kubernetes.io/os: linux", spec.NodeSelector)
	}
	if len(spec.Tolerations) != 1 || spec.Tolerations[0] != (corev1.Toleration{Operator: corev1.TolerationOpExists}) {
		t.Errorf("tolerations %+v, want exactly [{operator: Exists}]", spec.Tolerations)
	}
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Fatalf("%d containers, %d init containers; want one container", len(spec.Containers), len(spec.InitContainers))
	}
	c := spec.Containers[0]
	if sc := c.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Errorf("container is not privileged: %+v", sc)
	}
	if !strings.Contains(c.Image, "/") || strings.HasSuffix(c.Image, ":") {
		t.Errorf("image %q", c.Image)
	}
	var nodeName bool
	for _, e := range c.Env {
		if e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			nodeName = true
		}
	}
	if !nodeName {
		t.Errorf("env %+v lacks NODE_NAME from spec.nodeName", c.Env)
	}

	// The host's / at /host, read-write, and no other volume.
	if len(spec.Volumes) != 1 || len(c.VolumeMounts) != 1 {
		t.Fatalf("volumes %+v mounts %+v, want the host's root only", spec.Volumes, c.VolumeMounts)
	}
	v, m := spec.Volumes[0], c.VolumeMounts[0]
	if v.HostPath == nil || v.HostPath.Path != "/" || v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectory {
		t.Errorf("volume %+v is not the host's / directory", v)
	}
	if m.Name != v.Name || m.MountPath != "/host" || m.ReadOnly || m.SubPath != "" {
		t.Errorf("mount %+v, want volume %s at /host read-write", m, v.Name)
	}
}

// kustomization is the part of kustomize's Kustomization the shipped file may use.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

func TestKustomization(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(manifestDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := decodeStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml is %s %s", k.APIVersion, k.Kind)
	}
	// Every manifest but the uninstaller, which is applied on its own.
	files, _ := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && b != "uninstall.yaml" {
			want = append(want, b)
		}
	}
	if got := slices.Sorted(slices.Values(k.Resources)); !slices.Equal(got, want) {
		t.Errorf("resources %q, want %q", got, want)
	}
	o := load(t)
	for _, img := range k.Images {
		for file, ds := range o.daemonSets {
			if name := imageName(ds.Spec.Template.Spec.Containers[0].Image); name != img.Name {
				t.Errorf("kustomization image %q does not match %s's %q", img.Name, file, ds.Spec.Template.Spec.Containers[0].Image)
			}
		}
	}
}

// imageName strips the tag from an image reference (a registry's port is not a tag).
func imageName(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}
