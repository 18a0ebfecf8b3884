package leakscan

import "testing"

func TestMask(t *testing.T) {
	const m = MaskToken
	tests := []struct {
		text    string
		secrets []string
		want    string
	}{
		{"my password is Hunter2!x, ok", []string{"Hunter2!x"}, "my password is " + m + ", ok"},
		{"Hunter2!x Hunter2!x", []string{"Hunter2!x"}, m + " " + m},
		{"no secret here", []string{"Hunter2!x"}, "no secret here"},
		{"case HUNTER2!X differs", []string{"Hunter2!x"}, "case HUNTER2!X differs"},
		{"overlap abcdef", []string{"abcd", "cdef"}, "overlap " + m},
		{"adjacent abcdef", []string{"abc", "def"}, "adjacent " + m},
		{"html Tr0ub4dor&amp;3.", []string{"Tr0ub4dor&3"}, "html " + m + "."},
		{"qp pw=3DSoft=3Dx", []string{"pw=Soft=x"}, "qp " + m},
		{"cut preview: Hunt", []string{"Hunter2!x"}, "cut preview: " + m},
		{"r2!x and the rest", []string{"Hunter2!x"}, m + " and the rest"},
		{"ends in Hu", []string{"Hunter2!x"}, "ends in Hu"},
		{"empty secret", []string{""}, "empty secret"},
		{"", []string{"Hunter2!x"}, ""},
	}
	for _, tt := range tests {
		var secrets [][]byte
		for _, s := range tt.secrets {
			secrets = append(secrets, []byte(s))
		}
		if got := Mask(tt.text, secrets); got != tt.want {
			t.Errorf("Mask(%q, %q) = %q, want %q", tt.text, tt.secrets, got, tt.want)
		}
	}
}
