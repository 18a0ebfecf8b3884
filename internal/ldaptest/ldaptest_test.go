package ldaptest

import (
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// cryptHash is `openssl passwd -6 -salt ldaptestsalt crypt-secret`
// (sha512-crypt, 5000 rounds), which slapd verifies through the system
// crypt(3).
const cryptHash = "{CRYPT}$6$ldaptestsalt$aXY/EvaqEYUYoZvEqR084JcPRUrHE8JBMlu8R0VghXe1/LKRsy9AmXJefGngMysPox6TLLw8yEAAqaag6garn/"

func TestStartBindEntry(t *testing.T) {
	in := Start(t)

	type user struct {
		uid, password, stored string
	}
	users := []user{
		{"ssha", "ssha-secret", SSHA("ssha-secret")},
		{"crypt", "crypt-secret", cryptHash},
	}
	if in.SHA2 {
		users = append(users, user{"ssha512", "ssha512-secret", SSHA512("ssha512-secret")})
	} else {
		t.Log("pw-sha2 module not installed: {SSHA512} not tested")
	}
	for _, u := range users {
		t.Run(u.uid, func(t *testing.T) {
			dn := in.AddUser(t, u.uid, u.uid+"@example.test", u.stored)
			if err := in.Bind(dn, u.password); err != nil {
				t.Errorf("bind with the right password: %v", err)
			}
			if err := in.Bind(dn, u.password+"x"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
				t.Errorf("bind with a wrong password: %v, want invalidCredentials", err)
			}
			e := in.Entry(t, dn)
			if got := e["userPassword"]; len(got) != 1 || got[0] != u.stored {
				t.Errorf("userPassword = %q, want %q", got, u.stored)
			}
			if got := e["mail"]; len(got) != 1 || got[0] != u.uid+"@example.test" {
				t.Errorf("mail = %q", got)
			}
			if len(e["entryUUID"]) != 1 {
				t.Errorf("no operational attributes: %v", e)
			}
		})
	}

	if e := in.Entry(t, in.UserDN("nobody")); e != nil {
		t.Errorf("Entry of a missing DN = %v, want nil", e)
	}
	if err := in.Bind(in.AdminDN, in.AdminPassword); err != nil {
		t.Errorf("admin bind: %v", err)
	}
	if !strings.Contains(in.Log(), "BIND dn=") {
		t.Errorf("slapd log has no stats lines:\n%s", in.Log())
	}
}

// The default policy enforces pwdAccountLockedTime, and a cleartext
// userPassword write is stored hashed.
func TestPolicy(t *testing.T) {
	in := Start(t)
	dn := in.AddUser(t, "alice", "alice@example.test", SSHA("old"))

	in.SetAttr(t, dn, "pwdAccountLockedTime", "000001010000Z")
	if err := in.Bind(dn, "old"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("bind while locked: %v, want invalidCredentials", err)
	}
	in.SetAttr(t, dn, "pwdAccountLockedTime")
	if err := in.Bind(dn, "old"); err != nil {
		t.Errorf("bind after unlock: %v", err)
	}

	in.SetAttr(t, dn, "userPassword", "cleartext")
	if got := in.Entry(t, dn)["userPassword"]; len(got) != 1 || !strings.HasPrefix(got[0], "{SSHA}") {
		t.Errorf("cleartext write stored as %q, want an {SSHA} value", got)
	}
	if err := in.Bind(dn, "cleartext"); err != nil {
		t.Errorf("bind with the new password: %v", err)
	}

	in.SetAttr(t, dn, "pwdChangedTime", "20200101000000Z")
	if got := in.Entry(t, dn)["pwdChangedTime"]; len(got) != 1 || got[0] != "20200101000000Z" {
		t.Errorf("pwdChangedTime = %q after SetAttr", got)
	}
}
