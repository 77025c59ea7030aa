//go:build integration

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// cdiSpec is the test's CDI spec (berth.test/dev): device nodes by number and by host path, a read-only mount of a
// host dir, env, an additional GID, and a hook of every kind that writes where the test can look.
func cdiSpec(mntDir, hookDir string) string {
	hook := func(name, target string) string {
		return fmt.Sprintf(`{"hookName":%q,"path":"/bin/sh","args":["sh","-c","cat > %s"]}`, name, target)
	}
	return fmt.Sprintf(`{
  "cdiVersion": "0.7.0",
  "kind": "berth.test/dev",
  "containerEdits": {"env": ["BERTH_CDI_SPEC=1"]},
  "devices": [
    {"name": "null", "containerEdits": {
      "deviceNodes": [{"path": "/dev/berth-cdi-null", "type": "c", "major": 1, "minor": 3}],
      "env": ["BERTH_CDI_NULL=yes"]}},
    {"name": "full", "containerEdits": {
      "deviceNodes": [{"path": "/dev/berth-cdi-zero", "hostPath": "/dev/zero"}],
      "mounts": [{"hostPath": %q, "containerPath": "/cdi-mnt", "options": ["ro", "bind"]}],
      "env": ["BERTH_CDI_FULL=yes"],
      "additionalGids": [4242],
      "hooks": [%s, %s, %s, %s, %s, %s]}},
    {"name": "ctl", "containerEdits": {
      "deviceNodes": [{"path": "/dev/berth-cdi-ctl", "hostPath": "/dev/loop-control", "permissions": "r"}]}}
  ]
}`, mntDir, hook("createRuntime", filepath.Join(hookDir, "createRuntime")),
		hook("createContainer", filepath.Join(hookDir, "createContainer")),
		hook("startContainer", "/tmp/startContainer"), // runs in the container
		hook("poststart", filepath.Join(hookDir, "poststart")),
		hook("prestart", filepath.Join(hookDir, "prestart")),
		hook("poststop", filepath.Join(hookDir, "poststop")))
}

