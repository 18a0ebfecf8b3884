-- Browser sessions, by the SHA-256 of their ID (the ID itself is never
-- stored): every node knows each session, and one ended on any node is
-- ended on all of them. Additive: a node of the previous version keeps its
-- sessions in its memory, as before.
CREATE TABLE sessions (
	hash         bytea       PRIMARY KEY CHECK (length(hash) = 32),
	name         text COLLATE "C" NOT NULL, -- the user
	role         text        NOT NULL CHECK (role IN ('admin', 'helpdesk', 'viewer')),
	user_updated timestamptz NOT NULL, -- the user's updated when the session began
	created      timestamptz NOT NULL,
	seen         timestamptz NOT NULL
);
CREATE INDEX sessions_name ON sessions (name);
CREATE INDEX sessions_seen ON sessions (seen);
