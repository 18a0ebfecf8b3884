package pwhash

import "testing"

// BenchmarkVerify measures one Verify of a wrong candidate, the common case
// when scanning a message's tokens.
func BenchmarkVerify(b *testing.B) {
	for _, bc := range []struct{ name, stored string }{
		// doveadm pw -s SSHA
		{"SSHA", "{SSHA}224wRreQzyoepx227cGi9GVEDRXAAHq+"},
		// doveadm pw -s SSHA512
		{"SSHA512", "{SSHA512}34C2sUoyKFB6cu45oicjzHO6En9Zfz+67DbDzQ6ybffa7drfgsxmC44jiaFLfuKsgUHFpYkIhmjsAxGROKb8Yrrn0DU="},
		// slappasswd -h {CRYPT} -c '$6$rounds=5000$%.16s'
		{"CRYPT-SHA512-rounds5000", "{CRYPT}$6$rounds=5000$Ldn5OVBIuUIW25nw$Efze/orVagLjaB9JGz.npFhxDlGUMrvR5d4pEH5uLlr.HfgO6DqD.SPq9XR2YTyTQTPXaFHw/kN2b9Hz8pHra0"},
		// doveadm pw -s BLF-CRYPT -r 10
		{"BLF-CRYPT-cost10", "{BLF-CRYPT}$2y$10$kLeahYsuTKwkjCEYOmlKC.ZPTfkw1esT0bnreG2FYbuJorNk8rH8m"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h, err := Parse(bc.stored)
			if err != nil {
				b.Fatal(err)
			}
			if !h.Verify([]byte(testPassword)) {
				b.Fatal("password not verified")
			}
			wrong := []byte("Tr0ub4dor&4")
			b.ReportAllocs()
			for b.Loop() {
				if h.Verify(wrong) {
					b.Fatal("wrong candidate verified")
				}
			}
		})
	}
}
