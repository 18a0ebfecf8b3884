package loadgen

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
)

// message is one SMTP transaction as both generators describe it. The
// session fields stay the same for all messages of one SMTP session.
type message struct {
	// session
	userNo int
	user   string // SASL login, {auth_authen}; also the sender
	client string // client IP address (documentation prefixes only)
	port   uint16
	helo   string

	// transaction
	sender   string
	rcpts    []string
	queueID  string
	instance string
	size     int
}

// msgGen draws users and messages for one connection.
type msgGen struct {
	c     *common
	rng   *rand.Rand
	users *userDist
}

func newMsgGen(c *common, wid int, salt uint64) *msgGen {
	rng := workerRand(c.seed, wid, salt)
	return &msgGen{c: c, rng: rng, users: newUserDist(rng, c.users, c.skew)}
}

func userName(n int) string { return fmt.Sprintf("user%05d@example.com", n) }

// newSession draws the user of a new SMTP session. Each user submits from
// a stable address, as a person's mail client does.
func (g *msgGen) newSession(m *message) {
	u := g.users.next()
	m.userNo = u
	m.user = userName(u)
	m.client = clientAddr(u)
	m.port = uint16(1024 + g.rng.IntN(60000))
	// Mail clients behind NAT greet with an address literal.
	m.helo = "[" + m.client + "]"
}

// newTransaction draws the next message of the current session.
func (g *msgGen) newTransaction(m *message) {
	m.sender = m.user
	m.rcpts = m.rcpts[:0]
	for range g.c.rcpts {
		m.rcpts = append(m.rcpts, fmt.Sprintf("rcpt%d@example%d.net", g.rng.IntN(100000), g.rng.IntN(50)))
	}
	// Postfix's short queue IDs: 11 upper-case hex digits.
	m.queueID = fmt.Sprintf("%05X%06X", g.rng.IntN(1<<20), g.rng.IntN(1<<24))
	m.size = 5000 + g.rng.IntN(20000)
}

// words make up generated bodies: business-like plain text that no
// content filter has a reason to single out.
var words = strings.Fields(`the quarterly report attached please review numbers before
meeting tomorrow we need your approval budget project timeline customer feedback invoice
shipping delayed warehouse schedule update regards thanks team office lunch friday agenda
contract renewal pricing discount proposal draft final version comments section summary`)

// makeBody returns a plain-text body of size bytes (at least the final
// CRLF) with CRLF line ends and lines of at most 76 characters, as Postfix
// hands a body to a milter.
func makeBody(rng *rand.Rand, size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 2)
	line := 0
	for b.Len() < size-2 {
		w := words[rng.IntN(len(words))]
		switch {
		case line+1+len(w) > 76:
			b.WriteString("\r\n")
			line = 0
		case line > 0:
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	out := b.Bytes()
	if len(out) > size-2 && size >= 2 {
		out = out[:size-2]
		// Do not cut a CRLF in half.
		out = bytes.TrimSuffix(out, []byte("\r"))
	}
	out = append(out, '\r', '\n')
	return out
}

// bodyPoolSize bodies are generated before a run, so generating text
// costs nothing in the load loop; 64 gives enough variety in sizes.
const bodyPoolSize = 64

func makeBodies(seed uint64, minSize, maxSize int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 99))
	bodies := make([][]byte, bodyPoolSize)
	for i := range bodies {
		bodies[i] = makeBody(rng, minSize+rng.IntN(maxSize-minSize+1))
	}
	return bodies
}
