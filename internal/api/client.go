package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// Client calls a running daemon's admin API over its unix socket.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the admin socket at path.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns: 2,
	}
	return &Client{Socket: socket, hc: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

var _ Methods = (*Client)(nil)

// APIError is an error answered by the daemon.
type APIError struct {
	Status int
	Msg    string
}

func (e *APIError) Error() string { return e.Msg }

// Unwrap maps the status back to the package's sentinel errors.
func (e *APIError) Unwrap() error {
	switch e.Status {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, out any) error {
	return c.doBody(ctx, method, path, q, nil, out)
}

func (c *Client) doBody(ctx context.Context, method, path string, q url.Values, in, out any) error {
	u := "http://mailbrake" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return fmt.Errorf("cannot reach the mailbrake daemon at %s (is `mailbrake serve` running, and may you use its socket?): %w", c.Socket, op.Err)
		}
		return fmt.Errorf("calling the mailbrake daemon: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the daemon's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if json.Unmarshal(answer, &eb) == nil && eb.Error != "" {
			return &APIError{Status: resp.StatusCode, Msg: eb.Error}
		}
		return &APIError{Status: resp.StatusCode, Msg: resp.Status}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("decoding the daemon's answer: %w", err)
	}
	return nil
}

// Status implements Methods.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var v Status
	return &v, c.do(ctx, "GET", "/v1/status", nil, &v)
}

