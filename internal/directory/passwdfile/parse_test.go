package passwdfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const sample = "# users\n" +
	"alice@example.com:{SHA512-CRYPT}$6$salt$hash::::::\n" +
	"\n" +
	"bob@example.com:{PLAIN}pw:1000:1000:Bob:/home/bob:/bin/sh:userdb_mail=maildir:~/Maildir quota_rule=*:storage=1G\r\n" +
	":skipped\n" +
	"carol@example.com:{SSHA512}abc\n" +
	"dave\n" +
	"carol@example.com:{PLAIN}second\n" +
	"erin@example.com:5f4dcc3b5aa765d61d8327deb882cf99[34]::::::nologin reason=x"

func TestParse(t *testing.T) {
	f, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.Bytes()); got != sample {
		t.Fatalf("Bytes() changed the file:\n%q\nwant\n%q", got, sample)
	}
	want := []Entry{
		{Line: 2, User: "alice@example.com", Password: "{SHA512-CRYPT}$6$salt$hash"},
		{Line: 4, User: "bob@example.com", Password: "{PLAIN}pw", UID: "1000", GID: "1000", Gecos: "Bob", Home: "/home/bob", Shell: "/bin/sh",
			Extra: "userdb_mail=maildir:~/Maildir quota_rule=*:storage=1G"},
		{Line: 6, User: "carol@example.com", Password: "{SSHA512}abc"},
		{Line: 7, User: "dave"},
		{Line: 8, User: "carol@example.com", Password: "{PLAIN}second"},
		{Line: 9, User: "erin@example.com", Password: "5f4dcc3b5aa765d61d8327deb882cf99[34]", Extra: "nologin reason=x"},
	}
	if got := f.Entries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Entries:\n%+v\nwant\n%+v", got, want)
	}
	if e, ok := f.Lookup("carol@example.com"); !ok || e.Password != "{SSHA512}abc" {
		t.Errorf("Lookup(carol) = %+v, %v; want the first line", e, ok)
	}
	if _, ok := f.Lookup("# users"); ok {
		t.Error("a comment was looked up as a user")
	}
	bob, _ := f.Lookup("bob@example.com")
	if got := bob.ExtraFields(); !reflect.DeepEqual(got, []string{"userdb_mail=maildir:~/Maildir", "quota_rule=*:storage=1G"}) {
		t.Errorf("ExtraFields = %q", got)
	}
	if v, ok := bob.ExtraField("userdb_mail"); !ok || v != "maildir:~/Maildir" {
		t.Errorf("ExtraField(userdb_mail) = %q, %v", v, ok)
	}
	erin, _ := f.Lookup("erin@example.com")
	if v, ok := erin.ExtraField("nologin"); !ok || v != "" {
		t.Errorf("ExtraField(nologin) = %q, %v; want a bare key", v, ok)
	}
	if _, err := Parse([]byte("a:b\x00c\n")); err == nil {
		t.Error("Parse accepted a NUL byte")
	}
}

func TestStored(t *testing.T) {
	for pw, want := range map[string]string{
		"{SHA512-CRYPT}$6$s$h":                 "{SHA512-CRYPT}$6$s$h",
		"$6$s$h":                               "$6$s$h",
		"plain":                                "plain",
		"5f4dcc3b5aa765d61d8327deb882cf99[34]": "{PLAIN-MD5}5f4dcc3b5aa765d61d8327deb882cf99",
		"0123456789abcdef0123456789abcdef[56]": "{DIGEST-MD5}0123456789abcdef0123456789abcdef",
		"abXYZ12345678[13]":                    "{CRYPT}abXYZ12345678",
		"{PLAIN}x[34]":                         "{PLAIN}x[34]",
		"[34]":                                 "[34]",
	} {
		if got := (Entry{Password: pw}).Stored(); got != want {
			t.Errorf("Stored(%q) = %q, want %q", pw, got, want)
		}
	}
}

func TestFileChanges(t *testing.T) {
	f, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.SetPassword("carol@example.com", "{PLAIN}new"))
	must(f.SetPassword("dave", "{PLAIN}dave"))
	must(f.SetExtraField("alice@example.com", LockField, "y"))
	must(f.SetExtraField("bob@example.com", "quota_rule", "*:storage=2G"))
	must(f.SetExtraField("erin@example.com", "nologin", "")) // already there: no change
	must(f.RemoveExtraField("dave", LockField))              // nothing to remove: no change
	want := strings.NewReplacer(
		"carol@example.com:{SSHA512}abc\n", "carol@example.com:{PLAIN}new\n",
		"carol@example.com:{PLAIN}second\n", "carol@example.com:{PLAIN}new\n",
		"dave\n", "dave:{PLAIN}dave\n",
		"$6$salt$hash::::::\n", "$6$salt$hash::::::fail=y\n",
		"userdb_mail=maildir:~/Maildir quota_rule=*:storage=1G\r\n", "userdb_mail=maildir:~/Maildir quota_rule=*:storage=2G\r\n",
	).Replace(sample)
	if got := string(f.Bytes()); got != want {
		t.Fatalf("after the changes:\n%s\nwant\n%s", got, want)
	}
	if e, _ := f.Lookup("alice@example.com"); !e.Locked() {
		t.Error("alice is not Locked after SetExtraField(fail)")
	}
	must(f.RemoveExtraField("alice@example.com", LockField))
	if e, _ := f.Lookup("alice@example.com"); e.Locked() || e.Extra != "" {
		t.Errorf("alice after RemoveExtraField: %+v", e)
	}
	must(f.SetExtraField("dave", LockField, "y"))
	if e, _ := f.Lookup("dave"); e.Extra != "fail=y" || e.Password != "{PLAIN}dave" {
		t.Errorf("dave padded to eight fields: %+v", e)
	}

	if err := f.SetPassword("nobody@example.com", "{PLAIN}x"); !errors.Is(err, ErrNoSuchAccount) {
		t.Errorf("SetPassword(unknown) = %v, want ErrNoSuchAccount", err)
	}
	for _, bad := range []string{"", "{PLAIN}a:b", "{PLAIN}a\nb"} {
		if err := f.SetPassword("alice@example.com", bad); err == nil {
			t.Errorf("SetPassword accepted %q", bad)
		}
	}
	for _, bad := range [][2]string{{"", "v"}, {"a=b", "v"}, {"a b", "v"}, {"k", "v w"}, {"k", "v\n"}} {
		if err := f.SetExtraField("alice@example.com", bad[0], bad[1]); err == nil {
			t.Errorf("SetExtraField accepted %q=%q", bad[0], bad[1])
		}
	}
	for _, bad := range []string{"", "#x", "a:b", "a\n"} {
		if err := f.SetPassword(bad, "{PLAIN}x"); err == nil {
			t.Errorf("SetPassword accepted user %q", bad)
		}
	}

	old, err := Parse([]byte("u:{PLAIN}p:1:1::/home/u:::maildir:~/Mail\n"))
	must(err)
	if err := old.SetExtraField("u", LockField, "y"); err == nil {
		t.Error("SetExtraField changed an old-format line")
	}
}
