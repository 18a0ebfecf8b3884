package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

var _ store.Incidents = (*Store)(nil)

const incidentCols = `id, account, state, severity, playbook, reasons, steps, opened, updated, state_by, note`

// scanIncident reads the incident's own row; its evidence is in
// incident_evidence (loadEvidence).
func scanIncident(sc interface{ Scan(...any) error }) (*store.Incident, error) {
	var (
		in              store.Incident
		reasons, steps  string
		opened, updated int64
	)
	if err := sc.Scan(&in.ID, &in.Account, &in.State, &in.Severity, &in.Playbook, &reasons, &steps, &opened, &updated, &in.StateBy, &in.Note); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		s string
		v any
	}{{reasons, &in.Reasons}, {steps, &in.Steps}} {
		if err := json.Unmarshal([]byte(f.s), f.v); err != nil {
			return nil, fmt.Errorf("incident %d: %w", in.ID, err)
		}
	}
	if in.Reasons == nil {
		in.Reasons = []string{}
	}
	in.Evidence = []store.Evidence{}
	if in.Steps == nil {
		in.Steps = []store.StepRecord{}
	}
	in.Opened, in.Updated = fromDB(opened), fromDB(updated)
	return &in, nil
}

// loadEvidence fills the evidence of the given incidents, in the order it
// was added.
func loadEvidence(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, ins ...*store.Incident) error {
	if len(ins) == 0 {
		return nil
	}
	byID := make(map[int64]*store.Incident, len(ins))
	args := make([]any, len(ins))
	for i, in := range ins {
		byID[in.ID] = in
		args[i] = in.ID
	}
	rows, err := q.QueryContext(ctx, `SELECT incident_id, time, reason, detail, hold_id, queue_id, by FROM incident_evidence
		WHERE incident_id IN (`+strings.Repeat("?, ", len(ins)-1)+`?) ORDER BY incident_id, seq`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id int64
			at int64
			ev store.Evidence
		)
		if err := rows.Scan(&id, &at, &ev.Reason, &ev.Detail, &ev.HoldID, &ev.QueueID, &ev.By); err != nil {
			return err
		}
		ev.Time = fromDB(at)
		if in := byID[id]; in != nil {
			in.Evidence = append(in.Evidence, ev)
		}
	}
	return rows.Err()
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings, times and numbers
	}
	return string(b)
}

func utcMicro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// OpenIncident implements store.Incidents.
func (s *Store) OpenIncident(ctx context.Context, account string, sev store.Severity, pb string, ev store.Evidence) (*store.Incident, store.Opened, error) {
	res, err := s.OpenIncidents(ctx, []store.IncidentFinding{{Account: account, Severity: sev, Playbook: pb, Evidence: ev}})
	if err != nil {
		return nil, store.Opened{}, err
	}
	return res[0].Incident, res[0].Opened, nil
}

// openState is an incident being added to within one OpenIncidents.
type openState struct {
	in         *store.Incident
	n, nextSeq int // evidence rows and the next row's seq
	dirty      bool
}

