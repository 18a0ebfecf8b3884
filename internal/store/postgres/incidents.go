package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailbrake/mailbrake/internal/store"
)

const incidentCols = `id, account, state, severity, playbook, reasons, steps, opened, updated, state_by, note`

const activeStates = `('open', 'confirmed', 'contained')`

// scanIncident reads the incident's own row; its evidence is in
// incident_evidence (loadEvidence).
func scanIncident(row pgx.Row) (*store.Incident, error) {
	var (
		in    store.Incident
		steps []byte
	)
	if err := row.Scan(&in.ID, &in.Account, &in.State, &in.Severity, &in.Playbook, &in.Reasons, &steps, &in.Opened, &in.Updated, &in.StateBy, &in.Note); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(steps, &in.Steps); err != nil {
		return nil, fmt.Errorf("incident %d: steps: %w", in.ID, err)
	}
	in.Reasons = list(in.Reasons)
	in.Evidence = []store.Evidence{}
	if in.Steps == nil {
		in.Steps = []store.StepRecord{}
	}
	in.Opened, in.Updated = utc(in.Opened), utc(in.Updated)
	return &in, nil
}

// loadEvidence fills the evidence of the given incidents, in the order it
// was added.
func loadEvidence(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, ins ...*store.Incident) error {
	if len(ins) == 0 {
		return nil
	}
	byID := make(map[int64]*store.Incident, len(ins))
	ids := make([]int64, len(ins))
	for i, in := range ins {
		byID[in.ID] = in
		ids[i] = in.ID
	}
	rows, err := q.Query(ctx, `SELECT incident_id, time, reason, detail, hold_id, queue_id, actor FROM incident_evidence
		WHERE incident_id = ANY($1) ORDER BY incident_id, seq`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id int64
			ev store.Evidence
		)
		if err := rows.Scan(&id, &ev.Time, &ev.Reason, &ev.Detail, &ev.HoldID, &ev.QueueID, &ev.By); err != nil {
			return err
		}
		ev.Time = utc(ev.Time)
		if in := byID[id]; in != nil {
			in.Evidence = append(in.Evidence, ev)
		}
	}
	return rows.Err()
}

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

