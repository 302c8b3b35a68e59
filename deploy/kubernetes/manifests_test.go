package kubernetes

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/cdc-cleaner/cdc-cleaner/config"
)

// manifests decodes every document of every manifest strictly (an unknown
// field is an error) into the official Kubernetes API type of its kind.
type manifests struct {
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	deployments map[string]*appsv1.Deployment
	jobs        map[string]*batchv1.Job
}

func load(t *testing.T) manifests {
	t.Helper()
	m := manifests{map[string]*corev1.ConfigMap{}, map[string]*corev1.Secret{}, map[string]*appsv1.Deployment{}, map[string]*batchv1.Job{}}
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(b), "\n---\n") {
			js, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			var meta struct{ Kind string }
			if err := json.Unmarshal(js, &meta); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			var obj any
			switch meta.Kind {
			case "ConfigMap":
				obj = &corev1.ConfigMap{}
			case "Secret":
				obj = &corev1.Secret{}
			case "Deployment":
				obj = &appsv1.Deployment{}
			case "Job":
				obj = &batchv1.Job{}
			default:
				t.Fatalf("%s document %d: kind %q is not one the test knows", f, i, meta.Kind)
			}
			dec := json.NewDecoder(bytes.NewReader(js))
			dec.DisallowUnknownFields()
			if err := dec.Decode(obj); err != nil {
				t.Fatalf("%s document %d (%s): %v", f, i, meta.Kind, err)
			}
			switch o := obj.(type) {
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			case *corev1.Secret:
				m.secrets[o.Name] = o
			case *appsv1.Deployment:
				m.deployments[o.Name] = o
			case *batchv1.Job:
				m.jobs[o.Name] = o
			}
		}
	}
	return m
}

