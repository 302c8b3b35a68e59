package integration_test

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDjangoWatchScript: scripts/django-watch.py on a Django project
// generated here as a user would (django-admin startproject, startapp, a
// model with an ImageField, a FileField with a default file, makemigrations,
// migrate): its output, with the connection settings, is a configuration
// that setup takes and `check` then finds nothing wrong with; and with it the cleaner deletes the file of a row the
// ORM deletes, and keeps the default file.
func TestDjangoWatchScript(t *testing.T) {
	t.Parallel()
	requireDjango(t)
	if out, err := exec.Command("/usr/bin/python3", "-c", "import PIL").CombinedOutput(); err != nil {
		msg := "Pillow is needed for an ImageField (apt-get install python3-pil): " + string(out)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	script, err := filepath.Abs("../scripts/django-watch.py")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{noSetup: true, watch: "watch: []"})
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	dir := t.TempDir()
	env := append(cleanEnv(), "PYTHONDONTWRITEBYTECODE=1", "DJANGO_SETTINGS_MODULE=mysite.settings")
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = filepath.Join(dir, "mysite")
		if name == "django-admin" && args[0] == "startproject" {
			cmd.Dir = dir
		}
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("django-admin", "startproject", "mysite")
	run("/usr/bin/python3", "manage.py", "startapp", "shop")
	media := e.root
	settings := filepath.Join(dir, "mysite", "mysite", "settings.py")
	b, err := os.ReadFile(settings)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "INSTALLED_APPS = [", "INSTALLED_APPS = [\n    'shop',", 1)
	s += `
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "HOST": ` + pyStr(u.Hostname()) + `, "PORT": ` + pyStr(u.Port()) +
		`, "NAME": ` + pyStr(strings.TrimPrefix(u.Path, "/")) + `, "USER": ` + pyStr(u.User.Username()) + `, "PASSWORD": ` + pyStr(pw) + `}}
MEDIA_ROOT = ` + pyStr(media) + `
`
	writeFile(t, settings, s)
	writeFile(t, filepath.Join(dir, "mysite", "shop", "models.py"), `from django.db import models


class Product(models.Model):
    name = models.CharField(max_length=100)
    photo = models.ImageField(upload_to="products/", blank=True)
    manual = models.FileField(upload_to="manuals/", default="defaults/manual.pdf")


class DigitalProduct(Product):
    download = models.FileField(upload_to="downloads/", blank=True)


class Tag(models.Model):
    label = models.CharField(max_length=50)
`)
	// What django-storages' S3Boto3Storage offers the script (the package
	// is not in Debian): a second settings module makes it the default.
	for p, body := range map[string]string{
		"storages/__init__.py":          "",
		"storages/backends/__init__.py": "",
		"storages/backends/s3boto3.py": `from django.conf import settings
from django.core.files.storage import Storage


class S3Boto3Storage(Storage):
    def __init__(self):
        self.bucket_name = settings.AWS_STORAGE_BUCKET_NAME
        self.location = getattr(settings, "AWS_LOCATION", "")
`,
		"mysite/settings_s3.py": "from mysite.settings import *  # noqa\nDEFAULT_FILE_STORAGE = 'storages.backends.s3boto3.S3Boto3Storage'\nAWS_STORAGE_BUCKET_NAME = 'shop-uploads'\nAWS_LOCATION = 'media'\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, "mysite", p)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "mysite", p), body)
	}
	run("/usr/bin/python3", "manage.py", "makemigrations", "shop")
	run("/usr/bin/python3", "manage.py", "migrate", "--no-input")

	out := run("/usr/bin/python3", script)
	t.Logf("django-watch.py printed:\n%s", out)
	for _, want := range []string{"  media:\n    type: local\n    root: '" + media + "'\n    keep: ['defaults/manual.pdf']",
		"  - table: public.shop_product\n    columns: [photo, manual]\n    storage: media"} {
		if !strings.Contains(out, want) {
			t.Errorf("the script's output lacks %q", want)
		}
	}
	if strings.Contains(out, "shop_tag") {
		t.Error("a model without files has a watch entry")
	}
	// An inherited field is in its parent's table, not the child's.
	if !strings.Contains(out, "  - table: public.shop_digitalproduct\n    columns: [download]\n") {
		t.Errorf("the child model's entry is not its own field alone:\n%s", out)
	}
	// With S3 as the default storage (a lazy wrapper around it).
	env = append(env, "DJANGO_SETTINGS_MODULE=mysite.settings_s3")
	s3out := run("/usr/bin/python3", script)
	env = env[:len(env)-1]
	for _, want := range []string{"  s3:\n    type: s3\n    bucket: 'shop-uploads'\n    prefix: 'media/'", "    columns: [photo, manual]\n    storage: s3"} {
		if !strings.Contains(s3out, want) {
			t.Errorf("with S3 the script's output lacks %q:\n%s", want, s3out)
		}
	}
	// The configuration: the connection, then what the script printed.
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(cfg), "storages:")
	writeFile(t, e.cfgPath, head+out+"\nhttp:\n  listen: \"\"\n")
	if out, code := e.cli("setup"); code != 0 {
		t.Fatalf("setup exited %d:\n%s", code, out)
	}
	if out, code := e.cli("check"); code != 0 {
		t.Fatalf("check of the script's configuration exited %d:\n%s", code, out)
	}
	e.put("defaults/manual.pdf")
	p := e.start()
	// A product made and deleted through the ORM, as the application does.
	shell := func(code string) string {
		return strings.TrimSpace(run("/usr/bin/python3", "manage.py", "shell", "-c", code))
	}
	photo := shell(`from django.core.files.base import ContentFile
from shop.models import Product
p = Product(name="lamp")
p.photo.save("lamp.png", ContentFile(b"png"), save=False)
p.save()
print(p.photo.name)`)
	if !e.exists(photo) {
		t.Fatalf("the ORM saved %q, which is not in the storage", photo)
	}
	shell(`from shop.models import Product
Product.objects.filter(name="lamp").delete()`)
	e.settle()
	e.expect([]string{"defaults/manual.pdf", ".trash/" + photo}, []string{photo})
	p.stop()
}

// pyStr writes s as a Python string literal.
func pyStr(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}
