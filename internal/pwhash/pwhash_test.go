package pwhash

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// wrongCandidates returns candidates that must not match pw: each differs
// from it by one character, or is empty.
func wrongCandidates(pw string, slow bool) [][]byte {
	b := []byte(pw)
	first := append([]byte{b[0] ^ 0x01}, b[1:]...)
	last := append(append([]byte{}, b[:len(b)-1]...), b[len(b)-1]^0x01)
	if slow {
		return [][]byte{last, nil}
	}
	return [][]byte{first, last, append(append([]byte{}, b...), 'x'), b[:len(b)-1], nil}
}

func TestVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			pw := v.password
			if pw == "" {
				pw = testPassword
			}
			h, err := Parse(v.stored)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if h.Scheme() != v.scheme || h.Cost() != v.cost {
				t.Errorf("Scheme, Cost = %s, %s; want %s, %s", h.Scheme(), h.Cost(), v.scheme, v.cost)
			}
			if !h.Verify([]byte(pw)) {
				t.Errorf("Verify(password) = false")
			}
			for _, c := range wrongCandidates(pw, v.cost == Slow) {
				if h.Verify(c) {
					t.Errorf("Verify(%q) = true", c)
				}
			}
		})
	}
}

func TestSchemeCaseInsensitive(t *testing.T) {
	for _, s := range []string{
		"{ssha}224wRreQzyoepx227cGi9GVEDRXAAHq+",
		"{Sha256.hex}48486e1514e842346ff405b1e45f44059ae82619f2306f99d0940dcb386e91f7",
		"{cleartext}Tr0ub4dor&3",
		"{Md5-Crypt}$1$bkQxBmYO$44Q9bHM61.w0o/P8cGNFY0",
		"{pbkdf2}$1$9NL9YfUo6VM/3meU$1000$f90425c105984b490e790a1fdc5dcd2bb94908fd",
		"{pbkdf2-sha256}10000$fL1mOwmM59TjcvGOqWv8vg$72F.x51XVYjeXAUFMOS7hUb8jhyC6TnodAdh5Qis73c",
		"{argon2}$argon2i$v=19$m=256,t=2,p=2$eGS+7MkU1YtedRcmdilf+Q$qIB4NC1JeQGG0qKgZaKrOz9xs+ktzuVyF4ucP6dS+g8",
	} {
		h, err := Parse(s)
		if err != nil {
			t.Errorf("Parse(%q): %v", s, err)
			continue
		}
		if !h.Verify([]byte(testPassword)) {
			t.Errorf("Parse(%q).Verify(password) = false", s)
		}
	}
}

// Hashes with parameters far beyond the defaults; the value after each
// prefix is a real one (see vectors) with only the cost changed.
var costly = []string{
	"{ARGON2ID}$argon2id$v=19$m=4194304,t=3,p=1$7HRuqDdSZuh6E+oVeWkC4A$D+dItMpKCEjz8tq7+q3TLc7CBR4Q2pBwwNhZcks8Ar4",
	"{ARGON2ID}$argon2id$v=19$m=65536,t=100,p=1$7HRuqDdSZuh6E+oVeWkC4A$D+dItMpKCEjz8tq7+q3TLc7CBR4Q2pBwwNhZcks8Ar4",
	"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=64$7HRuqDdSZuh6E+oVeWkC4A$D+dItMpKCEjz8tq7+q3TLc7CBR4Q2pBwwNhZcks8Ar4",
	"$argon2id$v=19$m=99999999999999999999999,t=3,p=1$7HRuqDdSZuh6E+oVeWkC4A$D+dItMpKCEjz8tq7+q3TLc7CBR4Q2pBwwNhZcks8Ar4",
	"$2b$31$lsSFJlYqUxCo6/1gALN92eFnpCU7l2rk03gX/FZ5dOc2Z4SQ3PkwO",
	"{BLF-CRYPT}$2y$15$zZ4LdkN0RIMVyEwUyoSQ0.YEH9NLgrM/OBYyLbTCMFQBe9A2nnlCO",
	"$6$rounds=999999999$Ldn5OVBIuUIW25nw$Efze/orVagLjaB9JGz.npFhxDlGUMrvR5d4pEH5uLlr.HfgO6DqD.SPq9XR2YTyTQTPXaFHw/kN2b9Hz8pHra0",
	"$5$rounds=18446744073709551616$OLK/si8BcS2RAVLj$jYaYa3Ow1IstYkwSYkgg1taYGfRTSJtaMfXiLsSSYL1",
	"{PBKDF2}$1$/sZooBfXPiZe2JV1$1000000000$371f90237be6c54b06818821a258925d1fa9939f",
	"{PBKDF2-SHA512}1000000000$gxoWk09exsgzsRJ2PaLMaA$2BHED48xeHXKKAqfeoTYQYJwVo3jYa8csknm1Z9Rz03O9mKhGBQc9F11VGCb/EEc5jh5Cg.4HVAX4/cbusZp2w",
	// N = 2^18, r = 32: 1 GiB.
	"$y$jFT$TBnGmLq4oVWsVuF8kdneT1$zt2G/bkDNr49vMB8emSavgtKvitGW8/CrSx/vvEw8o3",
	// N = 2^64.
	"$y$jzT$TBnGmLq4oVWsVuF8kdneT1$zt2G/bkDNr49vMB8emSavgtKvitGW8/CrSx/vvEw8o3",
}