// TestCDIDevices runs real containers with CDI devices from spec files in the daemon's spec dirs: through
// cdi_devices and through the annotation they see the device nodes (right numbers, usable), the mount, the env and
// the GID, and the hooks ran; an unknown device fails CreateContainer with NotFound naming it and leaves nothing; a
// malformed name is InvalidArgument naming the field; a spec file written after start is picked up; a broken spec
// file is logged by name and keeps no other device from working.
func TestCDIDevices(t *testing.T) {
	d := newPodDaemon(t)
	etcDir, runDir := filepath.Join(d.dir, "cdi-etc"), filepath.Join(d.dir, "cdi-run")
	mntDir, hookDir := filepath.Join(d.dir, "cdi-mnt"), filepath.Join(d.dir, "cdi-hooks")
	for _, dir := range []string{etcDir, runDir, mntDir, hookDir, filepath.Join(d.dir, "berth.d")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil { // as drivers write them: never half a file
			t.Fatal(err)
		}
	}
	write(filepath.Join(mntDir, "hello"), "from the host\n")
	write(filepath.Join(etcDir, "berth-test.json"), cdiSpec(mntDir, hookDir))
	write(filepath.Join(etcDir, "broken.yaml"), "cdiVersion: [\n")
	write(filepath.Join(d.dir, "berth.d", "50-cdi.toml"), fmt.Sprintf("[cdi]\nspec_dirs = [%q, %q]\n", etcDir, runDir))

	// After the pod is removed and berthd stopped (cleanups run last first), when its log is complete.
	t.Cleanup(func() {
		if log := d.log.String(); !strings.Contains(log, "CDI spec file has errors") || !strings.Contains(log, filepath.Join(etcDir, "broken.yaml")) {
			t.Errorf("berthd's log does not name the broken spec file:\n%s", log)
		}
	})
	rt, _ := d.startWithTestImage(t)
	pc := podConfig(d.dir, "cdi")
	pod := runTestPod(t, rt, pc)
	create := func(name string, devices []string, annotations map[string]string) (string, error) {
		cfg := containerConfig(name, "sleep", "3600")
		for _, n := range devices {
			cfg.CDIDevices = append(cfg.CDIDevices, &runtimeapi.CDIDevice{Name: n})
		}
		cfg.Annotations = annotations
		c, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: pc})
		if err != nil {
			return "", err
		}
		if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			t.Fatalf("StartContainer(%s): %v", name, err)
		}
		return c.ContainerId, nil
	}
	sh := func(t *testing.T, id, script string) string {
		t.Helper()
		res, err := rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", script}, Timeout: 10})
		if err != nil {
			t.Fatalf("exec %q: %v", script, err)
		}
		if res.ExitCode != 0 {
			t.Errorf("exec %q: exit %d, stdout %q, stderr %q", script, res.ExitCode, res.Stdout, res.Stderr)
		}
		return strings.TrimSpace(string(res.Stdout))
	}
	expect := func(t *testing.T, id, script, want string) {
		t.Helper()
		if got := sh(t, id, script); got != want {
			t.Errorf("%s: %q, want %q", script, got, want)
		}
	}

	t.Run("cdi_devices", func(t *testing.T) {
		id, err := create("field", []string{"berth.test/dev=null", "berth.test/dev=full"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		// stat prints the numbers in hex: /dev/null is 1:3, /dev/zero 1:5.
		expect(t, id, "stat -c '%t:%T %F' /dev/berth-cdi-null /dev/berth-cdi-zero", "1:3 character special file\n1:5 character special file")
		expect(t, id, "echo x > /dev/berth-cdi-null && cat /dev/berth-cdi-null && echo null ok", "null ok")
		expect(t, id, "head -c 4 /dev/berth-cdi-zero | od -An -tx1", "00 00 00 00")
		expect(t, id, "cat /cdi-mnt/hello", "from the host")
		expect(t, id, "touch /cdi-mnt/x 2>/dev/null && echo rw || echo ro", "ro")
		expect(t, id, "echo $BERTH_CDI_SPEC $BERTH_CDI_NULL $BERTH_CDI_FULL", "1 yes yes")
		expect(t, id, "id -G | tr ' ' '\\n' | grep -x 4242", "4242")
		if groups := containerState(t, rt, id).GetUser().GetLinux().GetSupplementalGroups(); !slices.Contains(groups, 4242) {
			t.Errorf("ContainerStatus supplemental groups %v lack the spec's 4242", groups)
		}
		expect(t, id, "grep -c '\"id\"' /tmp/startContainer", "1")
		checkHooks := func(hooks ...string) {
			t.Helper()
			for _, hook := range hooks {
				b, err := os.ReadFile(filepath.Join(hookDir, hook))
				if err != nil || !strings.Contains(string(b), id) {
					t.Errorf("%s hook: state %q (%v), want the container's OCI state", hook, b, err)
				}
			}
		}
		checkHooks("prestart", "createRuntime", "createContainer", "poststart")
		if _, err := os.Stat(filepath.Join(hookDir, "poststop")); err == nil {
			t.Error("poststop hook ran before the container was removed")
		}
		if _, err := rt.StopContainer(ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.RemoveContainer(ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
		checkHooks("poststop")
	})

	// Outside runc's default devices (null, zero, full, tty, random, urandom, ptmx), only the spec's cgroup rule
	// allows the node, and with "permissions": "r" only for reading.
	t.Run("device cgroup rule", func(t *testing.T) {
		if _, err := os.Stat("/dev/loop-control"); err != nil {
			t.Skipf("host device of the test spec: %v", err)
		}
		id, err := create("ctl", []string{"berth.test/dev=ctl"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		expect(t, id, "stat -c '%t:%T' /dev/berth-cdi-ctl", "a:ed") // 10:237
		expect(t, id, "exec 3</dev/berth-cdi-ctl && echo read ok", "read ok")
		expect(t, id, "(exec 3>/dev/berth-cdi-ctl) 2>/dev/null && echo wrote || echo refused", "refused")
	})

	t.Run("annotation", func(t *testing.T) {
		id, err := create("annotated", nil, map[string]string{"cdi.k8s.io/berth-test_null": "berth.test/dev=null"})
		if err != nil {
			t.Fatal(err)
		}
		expect(t, id, "stat -c '%t:%T' /dev/berth-cdi-null && echo $BERTH_CDI_NULL", "1:3\nyes")
		expect(t, id, "test -e /dev/berth-cdi-zero || test -e /cdi-mnt || echo only its device", "only its device")
	})

	t.Run("unknown device", func(t *testing.T) {
		before, _ := os.ReadDir(filepath.Join(d.dir, "root", "containers"))
		_, err := create("unknown", []string{"berth.test/dev=null", "berth.test/dev=nope"}, nil)
		if st := status.Convert(err); st.Code() != codes.NotFound || !strings.Contains(st.Message(), `"berth.test/dev=nope"`) ||
			!strings.Contains(st.Message(), "broken.yaml") {
			t.Fatalf("CreateContainer = %v, want NotFound naming the device and the spec file that failed to load", err)
		}
		list, err := rt.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list.Containers {
			if c.Metadata.Name == "unknown" {
				t.Errorf("the failed container is listed: %+v", c)
			}
		}
		if after, _ := os.ReadDir(filepath.Join(d.dir, "root", "containers")); len(after) != len(before) {
			t.Errorf("containers dir holds %v after the failed create, %v before", after, before)
		}
	})

	t.Run("malformed name", func(t *testing.T) {
		_, err := create("malformed", nil, map[string]string{"cdi.k8s.io/x": "berth.test/dev=null,gpu0"})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), `config.annotations["cdi.k8s.io/x"]`) {
			t.Fatalf("CreateContainer = %v, want InvalidArgument naming the annotation", err)
		}
	})

	t.Run("spec written after start", func(t *testing.T) {
		write(filepath.Join(runDir, "late.yaml"), "cdiVersion: 0.6.0\nkind: berth.test/late\ndevices:\n- name: one\n  containerEdits:\n    env: [BERTH_CDI_LATE=1]\n")
		// The watch refreshes the registry soon after the rename; until then the create fails and is undone.
		deadline := time.Now().Add(10 * time.Second)
		for {
			id, err := create("late", []string{"berth.test/late=one"}, nil)
			if err == nil {
				expect(t, id, "echo $BERTH_CDI_LATE", "1")
				break
			}
			if status.Code(err) != codes.NotFound || time.Now().After(deadline) {
				t.Fatalf("CreateContainer with a device of a spec written after start: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