// RetireNode implements Methods.
func (c *Client) RetireNode(ctx context.Context, name string) (*RetiredNode, error) {
	var v RetiredNode
	if err := c.do(ctx, "DELETE", "/v1/nodes/"+url.PathEscape(name), nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// ListNodes implements Methods.
func (c *Client) ListNodes(ctx context.Context) (*NodeList, error) {
	var v NodeList
	if err := c.do(ctx, "GET", "/v1/nodes", nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// ListHolds implements Methods.
func (c *Client) ListHolds(ctx context.Context, r ListHoldsRequest) (*HoldList, error) {
	q := url.Values{}
	if r.State != "" {
		q.Set("state", r.State)
	}
	if r.Account != "" {
		q.Set("account", r.Account)
	}
	for k, v := range map[string]string{"reason": r.Reason, "client_family": r.ClientFamily, "q": r.Query} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !r.Since.IsZero() {
		q.Set("since", r.Since.UTC().Format(time.RFC3339))
	}
	if !r.Until.IsZero() {
		q.Set("until", r.Until.UTC().Format(time.RFC3339))
	}
	if r.Limit > 0 {
		q.Set("limit", strconv.Itoa(r.Limit))
	}
	if r.Offset > 0 {
		q.Set("offset", strconv.Itoa(r.Offset))
	}
	var v HoldList
	return &v, c.do(ctx, "GET", "/v1/holds", q, &v)
}

func (c *Client) hold(ctx context.Context, method, path string) (*store.Hold, error) {
	var v store.Hold
	if err := c.do(ctx, method, path, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// GetHold implements Methods.
func (c *Client) GetHold(ctx context.Context, id int64) (*store.Hold, error) {
	return c.hold(ctx, "GET", fmt.Sprintf("/v1/holds/%d", id))
}

// ReleaseHold implements Methods.
func (c *Client) ReleaseHold(ctx context.Context, id int64) (*store.Hold, error) {
	return c.hold(ctx, "POST", fmt.Sprintf("/v1/holds/%d/release", id))
}

// DeleteHold implements Methods.
func (c *Client) DeleteHold(ctx context.Context, id int64) (*store.Hold, error) {
	return c.hold(ctx, "POST", fmt.Sprintf("/v1/holds/%d/delete", id))
}

// BulkHolds implements Methods.
func (c *Client) BulkHolds(ctx context.Context, r BulkHoldsRequest) (*BulkHoldsResult, error) {
	var v BulkHoldsResult
	if err := c.doBody(ctx, "POST", "/v1/holds/bulk", nil, r, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// SyncQueue implements Methods.
func (c *Client) SyncQueue(ctx context.Context) (*SyncResult, error) {
	var v SyncResult
	return &v, c.do(ctx, "POST", "/v1/queue/sync", nil, &v)
}

// ListAudit implements Methods.
func (c *Client) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	q := url.Values{}
	if f.Target != "" {
		q.Set("target", f.Target)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339))
	}
	var v []store.AuditEntry
	return v, c.do(ctx, "GET", "/v1/audit", q, &v)
}

// ListAccounts implements Methods.
func (c *Client) ListAccounts(ctx context.Context, r ListAccountsRequest) ([]store.Account, error) {
	q := url.Values{}
	if r.State != "" {
		q.Set("state", r.State)
	}
	if r.Limit > 0 {
		q.Set("limit", strconv.Itoa(r.Limit))
	}
	var v []store.Account
	return v, c.do(ctx, "GET", "/v1/accounts", q, &v)
}

// GetAccount implements Methods.
func (c *Client) GetAccount(ctx context.Context, name string) (*AccountDetail, error) {
	var v AccountDetail
	if err := c.do(ctx, "GET", "/v1/accounts/"+url.PathEscape(name), nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// SetAccountState implements Methods.
func (c *Client) SetAccountState(ctx context.Context, r SetAccountStateRequest) (*store.Account, error) {
	var v store.Account
	if err := c.doBody(ctx, "POST", "/v1/accounts/"+url.PathEscape(r.Account)+"/state", nil, r, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// UnlockAccount implements Methods.
func (c *Client) UnlockAccount(ctx context.Context, r UnlockAccountRequest) (*store.Account, error) {
	var v store.Account
	if err := c.doBody(ctx, "POST", "/v1/accounts/"+url.PathEscape(r.Account)+"/unlock", nil, r, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// MarkHoldSpam implements Methods.
func (c *Client) MarkHoldSpam(ctx context.Context, id int64, note string) (*store.Incident, error) {
	var v store.Incident
	body := struct {
		Note string `json:"note"`
	}{note}
	if err := c.doBody(ctx, "POST", "/v1/holds/"+strconv.FormatInt(id, 10)+"/spam", nil, body, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// ListIncidents implements Methods.
func (c *Client) ListIncidents(ctx context.Context, r ListIncidentsRequest) ([]store.Incident, error) {
	q := url.Values{}
	if r.State != "" {
		q.Set("state", r.State)
	}
	if r.Account != "" {
		q.Set("account", r.Account)
	}
	if r.Limit > 0 {
		q.Set("limit", strconv.Itoa(r.Limit))
	}
	if r.Offset > 0 {
		q.Set("offset", strconv.Itoa(r.Offset))
	}
	var v []store.Incident
	if err := c.do(ctx, "GET", "/v1/incidents", q, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// GetIncident implements Methods.
func (c *Client) GetIncident(ctx context.Context, id int64) (*store.Incident, error) {
	var v store.Incident
	if err := c.do(ctx, "GET", "/v1/incidents/"+strconv.FormatInt(id, 10), nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// OpenIncident implements Methods.
func (c *Client) OpenIncident(ctx context.Context, r OpenIncidentRequest) (*store.Incident, error) {
	var v store.Incident
	if err := c.doBody(ctx, "POST", "/v1/incidents", nil, r, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// ChangeIncident implements Methods.
func (c *Client) ChangeIncident(ctx context.Context, r ChangeIncidentRequest) (*store.Incident, error) {
	var v store.Incident
	if err := c.doBody(ctx, "POST", "/v1/incidents/"+strconv.FormatInt(r.ID, 10)+"/"+url.PathEscape(r.Change), nil, r, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// ReleaseAndTrust implements Methods.
func (c *Client) ReleaseAndTrust(ctx context.Context, id int64, r TrustRequest) (*store.Hold, error) {
	var v store.Hold
	if err := c.doBody(ctx, "POST", "/v1/holds/"+strconv.FormatInt(id, 10)+"/release-and-trust", nil, r, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// ListTrust implements Methods.
func (c *Client) ListTrust(ctx context.Context) ([]store.TrustEntry, error) {
	var v []store.TrustEntry
	return v, c.do(ctx, "GET", "/v1/trust", nil, &v)
}

// DeleteTrust implements Methods.
func (c *Client) DeleteTrust(ctx context.Context, id int64) error {
	return c.do(ctx, "DELETE", "/v1/trust/"+strconv.FormatInt(id, 10), nil, nil)
}

// Dashboard implements Methods.
func (c *Client) Dashboard(ctx context.Context) (*Dashboard, error) {
	var v Dashboard
	return &v, c.do(ctx, "GET", "/v1/dashboard", nil, &v)
}

// AccountTimeline implements Methods.
func (c *Client) AccountTimeline(ctx context.Context, name string) (*Timeline, error) {
	var v Timeline
	return &v, c.do(ctx, "GET", "/v1/accounts/"+url.PathEscape(name)+"/timeline", nil, &v)
}

// Config implements Methods.
func (c *Client) Config(ctx context.Context) (string, error) {
	var v struct {
		YAML string `json:"yaml"`
	}
	err := c.do(ctx, "GET", "/v1/config", nil, &v)
	return v.YAML, err
}

// ListUsers implements Methods.
func (c *Client) ListUsers(ctx context.Context) ([]store.User, error) {
	var v []store.User
	return v, c.do(ctx, "GET", "/v1/users", nil, &v)
}

// PutUser implements Methods.
func (c *Client) PutUser(ctx context.Context, r PutUserRequest) (*store.User, error) {
	var v store.User
	if err := c.doBody(ctx, "PUT", "/v1/users/"+url.PathEscape(r.Name), nil, r, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// RemoveUser implements Methods.
func (c *Client) RemoveUser(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/v1/users/"+url.PathEscape(name), nil, nil)
}

// ListTokens implements Methods.
func (c *Client) ListTokens(ctx context.Context) ([]store.Token, error) {
	var v []store.Token
	return v, c.do(ctx, "GET", "/v1/tokens", nil, &v)
}

// CreateToken implements Methods.
func (c *Client) CreateToken(ctx context.Context, r CreateTokenRequest) (*NewToken, error) {
	var v NewToken
	if err := c.doBody(ctx, "POST", "/v1/tokens", nil, r, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// RevokeToken implements Methods.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/v1/tokens/"+url.PathEscape(id), nil, nil)
}