var malformedHashes = []string{
	"{SSHA}",
	"{PLAIN}",
	"{SSHA}!!!!not base64!!!!",
	"{SSHA}h0Vy56WuaklGamrFeLmK26eMaqY=",   // a digest without salt
	"{SHA}h0Vy56WuaklGamrFeLmK26eMa",       // truncated
	"{SHA256}h0Vy56WuaklGamrFeLmK26eMaqY=", // wrong length
	"{SHA.HEX}zz",
	"{PLAIN.B64}@@@@",
	"{SHA512-CRYPT}$6$fyYe4ZhYokyvXlfE",
	"{SHA512-CRYPT}$6$fyYe4ZhYokyvXlfE$CdoTUZM40u7ftN6w5dm53mydR0BTvp7LhZ26eh.0/SZaHlA/47iSfVif1NiIkPHSUh7AxnB7CidgB9s.1a2AQ",
	"$6$rounds=abc$Ldn5OVBIuUIW25nw$Efze/orVagLjaB9JGz.npFhxDlGUMrvR5d4pEH5uLlr.HfgO6DqD.SPq9XR2YTyTQTPXaFHw/kN2b9Hz8pHra0",
	"$6$rounds=999$Ldn5OVBIuUIW25nw$Efze/orVagLjaB9JGz.npFhxDlGUMrvR5d4pEH5uLlr.HfgO6DqD.SPq9XR2YTyTQTPXaFHw/kN2b9Hz8pHra0",
	"$6$rounds=0$Ldn5OVBIuUIW25nw$Efze/orVagLjaB9JGz.npFhxDlGUMrvR5d4pEH5uLlr.HfgO6DqD.SPq9XR2YTyTQTPXaFHw/kN2b9Hz8pHra0",
	"$6$Ldn5OVBIuUIW25nwX$Efze/orVagLjaB9JGz.npFhxDlGUMrvR5d4pEH5uLlr.HfgO6DqD.SPq9XR2YTyTQTPXaFHw/kN2b9Hz8pHra0",
	"$6$$Efze/orVagLjaB9JGz.npFhxDlGUMrvR5d4pEH5uLlr.HfgO6DqD.SPq9XR2YTyTQTPXaFHw/kN2b9Hz8pHra0",
	"$5$OLK/si8BcS2RAVLj$jYaYa3Ow1IstYkwSYkgg1taYGfRTSJtaMfXiLsSSY!1",
	"$1$zD3aERu0$fRVohQwj6i/p2DdI8JXhq",
	"$1$zD3aERu0toolong$fRVohQwj6i/p2DdI8JXhq0",
	"$2y$5$zZ4LdkN0RIMVyEwUyoSQ0.YEH9NLgrM/OBYyLbTCMFQBe9A2nnlCO",
	"$2y$03$zZ4LdkN0RIMVyEwUyoSQ0.YEH9NLgrM/OBYyLbTCMFQBe9A2nnlCO",
	"$2y$05$zZ4LdkN0RIMVyEwUyoSQ0.YEH9NLgrM/OBYyLbTCMFQBe9A2nnlC",
	"$2y$05$",
	"$y$j75$YUwKQbMFNxbdoqVLa7MGX1$TvD/czaAqsnQ.LudHwSW5zsOdCQ4ubIjVWeiVJngzK",
	"$y$j75$$TvD/czaAqsnQ.LudHwSW5zsOdCQ4ubIjVWeiVJngzK9",
	"$y$j7!$YUwKQbMFNxbdoqVLa7MGX1$TvD/czaAqsnQ.LudHwSW5zsOdCQ4ubIjVWeiVJngzK9",
	"{ARGON2}notaphcstring",
	"{ARGON2ID}$argon2id$v=19$m=65536,t=3$7HRuqDdSZuh6E+oVeWkC4A$D+dItMpKCEjz8tq7+q3TLc7CBR4Q2pBwwNhZcks8Ar4",
	"{ARGON2ID}$argon2id$v=16$m=65536,t=3,p=1$7HRuqDdSZuh6E+oVeWkC4A$D+dItMpKCEjz8tq7+q3TLc7CBR4Q2pBwwNhZcks8Ar4",
	"{ARGON2ID}$argon2id$v=19$m=65536,m=8,t=3,p=1$7HRuqDdSZuh6E+oVeWkC4A$D+dItMpKCEjz8tq7+q3TLc7CBR4Q2pBwwNhZcks8Ar4",
	"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1,x=1$7HRuqDdSZuh6E+oVeWkC4A$D+dItMpKCEjz8tq7+q3TLc7CBR4Q2pBwwNhZcks8Ar4",
	"{ARGON2ID}$argon2id$v=19$m=65536,t=0,p=1$7HRuqDdSZuh6E+oVeWkC4A$D+dItMpKCEjz8tq7+q3TLc7CBR4Q2pBwwNhZcks8Ar4",
	"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$7HRuqDdSZuh6E+oVeWkC4A$D+dItMpKCEjz8tq7",
	"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$7HRuqDdSZuh6E+oVeWkC4A$",
	"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$7HRuqDdSZuh6E+oVeWkC4A",
	"{PBKDF2}$1$/sZooBfXPiZe2JV1$5000$371f90237be6c54b06818821a258925d1fa993",
	"{PBKDF2}$1$/sZooBfXPiZe2JV1$0$371f90237be6c54b06818821a258925d1fa9939f",
	"{PBKDF2}$1$/sZooBfXPiZe2JV1$-1$371f90237be6c54b06818821a258925d1fa9939f",
	"{PBKDF2}$1$/sZooBfXPiZe2JV1$5000",
	"{PBKDF2-SHA256}10000$fL1mOwmM59TjcvGOqWv8vg",
	"{PBKDF2-SHA256}10000$fL1m!wmM59TjcvGOqWv8vg$72F.x51XVYjeXAUFMOS7hUb8jhyC6TnodAdh5Qis73c",
	"{PBKDF2-SHA256}10000$DNd7bx.d.TV2iUyY6synWg$RzrYww2shMcsYPLK1kMJp2VlHDQ", // a SHA-1 key
	"{PBKDF2-SHA256}$fL1mOwmM59TjcvGOqWv8vg$72F.x51XVYjeXAUFMOS7hUb8jhyC6TnodAdh5Qis73c",
	strings.Repeat("{PLAIN}", 1000),
}