// OpenIncidents implements store.Incidents. The account's active incident
// is read with FOR UPDATE, or created with an insert that yields to
// another node's (the unique index of active incidents), so findings from
// several nodes join one incident and number its evidence without a gap
// or a clash.
func (s *Store) OpenIncidents(ctx context.Context, fs []store.IncidentFinding) ([]store.OpenResult, error) {
	fs = slices.Clone(fs)
	for i := range fs {
		f := &fs[i]
		if f.Account == "" {
			return nil, errors.New("postgres store: OpenIncident: empty account")
		}
		if !f.Severity.Valid() {
			return nil, fmt.Errorf("postgres store: OpenIncident: invalid severity %q", f.Severity)
		}
		if f.Evidence.Time.IsZero() {
			f.Evidence.Time = time.Now()
		}
		f.Evidence.Time = utcMicro(f.Evidence.Time)
		ev := &f.Evidence
		ev.Reason, ev.Detail, ev.QueueID, ev.By = text(ev.Reason), text(ev.Detail), text(ev.QueueID), text(ev.By)
	}
	var out []store.OpenResult
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		out = make([]store.OpenResult, len(fs))
		open := map[string]*openState{}
		var order []*openState
		for i, f := range fs {
			ev := f.Evidence
			st := open[f.Account]
			created := false
			if st == nil {
				var err error
				st, created, err = lockActive(ctx, tx, f, ev)
				if err != nil {
					return err
				}
				open[f.Account] = st
				order = append(order, st)
			}
			in := st.in
			res := store.Opened{Created: created}
			if ev.QueueID != "" && !created {
				var dup bool
				if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM incident_evidence
					WHERE incident_id = $1 AND queue_id = $2 AND queue_id <> '' AND reason = $3)`,
					in.ID, ev.QueueID, ev.Reason).Scan(&dup); err != nil {
					return err
				}
				if dup {
					res.Duplicate = true
					out[i] = store.OpenResult{Incident: snapshot(in), Opened: res}
					continue
				}
			}
			if st.n < store.MaxEvidence {
				if _, err := tx.Exec(ctx, `INSERT INTO incident_evidence (incident_id, seq, time, reason, detail, hold_id, queue_id, actor)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
					in.ID, st.nextSeq, ev.Time, ev.Reason, ev.Detail, ev.HoldID, ev.QueueID, ev.By); err != nil {
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
			in := st.in
			if _, err := tx.Exec(ctx, `UPDATE incidents SET severity = $1, playbook = $2, reasons = $3, updated = $4 WHERE id = $5`,
				string(in.Severity), in.Playbook, list(in.Reasons), in.Updated, in.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres store: OpenIncident: %w", err)
	}
	return out, nil
}

// lockActive returns the account's active incident, locked for this
// transaction, or opens one.
func lockActive(ctx context.Context, tx pgx.Tx, f store.IncidentFinding, ev store.Evidence) (*openState, bool, error) {
	for range mergeAttempts {
		in, err := scanIncident(tx.QueryRow(ctx, `SELECT `+incidentCols+` FROM incidents
			WHERE account = $1 AND state IN `+activeStates+` FOR UPDATE`, f.Account))
		if err == nil {
			st := &openState{in: in}
			if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(max(seq) + 1, 0) FROM incident_evidence WHERE incident_id = $1`,
				in.ID).Scan(&st.n, &st.nextSeq); err != nil {
				return nil, false, err
			}
			return st, false, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, false, err
		}
		in = &store.Incident{Account: f.Account, State: store.IncidentOpen, Severity: f.Severity, Playbook: f.Playbook, Reasons: []string{},
			Evidence: []store.Evidence{}, Steps: []store.StepRecord{}, Opened: ev.Time, Updated: ev.Time, StateBy: ev.By}
		err = tx.QueryRow(ctx, `INSERT INTO incidents (account, state, severity, playbook, reasons, steps, opened, updated, state_by, note)
			VALUES ($1, $2, $3, $4, '{}', '[]', $5, $6, $7, '')
			ON CONFLICT (account) WHERE state IN `+activeStates+` DO NOTHING RETURNING id`,
			in.Account, string(in.State), string(in.Severity), in.Playbook, in.Opened, in.Updated, in.StateBy).Scan(&in.ID)
		if err == nil {
			return &openState{in: in}, true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, false, err
		}
		// Another node opened the account's incident meanwhile: join it.
	}
	return nil, false, fmt.Errorf("account %s: the active incident kept changing", f.Account)
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
	in, err := scanIncident(s.pool.QueryRow(ctx, `SELECT `+incidentCols+` FROM incidents WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("incident %d: %w", id, store.ErrNotFound)
	}
	if err == nil {
		err = loadEvidence(ctx, s.pool, in)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres store: GetIncident: %w", err)
	}
	return in, nil
}

// ActiveIncident implements store.Incidents.
func (s *Store) ActiveIncident(ctx context.Context, account string) (*store.Incident, error) {
	in, err := scanIncident(s.pool.QueryRow(ctx, `SELECT `+incidentCols+` FROM incidents WHERE account = $1 AND state IN `+activeStates, account))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("active incident of %q: %w", account, store.ErrNotFound)
	}
	if err == nil {
		err = loadEvidence(ctx, s.pool, in)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres store: ActiveIncident: %w", err)
	}
	return in, nil
}

// ListIncidents implements store.Incidents.
func (s *Store) ListIncidents(ctx context.Context, f store.IncidentFilter) ([]store.Incident, error) {
	var (
		where []string
		a     args
	)
	if f.State != "" {
		where = append(where, "state = "+a.add(string(f.State)))
	}
	if f.Active {
		where = append(where, "state IN "+activeStates)
	}
	if f.Account != "" {
		where = append(where, "account = "+a.add(f.Account))
	}
	q := `SELECT ` + incidentCols + ` FROM incidents`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY updated DESC, id DESC LIMIT ` + a.add(limit(f.Limit)) + ` OFFSET ` + a.add(max(f.Offset, 0))
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("postgres store: ListIncidents: %w", err)
	}
	defer rows.Close()
	var ins []*store.Incident
	for rows.Next() {
		in, err := scanIncident(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres store: ListIncidents: %w", err)
		}
		ins = append(ins, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres store: ListIncidents: %w", err)
	}
	rows.Close()
	if err := loadEvidence(ctx, s.pool, ins...); err != nil {
		return nil, fmt.Errorf("postgres store: ListIncidents: %w", err)
	}
	out := make([]store.Incident, len(ins))
	for i, in := range ins {
		out[i] = *in
	}
	return out, nil
}

// SetIncidentState implements store.Incidents.
func (s *Store) SetIncidentState(ctx context.Context, id int64, from []store.IncidentState, to store.IncidentState, by, note string, at time.Time) error {
	if !to.Valid() {
		return fmt.Errorf("postgres store: SetIncidentState: invalid state %q", to)
	}
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		var cur, acct string
		if err := tx.QueryRow(ctx, `SELECT state, account FROM incidents WHERE id = $1 FOR UPDATE`, id).Scan(&cur, &acct); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("incident %d: %w", id, store.ErrNotFound)
		} else if err != nil {
			return err
		}
		if !slices.Contains(from, store.IncidentState(cur)) {
			return fmt.Errorf("incident %d is %s: %w", id, cur, store.ErrConflict)
		}
		var a args
		q := `UPDATE incidents SET state = ` + a.add(string(to)) + `, state_by = ` + a.add(by) + `, updated = ` + a.add(utcMicro(at))
		if note != "" {
			q += `, note = ` + a.add(note)
		}
		_, err := tx.Exec(ctx, q+` WHERE id = `+a.add(id), a...)
		if uniqueViolation(err) {
			// Reopening while the account has another active incident.
			return fmt.Errorf("account %s has another active incident: %w", acct, store.ErrConflict)
		}
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("postgres store: SetIncidentState: %w", err)
	}
	return err
}

// PutStep implements store.Incidents.
func (s *Store) PutStep(ctx context.Context, id int64, st store.StepRecord) error {
	if st.Name == "" {
		return errors.New("postgres store: PutStep: empty step name")
	}
	st.At = utcMicro(st.At)
	err := s.writeTx(ctx, func(tx pgx.Tx) error {
		var (
			steps   []byte
			updated time.Time
		)
		if err := tx.QueryRow(ctx, `SELECT steps, updated FROM incidents WHERE id = $1 FOR UPDATE`, id).Scan(&steps, &updated); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("incident %d: %w", id, store.ErrNotFound)
		} else if err != nil {
			return err
		}
		var list []store.StepRecord
		if err := json.Unmarshal(steps, &list); err != nil {
			return err
		}
		i := slices.IndexFunc(list, func(r store.StepRecord) bool { return r.Name == st.Name })
		if i < 0 {
			list = append(list, st)
		} else {
			list[i] = st
		}
		b, err := json.Marshal(list)
		if err != nil {
			return err
		}
		if st.At.After(updated) {
			updated = st.At
		}
		_, err = tx.Exec(ctx, `UPDATE incidents SET steps = $1, updated = $2 WHERE id = $3`, b, updated, id)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("postgres store: PutStep: %w", err)
	}
	return err
}
