package postfixtest

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The transcripts in testdata are swaks 20201014 talking to this package's
// Postfix 3.7 instance.
func TestParseTranscript(t *testing.T) {
	tests := []struct {
		file      string
		codes     map[Stage]int
		rcpt      []int
		accepted  bool
		queueID   string
		lastReply Reply
	}{
		{
			file:     "swaks-accepted.txt",
			codes:    map[Stage]int{StageConnect: 220, StageEHLO: 250, StageMail: 250, StageRcpt: 250, StageData: 354, StageEndOfData: 250, StageQuit: 221},
			rcpt:     []int{250, 250},
			accepted: true, queueID: "CDD9C984EC1",
			lastReply: Reply{StageQuit, 221, "2.0.0 Bye"},
		},
		{
			file:     "swaks-auth-login.txt",
			codes:    map[Stage]int{StageConnect: 220, StageEHLO: 250, StageAuth: 235, StageMail: 250, StageRcpt: 250, StageData: 354, StageEndOfData: 250, StageQuit: 221},
			rcpt:     []int{250},
			accepted: true, queueID: "DF03B984EC2",
			lastReply: Reply{StageQuit, 221, "2.0.0 Bye"},
		},
		{
			file:      "swaks-auth-failed.txt",
			codes:     map[Stage]int{StageConnect: 220, StageEHLO: 250, StageAuth: 535, StageQuit: 221},
			lastReply: Reply{StageQuit, 221, "2.0.0 Bye"},
		},
		{
			file:      "swaks-rcpt-rejected.txt",
			codes:     map[Stage]int{StageConnect: 220, StageEHLO: 250, StageMail: 250, StageRcpt: 554, StageQuit: 221},
			rcpt:      []int{554},
			lastReply: Reply{StageQuit, 221, "2.0.0 Bye"},
		},
		{
			file:      "swaks-milter-tempfail.txt",
			codes:     map[Stage]int{StageConnect: 220, StageEHLO: 250, StageMail: 451, StageQuit: 221},
			lastReply: Reply{StageQuit, 221, "2.0.0 Bye"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			r := ParseTranscript(string(b))
			if !reflect.DeepEqual(r.Codes, tt.codes) {
				t.Errorf("Codes = %v, want %v", r.Codes, tt.codes)
			}
			if !reflect.DeepEqual(r.RcptCodes, tt.rcpt) {
				t.Errorf("RcptCodes = %v, want %v", r.RcptCodes, tt.rcpt)
			}
			if r.Accepted != tt.accepted || r.QueueID != tt.queueID {
				t.Errorf("Accepted, QueueID = %v, %q, want %v, %q", r.Accepted, r.QueueID, tt.accepted, tt.queueID)
			}
			if last := r.Replies[len(r.Replies)-1]; last != tt.lastReply {
				t.Errorf("last reply = %+v, want %+v", last, tt.lastReply)
			}
			if ehlo := r.Replies[1]; ehlo.Stage != StageEHLO || !strings.HasPrefix(ehlo.Text, "mx.postfixtest.example\nPIPELINING\n") {
				t.Errorf("EHLO reply = %+v, want the joined multi-line reply", ehlo)
			}
		})
	}
}

func TestSMTPData(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Subject: x\n\nbody\n", "Subject: x\r\n\r\nbody\r\n."},
		{"Subject: x\r\n\r\n.hidden\r\n..two\r\n", "Subject: x\r\n\r\n..hidden\r\n...two\r\n."},
		{"Subject: x\n\nno final newline", "Subject: x\r\n\r\nno final newline\r\n."},
	}
	for _, tt := range tests {
		if got := smtpData(tt.in); got != tt.want {
			t.Errorf("smtpData(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestBuildMessage(t *testing.T) {
	msg := buildMessage("a@example.com", SendOptions{
		To:      []string{"b@example.net", "c@example.net"},
		Headers: map[string]string{"x-mailer": "Foo", "Subject": "hi", "Message-Id": "", "X-Extra": "1"},
		Body:    "text\n",
	})
	head, body, ok := strings.Cut(msg, "\n\n")
	if !ok || body != "text\n" {
		t.Fatalf("message = %q", msg)
	}
	lines := strings.Split(head, "\n")
	want := []string{"From: a@example.com", "To: b@example.net, c@example.net", "Subject: hi", "X-Extra: 1", "x-mailer: Foo"}
	if !strings.HasPrefix(lines[0], "Date: ") || !reflect.DeepEqual(lines[1:], want) {
		t.Errorf("header lines = %q, want Date then %q", lines, want)
	}
}

func TestSwaksArgs(t *testing.T) {
	args, data := swaksArgs("127.0.0.1:25", SendOptions{
		From: NullSender, To: []string{"a@x", "b@x"}, Data: "S: 1\n\nb",
		AuthUser: "u", AuthPassword: "p", Timeout: 5 * time.Second,
	})
	want := []string{"--server", "127.0.0.1:25", "--helo", "client.postfixtest.example", "--from", "<>",
		"--to", "a@x,b@x", "--timeout", "5s", "--data", "-", "--no-data-fixup",
		"--auth", "PLAIN", "--auth-user", "u", "--auth-password", "p"}
	if !reflect.DeepEqual(args, want) {
		t.Errorf("args = %q\nwant   %q", args, want)
	}
	if data != "S: 1\r\n\r\nb\r\n." {
		t.Errorf("data = %q", data)
	}
}

func TestParseQueue(t *testing.T) {
	b, err := os.ReadFile("testdata/postqueue-j.json")
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseQueue(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []QueueEntry{
		{
			QueueName: "deferred", QueueID: "F2FFE985164", ArrivalTime: time.Unix(1795887001, 0),
			MessageSize: 423, Sender: "MAILER-DAEMON",
			Recipients: []QueueRecipient{{"z@example.net", "deferred transport"}},
		},
		{
			QueueName: "hold", QueueID: "E567198515E", ArrivalTime: time.Unix(1795887001, 0),
			MessageSize: 411, Sender: "sender@example.com",
			Recipients: []QueueRecipient{{"x@example.net", "deferred transport"}, {"y@example.net", "deferred transport"}},
		},
	}
	if !reflect.DeepEqual(q, want) {
		t.Errorf("ParseQueue = %+v\nwant %+v", q, want)
	}
	if _, err := ParseQueue([]byte("{not json\n")); err == nil {
		t.Error("ParseQueue accepted garbage")
	}
	if q, err := ParseQueue(nil); err != nil || len(q) != 0 {
		t.Errorf("ParseQueue(empty) = %v, %v", q, err)
	}
}

func TestProcStat(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	state, ppid, pgrp, ok := procStat(os.Getpid())
	if !ok || state == 'Z' || ppid != os.Getppid() || pgrp == 0 {
		t.Errorf("procStat(self) = %c %d %d %v", state, ppid, pgrp, ok)
	}
	if _, _, _, ok := procStat(-1); ok {
		t.Error("procStat(-1) ok")
	}
}
