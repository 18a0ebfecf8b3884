package pwhash

// Known-answer vectors, each made once by a real tool and pasted here; the
// tool is named on each line. Unless noted the password is testPassword.
//
//	doveadm    Dovecot 2.3.19.1: doveadm pw -s SCHEME [-r ROUNDS] -p PASSWORD
//	slappasswd OpenLDAP 2.5.13: slappasswd -h SCHEME -s PASSWORD, with
//	           -o module-load=pw-sha2 / argon2 ("argon2 m=64 t=1 p=1") /
//	           pw-pbkdf2 (from slapd-contrib 2.5.13) for the module schemes
//	openssl    OpenSSL 3: openssl passwd -1|-5|-6 PASSWORD
//	libxcrypt  Debian 12 libcrypt.so.1 through python3's crypt module:
//	           crypt.crypt(PASSWORD, crypt_gensalt(PREFIX, COUNT))

const (
	testPassword = "Tr0ub4dor&3"
	utf8Password = "pässwörd €"
)

type vector struct {
	name     string
	stored   string
	password string // testPassword when empty
	scheme   string
	cost     Cost
}

var vectors = []vector{
	// Salted digests.
	{"doveadm SSHA", "{SSHA}224wRreQzyoepx227cGi9GVEDRXAAHq+", "", "SSHA", Fast},
	{"slappasswd SSHA", "{SSHA}21RgQ4BGcTajXtju7lP3UBysAqn0+aV9", "", "SSHA", Fast},
	{"doveadm SSHA.HEX", "{SSHA.HEX}22f6730fba533cdd07e186af43f5685da92f770cae84c8ff", "", "SSHA", Fast},
	{"doveadm SSHA256", "{SSHA256}k2XsCdW2LcznkqRvaG50Iw+TT7rHc4WEmDvKKgzpC4IEOz3y", "", "SSHA256", Fast},
	{"slappasswd pw-sha2 SSHA256", "{SSHA256}heTlV+NFVAO4k7Bz43unAiMl+h8CbXa7GSN0ZviQAn7U1UUwCIbBqg==", "", "SSHA256", Fast},
	{"slappasswd pw-sha2 SSHA384", "{SSHA384}/W9i+f31TMAuTxu0UCcltGaMTVeTuYdZ4QcTOch2+Jlbd6sB52GzGi2mXqg+MmL69OooNn7shMk=", "", "SSHA384", Fast},
	{"doveadm SSHA512", "{SSHA512}34C2sUoyKFB6cu45oicjzHO6En9Zfz+67DbDzQ6ybffa7drfgsxmC44jiaFLfuKsgUHFpYkIhmjsAxGROKb8Yrrn0DU=", "", "SSHA512", Fast},
	{"doveadm SSHA512 utf8", "{SSHA512}kACE7TErbVMHR9fVMahX7H3Nvt6qiY+EZyhab2kBntcAFn4x16NS040e6ldnWMG+bObddopM9u2F593F3r+Rx6RBTgg=", utf8Password, "SSHA512", Fast},
	{"doveadm SSHA512.HEX", "{SSHA512.HEX}a1524211f2ef2d0496355174a9aec6b1bc7643bfac5e210b9f47f2f2004bcb17075753e22fc73e347bbdc19a0dfdcb89c64860f1cc8059969a32d6addc276a4cedf53425", "", "SSHA512", Fast},
	{"slappasswd pw-sha2 SSHA512", "{SSHA512}z1Q4qouA2ivqffVqNEnp5PFmtwxqp/YblT0CGExZkyVuYQ2goGmLXdxy26iHgZQ9tE/XIqbNij/2cG1wUZ6d+HvvP0PfAOqm", "", "SSHA512", Fast},
	{"doveadm SMD5", "{SMD5}3oojrpiTDX6PFgjDMJo0IW4EHMY=", "", "SMD5", Fast},
	{"slappasswd SMD5", "{SMD5}gINRHvxSRo//XXNKpJDWzrBXCH8=", "", "SMD5", Fast},

	// Unsalted digests.
	{"doveadm SHA", "{SHA}h0Vy56WuaklGamrFeLmK26eMaqY=", "", "SHA", Fast},
	{"doveadm SHA1", "{SHA1}h0Vy56WuaklGamrFeLmK26eMaqY=", "", "SHA", Fast},
	{"doveadm SHA.B64", "{SHA.B64}h0Vy56WuaklGamrFeLmK26eMaqY=", "", "SHA", Fast},
	{"doveadm SHA256", "{SHA256}SEhuFRToQjRv9AWx5F9EBZroJhnyMG+Z0JQNyzhukfc=", "", "SHA256", Fast},
	{"doveadm SHA256.HEX", "{SHA256.HEX}48486e1514e842346ff405b1e45f44059ae82619f2306f99d0940dcb386e91f7", "", "SHA256", Fast},
	{"doveadm SHA256 hex guessed", "{SHA256}48486e1514e842346ff405b1e45f44059ae82619f2306f99d0940dcb386e91f7", "", "SHA256", Fast},
	{"slappasswd pw-sha2 SHA384", "{SHA384}S0YgjFx8ZkgcVsKrTTB/ePokftZCGzuhXBqTYU7sGTvlwvPQO0GhAkyPMtIxhdoE", "", "SHA384", Fast},
	{"doveadm SHA512", "{SHA512}xyu2IccEDPS2R0BjqaeXJpDiUvNa2+fPr/Wx7iMW7+c4LnI9QeATor+8M8MAfFDFhH0hqInM6DhTbqxyeAjeQA==", "", "SHA512", Fast},
	{"doveadm SHA512.HEX", "{SHA512.HEX}c72bb621c7040cf4b6474063a9a7972690e252f35adbe7cfaff5b1ee2316efe7382e723d41e013a2bfbc33c3007c50c5847d21a889cce838536eac727808de40", "", "SHA512", Fast},
	{"slappasswd MD5", "{MD5}Ts5XphMjtSzP/b7wIZVnVA==", "", "MD5", Fast},
	{"doveadm LDAP-MD5", "{LDAP-MD5}Ts5XphMjtSzP/b7wIZVnVA==", "", "MD5", Fast},
	{"doveadm PLAIN-MD5", "{PLAIN-MD5}4ece57a61323b52ccffdbef021956754", "", "MD5", Fast},

	// Cleartext (Dovecot).
	{"doveadm PLAIN", "{PLAIN}Tr0ub4dor&3", "", "PLAIN", Fast},
	{"doveadm CLEARTEXT", "{CLEARTEXT}Tr0ub4dor&3", "", "PLAIN", Fast},
	{"doveadm PLAIN.B64", "{PLAIN.B64}VHIwdWI0ZG9yJjM=", "", "PLAIN", Fast},
	{"doveadm PLAIN.HEX", "{PLAIN.HEX}547230756234646f722633", "", "PLAIN", Fast},

	// crypt(3) family.
	{"doveadm MD5", "{MD5}$1$lH7OTt3/$e8M12Z4qEuhsyFczPoHGT1", "", "CRYPT-MD5", Slow},
	{"doveadm MD5-CRYPT", "{MD5-CRYPT}$1$bkQxBmYO$44Q9bHM61.w0o/P8cGNFY0", "", "CRYPT-MD5", Slow},
	{"openssl passwd -1", "$1$zD3aERu0$fRVohQwj6i/p2DdI8JXhq0", "", "CRYPT-MD5", Slow},
	{"libxcrypt $1$", "{CRYPT}$1$ZSOLzo4/$ut6zMqedtIqOoN.cxbbPz.", "", "CRYPT-MD5", Slow},
	{"doveadm SHA256-CRYPT", "{SHA256-CRYPT}$5$mwdyk4dsv0geBQU9$Kw6IyOqp5pmVr1Ce.Ruq4sbXA3eoDM9qyiTsR/mjWr.", "", "CRYPT-SHA256", Slow},
	{"openssl passwd -5", "$5$o2MApltsRBvI/jT2$5tjyUFe981xgvrKgxDOtd1gLZj/mXTsYzTs4Y.PcT5/", "", "CRYPT-SHA256", Slow},
	{"libxcrypt $5$", "{CRYPT}$5$OLK/si8BcS2RAVLj$jYaYa3Ow1IstYkwSYkgg1taYGfRTSJtaMfXiLsSSYL1", "", "CRYPT-SHA256", Slow},
	{"doveadm SHA512-CRYPT", "{SHA512-CRYPT}$6$fyYe4ZhYokyvXlfE$CdoTUZM40u7ftN6w5dm53mydR0BTvp7LhZ26eh.0/SZaHlA/47iSfVif1NiIkPHSUh7AxnB7CidgB9s.1a2AQ/", "", "CRYPT-SHA512", Slow},
	{"doveadm SHA512-CRYPT -r 10000", "{SHA512-CRYPT}$6$rounds=10000$0h1bVUULLXdAM3u5$QuGj0CNNkFb4SFmhSM18uWtT33KnHB4uS00dmIzP4Dbzxou55ieBgQujGqVHQ/yjf.AlWEucm4ccDsq69jNj.0", "", "CRYPT-SHA512", Slow},
	{"slappasswd CRYPT $6$ rounds=5000", "{CRYPT}$6$rounds=5000$Ldn5OVBIuUIW25nw$Efze/orVagLjaB9JGz.npFhxDlGUMrvR5d4pEH5uLlr.HfgO6DqD.SPq9XR2YTyTQTPXaFHw/kN2b9Hz8pHra0", "", "CRYPT-SHA512", Slow},
	{"openssl passwd -6", "$6$tvne7DIBUdHU3ove$78poajjgxq9pDlrHIF/if.v14ah5KuDtzb0TzSx8nCiptsbReaubGK7GwG4Cltewfgl9cNghYo2jdABVPMelw/", "", "CRYPT-SHA512", Slow},
	{"libxcrypt $6$ rounds=1000", "$6$rounds=1000$.rBL4MWwe4Acdxay$SAVM9FUo/DG61YGr3rzf4iBOOI/SXLi0py8FgBQdgNK3tN3LYzrT0smEPMnJc.hziyieuwhH9EkGD8NwoUjjx1", "", "CRYPT-SHA512", Slow},
	{"libxcrypt $6$ utf8", "$6$yQIp4kYgR8CE4Sfv$v9nLbXjiIhcebXMY3rERVkyvw2qFhSu7hZ0D6JMaQbi.E.HUhlbRi7mQkGqOmOIpu2CTWo5Pxoax5acKy8sgd.", utf8Password, "CRYPT-SHA512", Slow},
	{"doveadm BLF-CRYPT", "{BLF-CRYPT}$2y$05$zZ4LdkN0RIMVyEwUyoSQ0.YEH9NLgrM/OBYyLbTCMFQBe9A2nnlCO", "", "BLF-CRYPT", Slow},
	{"doveadm CRYPT", "{CRYPT}$2y$05$6JfvQTG4KJLHqYfup8WcRebPmtpyhTpX.7ux1jvBRzO8urlHUy7jC", "", "BLF-CRYPT", Slow},
	{"libxcrypt $2a$", "$2a$05$meR1GAP4FcDHTLMkKc/L0OOtblkdJ6o.AuyqcZHXMSwu4S1wNFAB.", "", "BLF-CRYPT", Slow},
	{"libxcrypt $2b$", "{crypt}$2b$04$lsSFJlYqUxCo6/1gALN92eFnpCU7l2rk03gX/FZ5dOc2Z4SQ3PkwO", "", "BLF-CRYPT", Slow},
	{"libxcrypt $y$ j75", "$y$j75$YUwKQbMFNxbdoqVLa7MGX1$TvD/czaAqsnQ.LudHwSW5zsOdCQ4ubIjVWeiVJngzK9", "", "CRYPT-YESCRYPT", Slow},
	{"libxcrypt $y$ j9T", "{CRYPT}$y$j9T$TBnGmLq4oVWsVuF8kdneT1$UX4X/K5Eu1ofOjpQDdyp1T.bMeK91BiC3i7Fziwu.70", "", "CRYPT-YESCRYPT", Slow},

	// argon2.
	{"doveadm ARGON2I", "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$3gBQdiE6LCo08i5rJnPExg$mas7pQSPt7TjndhkgXLmTmgrJd5SLI8mEclr5ATPF2Y", "", "ARGON2I", Slow},
	{"doveadm ARGON2ID", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$7HRuqDdSZuh6E+oVeWkC4A$D+dItMpKCEjz8tq7+q3TLc7CBR4Q2pBwwNhZcks8Ar4", "", "ARGON2ID", Slow},
	{"slappasswd argon2", "{ARGON2}$argon2i$v=19$m=4096,t=3,p=1$jDmqlcTRooDdxpHZA+WagQ$SF9IfwGOFHKzIki1xE9JwHzmaXhJrX0aLmXLj0w8oVw", "", "ARGON2I", Slow},
	{"slappasswd argon2 m=256 t=2 p=2", "{ARGON2}$argon2i$v=19$m=256,t=2,p=2$eGS+7MkU1YtedRcmdilf+Q$qIB4NC1JeQGG0qKgZaKrOz9xs+ktzuVyF4ucP6dS+g8", "", "ARGON2I", Slow},

	// PBKDF2.
	{"doveadm PBKDF2", "{PBKDF2}$1$/sZooBfXPiZe2JV1$5000$371f90237be6c54b06818821a258925d1fa9939f", "", "PBKDF2-SHA1", Slow},
	{"doveadm PBKDF2 -r 1000", "{PBKDF2}$1$9NL9YfUo6VM/3meU$1000$f90425c105984b490e790a1fdc5dcd2bb94908fd", "", "PBKDF2-SHA1", Slow},
	{"slappasswd pw-pbkdf2 PBKDF2", "{PBKDF2}10000$DNd7bx.d.TV2iUyY6synWg$RzrYww2shMcsYPLK1kMJp2VlHDQ", "", "PBKDF2-SHA1", Slow},
	{"slappasswd pw-pbkdf2 PBKDF2-SHA1", "{PBKDF2-SHA1}10000$5Fh7MhvkEOVK73jU2EsY9w$EyKu/PNs.rFLxWb4d8PV.CYnYFY", "", "PBKDF2-SHA1", Slow},
	{"slappasswd pw-pbkdf2 PBKDF2-SHA256", "{PBKDF2-SHA256}10000$fL1mOwmM59TjcvGOqWv8vg$72F.x51XVYjeXAUFMOS7hUb8jhyC6TnodAdh5Qis73c", "", "PBKDF2-SHA256", Slow},
	{"slappasswd pw-pbkdf2 PBKDF2-SHA512", "{PBKDF2-SHA512}10000$gxoWk09exsgzsRJ2PaLMaA$2BHED48xeHXKKAqfeoTYQYJwVo3jYa8csknm1Z9Rz03O9mKhGBQc9F11VGCb/EEc5jh5Cg.4HVAX4/cbusZp2w", "", "PBKDF2-SHA512", Slow},
	// The same value in passlib's modular crypt form.
	{"slappasswd pw-pbkdf2 as $pbkdf2-sha512$", "$pbkdf2-sha512$10000$gxoWk09exsgzsRJ2PaLMaA$2BHED48xeHXKKAqfeoTYQYJwVo3jYa8csknm1Z9Rz03O9mKhGBQc9F11VGCb/EEc5jh5Cg.4HVAX4/cbusZp2w", "", "PBKDF2-SHA512", Slow},
}