var unknownHashes = []string{
	"",
	testPassword, // a bare cleartext, as a passdb with a PLAIN default scheme holds
	"$" + testPassword,
	"{" + testPassword,
	"{NTLM}8846F7EAEE8FB117AD06BDD830B7586C",
	"{SCRAM-SHA-256}4096,abcd,efgh",
	"{SHA.XYZ}h0Vy56WuaklGamrFeLmK26eMaqY=",
	"{BLF-CRYPT.HEX}$2y$05$zZ4LdkN0RIMVyEwUyoSQ0.YEH9NLgrM/OBYyLbTCMFQBe9A2nnlCO",
	"{CRYPT}jf9c61rwv5NQ2",                  // libxcrypt DES
	"$apr1$rIdHGWrx$wRRMz2O7YphH7VqsgW4Kz.", // openssl passwd -apr1
	"$7$CU..../....abcdefgh$abcdefghijklmnopqrstuvwxyz0123456789ABCDE",
	"$y$jD5.3$TBnGmLq4oVWsVuF8kdneT1$zt2G/bkDNr49vMB8emSavgtKvitGW8/CrSx/vvEw8o3",
	"{" + strings.Repeat("A", 40) + "}x",
	"{a b}c",
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		want   error
		stored []string
	}{
		{ErrTooCostly, costly},
		{ErrMalformed, malformedHashes},
		{ErrUnknownScheme, unknownHashes},
	} {
		for _, s := range tc.stored {
			h, err := Parse(s)
			if !errors.Is(err, tc.want) || h != nil {
				t.Errorf("Parse(%.60q) = %v, %v; want %v", s, h, err, tc.want)
				continue
			}
			checkNoLeak(t, s, err.Error())
		}
	}
}

