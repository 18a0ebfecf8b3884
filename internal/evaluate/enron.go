package evaluate

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/replay"
)

// ReadEnronSent converts enron-sent-metadata/enron_sent_messages.csv into
// replay records. Recipients are the hashed addresses (hash@domain when the
// row has one domain, else hash@hashed.invalid): what the detectors need is
// identity, not the address. The account is the mailbox owner's address
// as the SASL login; the client is unknown (Enron's X-Mailer is empty).
func ReadEnronSent(r io.Reader) ([]replay.Record, error) {
	cr, col, err := columns(r, "mailbox", "timestamp_utc", "sender", "rcpt_hashes", "rcpt_domains", "date_suspect")
	if err != nil {
		return nil, err
	}
	var out []replay.Record
	for line := 2; ; line++ {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if row[col["date_suspect"]] == "1" {
			continue
		}
		t, err := time.Parse(time.RFC3339, row[col["timestamp_utc"]])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		hashes := strings.Split(row[col["rcpt_hashes"]], ";")
		domains := strings.Split(row[col["rcpt_domains"]], ";")
		var rcpts []string
		for _, h := range hashes {
			if h == "" {
				continue
			}
			d := "hashed.invalid"
			if len(domains) == 1 && domains[0] != "" {
				d = domains[0]
			}
			rcpts = append(rcpts, h+"@"+d)
		}
		if len(rcpts) == 0 {
			continue
		}
		out = append(out, replay.Record{Time: t, Account: "enron:" + row[col["mailbox"]], Sender: row[col["sender"]], Recipients: rcpts})
	}
	return out, nil
}

// ReadPerryWolfe converts enron-perry-wolfe/messages.csv (sender ids and
// recipient ids of core employees) into replay records.
func ReadPerryWolfe(r io.Reader) ([]replay.Record, error) {
	cr, col, err := columns(r, "timestamp_utc", "sender_id", "rcpt_ids")
	if err != nil {
		return nil, err
	}
	var out []replay.Record
	for line := 2; ; line++ {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		t, err := time.Parse(time.RFC3339, row[col["timestamp_utc"]])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if t.Year() < 1998 || t.Year() > 2002 {
			continue
		}
		var rcpts []string
		for _, id := range strings.Split(row[col["rcpt_ids"]], ";") {
			if _, err := strconv.Atoi(id); err == nil {
				rcpts = append(rcpts, "pw"+id+"@enron.com")
			}
		}
		if len(rcpts) == 0 {
			continue
		}
		out = append(out, replay.Record{Time: t, Account: "pw" + row[col["sender_id"]] + "@enron.com", Recipients: rcpts})
	}
	return out, nil
}

// columns reads a CSV header and maps the needed column names to indexes.
func columns(r io.Reader, need ...string) (*csv.Reader, map[string]int, error) {
	cr := csv.NewReader(r)
	head, err := cr.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("reading header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, n := range need {
		if _, ok := col[n]; !ok {
			return nil, nil, fmt.Errorf("missing column %q", n)
		}
	}
	return cr, col, nil
}
