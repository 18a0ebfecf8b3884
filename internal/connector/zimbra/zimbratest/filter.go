package zimbratest

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"time"
)

// This file models ZimbraInvalidLoginFilter
// (store/src/java/com/zimbra/cs/servlet/ZimbraInvalidLoginFilter.java at
// zm-mailbox commit 2b7f9787c69ed6b95ce37a415ba27c50f1091c72), mapped to
// every URL of the service webapp, the admin SOAP servlet included
// (store/conf/web.xml lines 45–54, 273–295). Each mailboxd keeps its own
// counts:
//
//   - a request whose handler failed with AuthFailedServiceException
//     (account.AUTH_FAILED from AuthRequest; SoapEngine.java lines 660–667)
//     adds one to its client IP's count, which nothing but reinstatement
//     resets, a successful login included (lines 134–160);
//   - once the count exceeds zimbraInvalidLoginFilterMaxFailedLogin
//     (globalConfigValue 10, zimbra-attrs.xml lines 8147–8151) the IP is
//     suspended: every later request from it, whatever it is, gets HTTP 503
//     from res.sendError, a Jetty error page and not a SOAP fault
//     (lines 127–130), and does not reach the SOAP engine;
//   - a timer task, first after one second and then every
//     zimbraInvalidLoginFilterReinstateIpTaskIntervalInMin (5) minutes,
//     reinstates the IPs suspended for more than
//     zimbraInvalidLoginFilterDelayInMinBetwnReqBeforeReinstating (15)
//     minutes (lines 99–100, 176–200): a suspension lasts 15 to 20 minutes.
//
// Zimbra never counts loopback and its own servers (DoSFilter.java lines
// 43–64); the fake counts every client, tests connecting from 127.0.0.1.

const (
	invalidLoginDefaultMax = 10
	reinstateDelay         = 15 * time.Minute
	reinstateInterval      = 5 * time.Minute
	reinstateFirstRun      = time.Second
)

// loginFilter is one server's ZimbraInvalidLoginFilter state.
type loginFilter struct {
	nextTask  time.Time
	failed    map[string]int
	suspended map[string]time.Time
}

// newLoginFilter is the filter as init leaves it at server start.
func newLoginFilter(now time.Time) loginFilter {
	return loginFilter{nextTask: now.Add(reinstateFirstRun), failed: map[string]int{}, suspended: map[string]time.Time{}}
}

func (s *Server) maxFailedLogin() int {
	switch m := s.opts.InvalidLoginFilterMaxFailedLogin; {
	case m == 0:
		return invalidLoginDefaultMax
	case m < 0:
		return 0 // "if set to 0 no check happens"
	default:
		return m
	}
}

// runReinstateTask runs the timer task for every run due by now.
func (s *Server) runReinstateTask() {
	f := &s.filter
	for now := s.opts.Now(); !f.nextTask.After(now); f.nextTask = f.nextTask.Add(reinstateInterval) {
		for ip, at := range f.suspended {
			if f.nextTask.Sub(at) > reinstateDelay {
				delete(f.suspended, ip)
				delete(f.failed, ip)
			}
		}
	}
}

// suspendedIP reports whether the filter refuses requests from ip now.
func (s *Server) suspendedIP(ip string) bool {
	if s.maxFailedLogin() <= 0 {
		return false
	}
	s.runReinstateTask()
	_, ok := s.filter.suspended[ip]
	return ok
}

// loginFailed counts a failed login from ip and suspends it past the
// limit.
func (s *Server) loginFailed(ip string) {
	if s.maxFailedLogin() <= 0 {
		return
	}
	s.runReinstateTask()
	s.filter.failed[ip]++
	if s.filter.failed[ip] > s.maxFailedLogin() {
		s.filter.suspended[ip] = s.opts.Now()
	}
}

// clientIP is the request's client address, as RemoteIP gives it without
// a trusted proxy.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// refuseSuspended answers a request from a suspended IP as Jetty's
// sendError(503) does, and records it. It reports false when ip is not
// suspended.
func (s *Server) refuseSuspended(w http.ResponseWriter, ip string, data []byte) bool {
	s.mu.Lock()
	suspended := s.suspendedIP(ip)
	if suspended {
		name := "(unparsed)"
		var req request
		if json.Unmarshal(bytes.TrimSpace(data), &req) == nil && len(req.Body) == 1 {
			for name = range req.Body {
			}
		}
		s.calls = append(s.calls, Call{Request: name, Server: s.name, primary: s == s.servers[0], HTTPStatus: http.StatusServiceUnavailable})
	}
	s.mu.Unlock()
	if !suspended {
		return false
	}
	w.Header().Set("Content-Type", "text/html;charset=iso-8859-1")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte("<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=ISO-8859-1\"/>\n" +
		"<title>Error 503 Service Unavailable</title>\n</head>\n<body><h2>HTTP ERROR 503</h2>\n<p>Problem accessing /service/admin/soap. " +
		"Reason:\n<pre>    Service Unavailable</pre></p>\n</body>\n</html>\n"))
	return true
}