// TestManifests: the cleaner's containers read a configuration that the
// cleaner itself loads (every key one it knows, every environment
// variable the Secrets give one it knows), expose the port its http.listen
// names, probe /healthz and /readyz there, and run as a non-root user on a
// read-only root file system, with memory sized from make bench.
func TestManifests(t *testing.T) {
	m := load(t)
	cm := m.configMaps["cdc-cleaner"]
	if cm == nil {
		t.Fatal("no ConfigMap cdc-cleaner")
	}
	type cleaner struct {
		where string
		pod   corev1.PodSpec
		c     corev1.Container
	}
	var cleaners []cleaner
	for name, d := range m.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			if strings.Contains(c.Image, "cdc-cleaner") {
				cleaners = append(cleaners, cleaner{"Deployment " + name, d.Spec.Template.Spec, c})
			}
		}
	}
	for name, j := range m.jobs {
		for _, c := range j.Spec.Template.Spec.Containers {
			cleaners = append(cleaners, cleaner{"Job " + name, j.Spec.Template.Spec, c})
		}
	}
	if len(cleaners) != 3 {
		t.Fatalf("%d cleaner containers, want the sidecar, the Deployment's and the setup Job's", len(cleaners))
	}
	if d := m.deployments["cdc-cleaner"]; d == nil || d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Error("the cleaner's own Deployment does not run two replicas (one streams, one stands by)")
	} else if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		// Only the streaming replica is ready: a rolling update waits for
		// a new pod's readiness for ever while an old one holds the slot.
		t.Error("the cleaner's own Deployment must be replaced with strategy Recreate")
	}
	// A pod-level user would force the application's container too.
	if app := m.deployments["app"]; app != nil && app.Spec.Template.Spec.SecurityContext != nil && app.Spec.Template.Spec.SecurityContext.RunAsUser != nil {
		t.Error("the sidecar's pod sets runAsUser for the application's container too")
	}
	if j := m.jobs["cdc-cleaner-setup"]; j == nil || !slices.Contains(j.Spec.Template.Spec.Containers[0].Args, "--role") {
		t.Error("the setup Job does not create run's role (setup --role)")
	} else if s := m.secrets["cdc-cleaner"]; s != nil {
		args := j.Spec.Template.Spec.Containers[0].Args
		role := args[slices.Index(args, "--role")+1]
		if u, err := url.Parse(s.StringData["CDC_CLEANER_POSTGRES_URL"]); err != nil || u.User.Username() != role {
			t.Errorf("the setup Job creates role %s, but run connects as %v", role, u.User)
		}
	}
	for _, cl := range cleaners {
		c := cl.c
		if len(c.Args) < 3 || !slices.Contains([]string{"run", "setup"}, c.Args[0]) || c.Args[1] != "--config" {
			t.Errorf("%s: args %q, want run or setup --config FILE", cl.where, c.Args)
			continue
		}
		// The configuration file, as mounted, with the environment the
		// Secrets give: loaded by the cleaner's own loader.
		var mount *corev1.VolumeMount
		for i, vm := range c.VolumeMounts {
			if strings.HasPrefix(c.Args[2], vm.MountPath+"/") {
				mount = &c.VolumeMounts[i]
			}
		}
		if mount == nil {
			t.Errorf("%s: no volume is mounted where %s is", cl.where, c.Args[2])
			continue
		}
		key := strings.TrimPrefix(c.Args[2], mount.MountPath+"/")
		var fromCM bool
		for _, v := range cl.pod.Volumes {
			if v.Name == mount.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
				fromCM = true
			}
		}
		body, ok := cm.Data[key]
		if !fromCM || !ok {
			t.Errorf("%s: %s is not key %q of ConfigMap %s", cl.where, c.Args[2], key, cm.Name)
			continue
		}
		environ := secretEnv(t, m, cl.where, c)
		path := filepath.Join(t.TempDir(), key)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path, environ)
		if err != nil {
			t.Errorf("%s: the cleaner refuses its configuration: %v", cl.where, err)
			continue
		}
		// Security and resources.
		sc, psc := c.SecurityContext, cl.pod.SecurityContext
		nonRoot := sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot || psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !nonRoot {
			t.Errorf("%s: not a non-root container on a read-only root file system without privilege escalation", cl.where)
		}
		if mem := c.Resources.Requests.Memory(); mem.Value() < 48<<20 || c.Resources.Limits.Memory().Value() < mem.Value() {
			t.Errorf("%s: memory request %v, limit %v; make bench measures about 45 MB at peak", cl.where, mem, c.Resources.Limits.Memory())
		}
		if c.Args[0] != "run" {
			continue
		}
		// Every local storage's root is on a volume of the container.
		for name, st := range cfg.Storages {
			if st.Type != "local" {
				continue
			}
			mounted := false
			for _, vm := range c.VolumeMounts {
				if st.Root == vm.MountPath || strings.HasPrefix(st.Root, vm.MountPath+"/") {
					mounted = !vm.ReadOnly
				}
			}
			if !mounted {
				t.Errorf("%s: storage %s's root %s is on no writable volume of the container", cl.where, name, st.Root)
			}
		}
		// The port http.listen names, and the probes on it.
		_, port, _ := strings.Cut(cfg.HTTP.Listen, ":")
		var named string
		for _, p := range c.Ports {
			if p.ContainerPort > 0 && port == itoa(p.ContainerPort) {
				named = p.Name
			}
		}
		if named == "" {
			t.Errorf("%s: no container port is http.listen's %s", cl.where, cfg.HTTP.Listen)
		}
		probe := func(what string, p *corev1.Probe, path string) {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != named {
				t.Errorf("%s: %s is not GET %s on port %s", cl.where, what, path, named)
			}
		}
		probe("the liveness probe", c.LivenessProbe, "/healthz")
		if cl.where == "Deployment cdc-cleaner" {
			probe("the readiness probe", c.ReadinessProbe, "/readyz")
		} else if c.ReadinessProbe != nil {
			t.Errorf("%s: a readiness probe on a sidecar takes the application out of its Service while the cleaner stands by", cl.where)
		}
	}
}

// secretEnv returns the environment the container gets from Secrets, as
// KEY=VALUE; a Secret or key it names that the manifests lack fails.
func secretEnv(t *testing.T, m manifests, where string, c corev1.Container) []string {
	var env []string
	for _, ef := range c.EnvFrom {
		if ef.SecretRef == nil {
			continue
		}
		s := m.secrets[ef.SecretRef.Name]
		if s == nil {
			t.Errorf("%s: Secret %s is not in the manifests", where, ef.SecretRef.Name)
			continue
		}
		for k, v := range s.StringData {
			env = append(env, k+"="+v)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			env = append(env, e.Name+"="+e.Value)
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		s := m.secrets[ref.Name]
		if s == nil || s.StringData[ref.Key] == "" {
			t.Errorf("%s: %s comes from key %s of Secret %s, which the manifests lack", where, e.Name, ref.Key, ref.Name)
			continue
		}
		env = append(env, e.Name+"="+s.StringData[ref.Key])
	}
	return env
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