// OpenIncidents implements store.Incidents. Each incident's own row is
// read and written once per call and its earlier evidence never: a spam
// run reports thousands of findings against a few accounts.
func (s *Store) OpenIncidents(ctx context.Context, fs []store.IncidentFinding) ([]store.OpenResult, error) {
	for i := range fs {
		f := &fs[i]
		if f.Account == "" {
			return nil, errors.New("sqlite store: OpenIncident: empty account")
		}
		if !f.Severity.Valid() {
			return nil, fmt.Errorf("sqlite store: OpenIncident: invalid severity %q", f.Severity)
		}
		if f.Evidence.Time.IsZero() {
			f.Evidence.Time = time.Now()
		}
		f.Evidence.Time = utcMicro(f.Evidence.Time)
	}
	var out []store.OpenResult
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		out = make([]store.OpenResult, len(fs))
		stmts := map[string]*sql.Stmt{}
		prep := func(q string) (*sql.Stmt, error) {
			if st := stmts[q]; st != nil {
				return st, nil
			}
			st, err := tx.PrepareContext(ctx, q)
			if err != nil {
				return nil, err
			}
			stmts[q] = st
			return st, nil
		}
		defer func() {
			for _, st := range stmts {
				st.Close()
			}
		}()
		open := map[string]*openState{}
		var order []*openState
		for i, f := range fs {
			ev := f.Evidence
			st := open[f.Account]
			created := false
			if st == nil {
				q, err := prep(`SELECT ` + incidentCols + ` FROM incidents WHERE account = ? AND state IN ('open', 'confirmed', 'contained')`)
				if err != nil {
					return err
				}
				in, err := scanIncident(q.QueryRowContext(ctx, f.Account))
				switch {
				case errors.Is(err, sql.ErrNoRows):
					in = &store.Incident{Account: f.Account, State: store.IncidentOpen, Severity: f.Severity, Playbook: f.Playbook, Reasons: []string{},
						Evidence: []store.Evidence{}, Steps: []store.StepRecord{}, Opened: ev.Time, Updated: ev.Time, StateBy: ev.By}
					q, err := prep(`INSERT INTO incidents (account, state, severity, playbook, reasons, steps, opened, updated, state_by, note)
						VALUES (?, ?, ?, ?, '[]', '[]', ?, ?, ?, '')`)
					if err != nil {
						return err
					}
					r, err := q.ExecContext(ctx, in.Account, string(in.State), string(in.Severity), in.Playbook, toDB(in.Opened), toDB(in.Updated), in.StateBy)
					if err != nil {
						return err
					}
					if in.ID, err = r.LastInsertId(); err != nil {
						return err
					}
					created = true
					st = &openState{in: in}
				case err != nil:
					return err
				default:
					st = &openState{in: in}
					q, err := prep(`SELECT count(*), coalesce(max(seq) + 1, 0) FROM incident_evidence WHERE incident_id = ?`)
					if err != nil {
						return err
					}
					if err := q.QueryRowContext(ctx, in.ID).Scan(&st.n, &st.nextSeq); err != nil {
						return err
					}
				}
				open[f.Account] = st
				order = append(order, st)
			}
			in := st.in
			res := store.Opened{Created: created}
			if ev.QueueID != "" && !created {
				q, err := prep(`SELECT EXISTS (SELECT 1 FROM incident_evidence WHERE incident_id = ? AND queue_id = ? AND queue_id <> '' AND reason = ?)`)
				if err != nil {
					return err
				}
				var dup bool
				if err := q.QueryRowContext(ctx, in.ID, ev.QueueID, ev.Reason).Scan(&dup); err != nil {
					return err
				}
				if dup {
					res.Duplicate = true
					out[i] = store.OpenResult{Incident: snapshot(in), Opened: res}
					continue
				}
			}
			if st.n < store.MaxEvidence {
				q, err := prep(`INSERT INTO incident_evidence (incident_id, seq, time, reason, detail, hold_id, queue_id, by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
				if err != nil {
					return err
				}
				if _, err := q.ExecContext(ctx, in.ID, st.nextSeq, toDB(ev.Time), ev.Reason, ev.Detail, ev.HoldID, ev.QueueID, ev.By); err != nil {
					return err
				}
				st.n++
				st.nextSeq++
				res.Kept = true
			}
			if changed, escalated := in.Absorb(f, created); changed {
				st.dirty = true
				res.Escalated = res.Escalated || escalated
			}
			out[i] = store.OpenResult{Incident: snapshot(in), Opened: res}
		}
		for _, st := range order {
			if !st.dirty {
				continue
			}
			q, err := prep(`UPDATE incidents SET severity = ?, playbook = ?, reasons = ?, updated = ? WHERE id = ?`)
			if err != nil {
				return err
			}
			in := st.in
			if _, err := q.ExecContext(ctx, string(in.Severity), in.Playbook, mustJSON(in.Reasons), toDB(in.Updated), in.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite store: OpenIncident: %w", err)
	}
	return out, nil
}

// snapshot copies an incident's row as it is now.
func snapshot(in *store.Incident) *store.Incident {
	c := *in
	c.Reasons = slices.Clone(in.Reasons)
	c.Steps = slices.Clone(in.Steps)
	c.Evidence = []store.Evidence{}
	return &c
}

// GetIncident implements store.Incidents.
func (s *Store) GetIncident(ctx context.Context, id int64) (*store.Incident, error) {
	in, err := scanIncident(s.r.QueryRowContext(ctx, `SELECT `+incidentCols+` FROM incidents WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("incident %d: %w", id, store.ErrNotFound)
	}
	if err == nil {
		err = loadEvidence(ctx, s.r, in)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite store: GetIncident: %w", err)
	}
	return in, nil
}

// ActiveIncident implements store.Incidents.
func (s *Store) ActiveIncident(ctx context.Context, account string) (*store.Incident, error) {
	in, err := scanIncident(s.r.QueryRowContext(ctx, `SELECT `+incidentCols+` FROM incidents WHERE account = ? AND state IN ('open', 'confirmed', 'contained')`, account))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("active incident of %q: %w", account, store.ErrNotFound)
	}
	if err == nil {
		err = loadEvidence(ctx, s.r, in)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite store: ActiveIncident: %w", err)
	}
	return in, nil
}

// ListIncidents implements store.Incidents.
func (s *Store) ListIncidents(ctx context.Context, f store.IncidentFilter) ([]store.Incident, error) {
	var (
		where []string
		args  []any
	)
	if f.State != "" {
		where = append(where, "state = ?")
		args = append(args, string(f.State))
	}
	if f.Active {
		where = append(where, "state IN ('open', 'confirmed', 'contained')")
	}
	if f.Account != "" {
		where = append(where, "account = ?")
		args = append(args, f.Account)
	}
	q := `SELECT ` + incidentCols + ` FROM incidents`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY updated DESC, id DESC LIMIT ? OFFSET ?`
	args = append(args, limit(f.Limit), max(f.Offset, 0))
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: ListIncidents: %w", err)
	}
	defer rows.Close()
	var list []*store.Incident
	for rows.Next() {
		in, err := scanIncident(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: ListIncidents: %w", err)
		}
		list = append(list, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: ListIncidents: %w", err)
	}
	rows.Close()
	if err := loadEvidence(ctx, s.r, list...); err != nil {
		return nil, fmt.Errorf("sqlite store: ListIncidents: %w", err)
	}
	out := make([]store.Incident, len(list))
	for i, in := range list {
		out[i] = *in
	}
	return out, nil
}

// SetIncidentState implements store.Incidents.
func (s *Store) SetIncidentState(ctx context.Context, id int64, from []store.IncidentState, to store.IncidentState, by, note string, at time.Time) error {
	if !to.Valid() {
		return fmt.Errorf("sqlite store: SetIncidentState: invalid state %q", to)
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var cur string
		var acct string
		if err := tx.QueryRowContext(ctx, `SELECT state, account FROM incidents WHERE id = ?`, id).Scan(&cur, &acct); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("incident %d: %w", id, store.ErrNotFound)
		} else if err != nil {
			return err
		}
		if !slices.Contains(from, store.IncidentState(cur)) {
			return fmt.Errorf("incident %d is %s: %w", id, cur, store.ErrConflict)
		}
		q := `UPDATE incidents SET state = ?, state_by = ?, updated = ?`
		args := []any{string(to), by, toDB(utcMicro(at))}
		if note != "" {
			q += `, note = ?`
			args = append(args, note)
		}
		_, err := tx.ExecContext(ctx, q+` WHERE id = ?`, append(args, id)...)
		if err != nil && strings.Contains(err.Error(), "UNIQUE") {
			// Reopening while the account has another active incident.
			return fmt.Errorf("account %s has another active incident: %w", acct, store.ErrConflict)
		}
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("sqlite store: SetIncidentState: %w", err)
	}
	return err
}

// PutStep implements store.Incidents.
func (s *Store) PutStep(ctx context.Context, id int64, st store.StepRecord) error {
	if st.Name == "" {
		return errors.New("sqlite store: PutStep: empty step name")
	}
	st.At = utcMicro(st.At)
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var steps string
		var updated int64
		if err := tx.QueryRowContext(ctx, `SELECT steps, updated FROM incidents WHERE id = ?`, id).Scan(&steps, &updated); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("incident %d: %w", id, store.ErrNotFound)
		} else if err != nil {
			return err
		}
		var list []store.StepRecord
		if err := json.Unmarshal([]byte(steps), &list); err != nil {
			return err
		}
		i := slices.IndexFunc(list, func(r store.StepRecord) bool { return r.Name == st.Name })
		if i < 0 {
			list = append(list, st)
		} else {
			list[i] = st
		}
		up := max(updated, toDB(st.At))
		_, err := tx.ExecContext(ctx, `UPDATE incidents SET steps = ?, updated = ? WHERE id = ?`, mustJSON(list), up, id)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("sqlite store: PutStep: %w", err)
	}
	return err
}
