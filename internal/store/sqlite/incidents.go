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

const incidentCols = `id, account, state, severity, playbook, reasons, evidence, steps, opened, updated, state_by, note`

func scanIncident(sc interface{ Scan(...any) error }) (*store.Incident, error) {
	var (
		in                       store.Incident
		reasons, evidence, steps string
		opened, updated          int64
	)
	if err := sc.Scan(&in.ID, &in.Account, &in.State, &in.Severity, &in.Playbook, &reasons, &evidence, &steps, &opened, &updated, &in.StateBy, &in.Note); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		s string
		v any
	}{{reasons, &in.Reasons}, {evidence, &in.Evidence}, {steps, &in.Steps}} {
		if err := json.Unmarshal([]byte(f.s), f.v); err != nil {
			return nil, fmt.Errorf("incident %d: %w", in.ID, err)
		}
	}
	if in.Reasons == nil {
		in.Reasons = []string{}
	}
	if in.Evidence == nil {
		in.Evidence = []store.Evidence{}
	}
	if in.Steps == nil {
		in.Steps = []store.StepRecord{}
	}
	in.Opened, in.Updated = fromDB(opened), fromDB(updated)
	return &in, nil
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
func (s *Store) OpenIncident(ctx context.Context, account string, sev store.Severity, pb string, ev store.Evidence) (*store.Incident, bool, error) {
	if account == "" {
		return nil, false, errors.New("sqlite store: OpenIncident: empty account")
	}
	if !sev.Valid() {
		return nil, false, fmt.Errorf("sqlite store: OpenIncident: invalid severity %q", sev)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = utcMicro(ev.Time)
	var (
		out     *store.Incident
		created bool
	)
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		in, err := scanIncident(tx.QueryRowContext(ctx, `SELECT `+incidentCols+` FROM incidents WHERE account = ? AND state IN ('open', 'confirmed', 'contained')`, account))
		if errors.Is(err, sql.ErrNoRows) {
			in = &store.Incident{Account: account, State: store.IncidentOpen, Severity: sev, Playbook: pb, Reasons: []string{},
				Evidence: []store.Evidence{}, Steps: []store.StepRecord{}, Opened: ev.Time, Updated: ev.Time, StateBy: ev.By}
			created = true
		} else if err != nil {
			return err
		}
		if sev.Rank() > in.Severity.Rank() {
			// Stronger evidence brings its stronger playbook.
			in.Severity = sev
			if pb != "" {
				in.Playbook = pb
			}
		}
		if in.Playbook == "" {
			in.Playbook = pb
		}
		if ev.Reason != "" && !slices.Contains(in.Reasons, ev.Reason) {
			in.Reasons = append(in.Reasons, ev.Reason)
		}
		if len(in.Evidence) < store.MaxEvidence {
			in.Evidence = append(in.Evidence, ev)
		}
		if ev.Time.After(in.Updated) {
			in.Updated = ev.Time
		}
		if created {
			res, err := tx.ExecContext(ctx, `INSERT INTO incidents (account, state, severity, playbook, reasons, evidence, steps, opened, updated, state_by, note)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')`, in.Account, string(in.State), string(in.Severity), in.Playbook,
				mustJSON(in.Reasons), mustJSON(in.Evidence), mustJSON(in.Steps), toDB(in.Opened), toDB(in.Updated), in.StateBy)
			if err != nil {
				return err
			}
			in.ID, err = res.LastInsertId()
			if err != nil {
				return err
			}
		} else if _, err := tx.ExecContext(ctx, `UPDATE incidents SET severity = ?, playbook = ?, reasons = ?, evidence = ?, updated = ? WHERE id = ?`,
			string(in.Severity), in.Playbook, mustJSON(in.Reasons), mustJSON(in.Evidence), toDB(in.Updated), in.ID); err != nil {
			return err
		}
		out = in
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("sqlite store: OpenIncident: %w", err)
	}
	return out, created, nil
}

// GetIncident implements store.Incidents.
func (s *Store) GetIncident(ctx context.Context, id int64) (*store.Incident, error) {
	in, err := scanIncident(s.r.QueryRowContext(ctx, `SELECT `+incidentCols+` FROM incidents WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("incident %d: %w", id, store.ErrNotFound)
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
	out := []store.Incident{}
	for rows.Next() {
		in, err := scanIncident(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: ListIncidents: %w", err)
		}
		out = append(out, *in)
	}
	return out, rows.Err()
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