// checkNoLeak fails if msg repeats the test password or 12 consecutive
// bytes of stored after its scheme, but for runs of digits: an error may
// quote a cost parameter.
func checkNoLeak(t *testing.T, stored, msg string) {
	t.Helper()
	_, body, found := strings.Cut(stored, "}")
	if !found {
		body = stored
	}
	if strings.Contains(msg, testPassword) {
		t.Errorf("error for %.60q contains the password: %s", stored, msg)
	}
	const run = 12
	for i := 0; i+run <= len(body); i++ {
		if w := body[i : i+run]; !digits(w) && strings.Contains(msg, w) {
			t.Errorf("error for %.60q repeats part of it: %s", stored, msg)
			return
		}
	}
}

func TestErrorNamesScheme(t *testing.T) {
	for s, want := range map[string]string{
		"{NTLM}8846F7EAEE8FB117AD06BDD830B7586C":                       "NTLM",
		"$apr1$rIdHGWrx$wRRMz2O7YphH7VqsgW4Kz.":                        "$apr1$",
		"{SSHA}!!!!not base64!!!!":                                     "SSHA",
		"$2b$31$lsSFJlYqUxCo6/1gALN92eFnpCU7l2rk03gX/FZ5dOc2Z4SQ3PkwO": "BLF-CRYPT: cost 31 exceeds 14",
	} {
		if _, err := Parse(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v; want an error naming %q", s, err, want)
		}
	}
}

func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		limits Limits
		stored string
		ok     bool
	}{
		{Limits{MaxBcryptCost: 4}, "{BLF-CRYPT}$2y$05$zZ4LdkN0RIMVyEwUyoSQ0.YEH9NLgrM/OBYyLbTCMFQBe9A2nnlCO", false},
		{Limits{MaxBcryptCost: 5}, "{BLF-CRYPT}$2y$05$zZ4LdkN0RIMVyEwUyoSQ0.YEH9NLgrM/OBYyLbTCMFQBe9A2nnlCO", true},
		{Limits{MaxBcryptCost: 31}, "$2b$31$lsSFJlYqUxCo6/1gALN92eFnpCU7l2rk03gX/FZ5dOc2Z4SQ3PkwO", true},
		{Limits{MaxMemoryKiB: 32768}, "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$7HRuqDdSZuh6E+oVeWkC4A$D+dItMpKCEjz8tq7+q3TLc7CBR4Q2pBwwNhZcks8Ar4", false},
		{Limits{MaxMemoryKiB: 32768}, "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$3gBQdiE6LCo08i5rJnPExg$mas7pQSPt7TjndhkgXLmTmgrJd5SLI8mEclr5ATPF2Y", true},
		{Limits{MaxArgon2Time: 3}, "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$3gBQdiE6LCo08i5rJnPExg$mas7pQSPt7TjndhkgXLmTmgrJd5SLI8mEclr5ATPF2Y", false},
		{Limits{MaxArgon2Lanes: 1}, "{ARGON2}$argon2i$v=19$m=256,t=2,p=2$eGS+7MkU1YtedRcmdilf+Q$qIB4NC1JeQGG0qKgZaKrOz9xs+ktzuVyF4ucP6dS+g8", false},
		{Limits{MaxMemoryKiB: 1023}, "$y$j75$YUwKQbMFNxbdoqVLa7MGX1$TvD/czaAqsnQ.LudHwSW5zsOdCQ4ubIjVWeiVJngzK9", false},
		{Limits{MaxMemoryKiB: 1024}, "$y$j75$YUwKQbMFNxbdoqVLa7MGX1$TvD/czaAqsnQ.LudHwSW5zsOdCQ4ubIjVWeiVJngzK9", true},
		{Limits{MaxRounds: 4999}, "{PBKDF2}$1$/sZooBfXPiZe2JV1$5000$371f90237be6c54b06818821a258925d1fa9939f", false},
		{Limits{MaxRounds: 5000}, "{PBKDF2}$1$/sZooBfXPiZe2JV1$5000$371f90237be6c54b06818821a258925d1fa9939f", true},
		{Limits{MaxRounds: 9999}, "{PBKDF2-SHA256}10000$fL1mOwmM59TjcvGOqWv8vg$72F.x51XVYjeXAUFMOS7hUb8jhyC6TnodAdh5Qis73c", false},
		{Limits{MaxRounds: 4999}, "{CRYPT}$6$rounds=5000$Ldn5OVBIuUIW25nw$Efze/orVagLjaB9JGz.npFhxDlGUMrvR5d4pEH5uLlr.HfgO6DqD.SPq9XR2YTyTQTPXaFHw/kN2b9Hz8pHra0", false},
		// Without "rounds=" SHA-crypt does 5000.
		{Limits{MaxRounds: 4999}, "$6$tvne7DIBUdHU3ove$78poajjgxq9pDlrHIF/if.v14ah5KuDtzb0TzSx8nCiptsbReaubGK7GwG4Cltewfgl9cNghYo2jdABVPMelw/", false},
		{Limits{MaxRounds: 1000}, "$6$rounds=1000$.rBL4MWwe4Acdxay$SAVM9FUo/DG61YGr3rzf4iBOOI/SXLi0py8FgBQdgNK3tN3LYzrT0smEPMnJc.hziyieuwhH9EkGD8NwoUjjx1", true},
	} {
		_, err := tc.limits.Parse(tc.stored)
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrTooCostly) {
			t.Errorf("%+v.Parse(%.50q) = %v; want ok %v", tc.limits, tc.stored, err, tc.ok)
		}
	}
}

