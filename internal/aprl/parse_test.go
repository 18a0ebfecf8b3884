package aprl

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func day(s string) time.Time {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestTypeString(t *testing.T) {
	tests := []struct {
		t    Type
		want string
	}{
		{TypeReplyTo, "A"},
		{TypeReplyTo | TypeFrom, "AB"},
		{TypeReplyTo | TypeUnintended, "AE"},
		{TypeUnintended, "E"},
		{typeAll, "ABCDE"},
		{0, ""},
		{1 << 6, "Type(0x40)"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("Type(%d).String() = %q, want %q", tt.t, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	type want struct {
		addr  string
		types Type
		date  string
		line  int
	}
	tests := []struct {
		name    string
		in      string
		want    []want
		errLine []int
	}{
		{
			name: "types combined",
			in:   "a@x.org,AB,20090101\nb@x.org,AE,20100203\nc@x.org,E,20180910\nd@x.org,ABCDE,20081231\n",
			want: []want{
				{"a@x.org", TypeReplyTo | TypeFrom, "20090101", 1},
				{"b@x.org", TypeReplyTo | TypeUnintended, "20100203", 2},
				{"c@x.org", TypeUnintended, "20180910", 3},
				{"d@x.org", typeAll, "20081231", 4},
			},
		},
		{
			name: "comments and blank lines",
			in:   "# ADDRESS,TYPE,DATE\n#\n\n   \n# accounthelpdesk@live.com,AC,20080327\na@x.org,C,20090101\n\n",
			want: []want{{"a@x.org", TypeBody, "20090101", 6}},
		},
		{
			name: "CRLF and no final newline",
			in:   "# c\r\na@x.org,A,20090101\r\nb@x.org,D,20090102",
			want: []want{{"a@x.org", TypeReplyTo, "20090101", 2}, {"b@x.org", TypeObfuscated, "20090102", 3}},
		},
		{
			name: "upper case, spaces, brackets, lower-case type",
			in:   "Help.Desk@X.ORG,ac,20090101\n <b@x.org> , B , 20090102 \n",
			want: []want{{"help.desk@x.org", TypeReplyTo | TypeBody, "20090101", 1}, {"b@x.org", TypeFrom, "20090102", 2}},
		},
		{
			name: "real oddities kept",
			in:   "co'rourke@uwp.example.edu,E,20120101\nprvs=1652462988=ypo@example.com.mm,B,20130101\n",
			want: []want{{"co'rourke@uwp.example.edu", TypeUnintended, "20120101", 1}, {"prvs=1652462988=ypo@example.com.mm", TypeFrom, "20130101", 2}},
		},
		{
			name: "bad lines reported with line numbers",
			in: strings.Join([]string{
				"ok1@x.org,A,20090101",
				"no-at-sign,A,20090101",
				"two@x.org,A",
				"three@x.org,A,20090101,extra",
				"f@x.org,F,20090101",
				"g@x.org,,20090101",
				"h@x.org,A,2009-01-01",
				"i@x.org,A,20090230",
				"j k@x.org,A,20090101",
				"@x.org,A,20090101",
				"k@,A,20090101",
				"ok2@x.org,B,20090102",
			}, "\n"),
			want:    []want{{"ok1@x.org", TypeReplyTo, "20090101", 1}, {"ok2@x.org", TypeFrom, "20090102", 12}},
			errLine: []int{2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
		},
		{
			name:    "line too long",
			in:      "a@x.org,A,20090101\n" + strings.Repeat("x", 5000) + "TAIL\nb@x.org,A,20090101\n" + strings.Repeat("y", 1100) + "\n",
			want:    []want{{"a@x.org", TypeReplyTo, "20090101", 1}, {"b@x.org", TypeReplyTo, "20090101", 3}},
			errLine: []int{2, 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, errs, err := Parse(strings.NewReader(tt.in), "test")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(entries) != len(tt.want) {
				t.Fatalf("got %d entries %+v, want %d", len(entries), entries, len(tt.want))
			}
			for i, w := range tt.want {
				e := entries[i]
				if e.Address != w.addr || e.Types != w.types || !e.LastSeen.Equal(day(w.date)) || e.Line != w.line || e.Source != "test" {
					t.Errorf("entry %d = %+v, want %+v", i, e, w)
				}
			}
			if len(errs) != len(tt.errLine) {
				t.Fatalf("got errors %v, want lines %v", errs, tt.errLine)
			}
			for i, l := range tt.errLine {
				if errs[i].Line != l {
					t.Errorf("error %d at line %d (%v), want line %d", i, errs[i].Line, errs[i], l)
				}
				if strings.Contains(errs[i].Msg, "TAIL") || strings.Count(errs[i].Msg, "x") > maxQuote+2 || strings.Count(errs[i].Msg, "y") > maxQuote+1 {
					t.Errorf("error %d quotes more than %d bytes: %s", i, maxQuote, errs[i].Msg)
				}
			}
		})
	}
}

func TestParseNotList(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"html page", "<html>\n<body>\nNot found\n</body>\n</html>\n"},
		{"binary", "\x00\x01\x02\n\xff\xfe\n"},
		{"more bad than good", "a@x.org,A,20090101\n" + strings.Repeat("junk\n", fewBadLines+1)},
		{"too many bad lines", strings.Repeat("a@x.org,A,20090101\n", 2000) + strings.Repeat("junk\n", MaxBadLines+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, err := Parse(strings.NewReader(tt.in), "test")
			if !errors.Is(err, ErrNotList) {
				t.Fatalf("Parse error = %v, want ErrNotList", err)
			}
			if len(errs) == 0 || len(errs) > maxErrors+1 {
				t.Errorf("got %d ParseErrors, want 1..%d", len(errs), maxErrors+1)
			}
		})
	}
}

func TestParseMaxEntries(t *testing.T) {
	defer func(n int) { maxEntries = n }(maxEntries)
	maxEntries = 3
	in := "a@x.org,A,20090101\nb@x.org,A,20090101\nc@x.org,A,20090101\n"
	if _, _, err := Parse(strings.NewReader(in), "test"); err != nil {
		t.Fatalf("3 entries: %v", err)
	}
	if _, _, err := Parse(strings.NewReader(in+"d@x.org,A,20090101\n"), "test"); err == nil {
		t.Fatal("4 entries: no error")
	}
}

func TestParseCleared(t *testing.T) {
	in := "# List Format:\n# ADDRESS,DATE\n\nA.B@Uni.example.ac.uk,20110328\nc@x.org,20090101\nc@x.org,20100101\nc@x.org,20090601\nbad,20090101\nd@x.org,A,20090101\n"
	got, errs, err := ParseCleared(strings.NewReader(in), "cleared")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"a.b@uni.example.ac.uk": day("20110328"), "c@x.org": day("20100101")}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for a, d := range want {
		if !got[a].Equal(d) {
			t.Errorf("%s: got %v, want %v", a, got[a], d)
		}
	}
	if len(errs) != 2 || errs[0].Line != 8 || errs[1].Line != 9 {
		t.Errorf("errors %v, want lines 8 and 9", errs)
	}
}