// TestTruncated parses every proper prefix of every vector: none may
// panic, the Slow ones must fail (their formats have fixed lengths, but for
// an argon2 tag, whose length is a parameter), and a Fast one that parses
// must not accept the password, unless only base64 padding was cut.
func TestTruncated(t *testing.T) {
	for _, v := range vectors {
		pw := v.password
		if pw == "" {
			pw = testPassword
		}
		for i := range len(v.stored) {
			s := v.stored[:i]
			h, err := Parse(s)
			if err != nil {
				checkNoLeak(t, s, err.Error())
				continue
			}
			switch {
			case s == strings.TrimRight(v.stored, "="):
			case h.Cost() == Fast:
				if h.Verify([]byte(pw)) {
					t.Errorf("%s: prefix %q verifies the password", v.name, s)
				}
			case !strings.HasPrefix(h.Scheme(), "ARGON2"):
				t.Errorf("%s: prefix %q parses as %s", v.name, s, h.Scheme())
			}
		}
	}
}

func TestPrintingDoesNotLeak(t *testing.T) {
	for _, stored := range []string{
		"{PLAIN}Tr0ub4dor&3",
		"{SSHA}224wRreQzyoepx227cGi9GVEDRXAAHq+",
		"{PBKDF2}$1$/sZooBfXPiZe2JV1$5000$371f90237be6c54b06818821a258925d1fa9939f",
	} {
		h, err := Parse(stored)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "%v %+v %#v %s %v %+v\n", h, h, h, h, *h, *h)
		slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "hash", h, "value", *h)
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "hash", h, "value", *h)
		out := buf.String()
		checkNoLeak(t, stored, out)
		if !strings.Contains(out, "pwhash.Hash{"+h.Scheme()+"}") {
			t.Errorf("printed Hash lacks its scheme: %s", out)
		}
	}
}

func TestZeroHash(t *testing.T) {
	var h *Hash
	if h.Verify([]byte("x")) || h.Scheme() != "" || h.Cost() != 0 {
		t.Error("nil Hash is not inert")
	}
	if (&Hash{}).Verify(nil) {
		t.Error("zero Hash verifies")
	}
	if Fast.String() != "fast" || Slow.String() != "slow" || Cost(0).String() != "unknown" {
		t.Error("Cost.String")
	}
}

func TestConcurrentVerify(t *testing.T) {
	for _, stored := range []string{
		"{SSHA512}34C2sUoyKFB6cu45oicjzHO6En9Zfz+67DbDzQ6ybffa7drfgsxmC44jiaFLfuKsgUHFpYkIhmjsAxGROKb8Yrrn0DU=",
		"$6$rounds=1000$.rBL4MWwe4Acdxay$SAVM9FUo/DG61YGr3rzf4iBOOI/SXLi0py8FgBQdgNK3tN3LYzrT0smEPMnJc.hziyieuwhH9EkGD8NwoUjjx1",
		"{PBKDF2}$1$9NL9YfUo6VM/3meU$1000$f90425c105984b490e790a1fdc5dcd2bb94908fd",
	} {
		h, err := Parse(stored)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				c := testPassword
				if i%2 == 1 {
					c += "x"
				}
				if got := h.Verify([]byte(c)); got != (i%2 == 0) {
					t.Errorf("%s: Verify(%q) = %v", h.Scheme(), c, got)
				}
			})
		}
		wg.Wait()
	}
}
