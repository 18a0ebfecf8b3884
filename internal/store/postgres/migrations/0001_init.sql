-- 1: every table of the store, as SQLite's schema 9 has them. Times are
-- timestamptz (microseconds); lists are text[] in their order.

CREATE TABLE holds (
	id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- never reused: ids appear in audit targets
	queue_id        text        NOT NULL DEFAULT '',
	path            text        NOT NULL DEFAULT '',
	account         text        NOT NULL DEFAULT '',
	sender          text        NOT NULL DEFAULT '',
	recipients      text[]      NOT NULL DEFAULT '{}',
	recipient_count integer     NOT NULL DEFAULT 0,
	subject         text        NOT NULL DEFAULT '',
	client          text        NOT NULL DEFAULT '',
	client_family   text        NOT NULL DEFAULT '',
	client_address  text        NOT NULL DEFAULT '',
	reasons         text[]      NOT NULL DEFAULT '{}',
	size            bigint      NOT NULL DEFAULT 0,
	headers         text        NOT NULL DEFAULT '',
	preview         text        NOT NULL DEFAULT '',
	held_at         timestamptz NOT NULL,
	state           text        NOT NULL CHECK (state IN ('held', 'released', 'deleted', 'expired')),
	state_at        timestamptz NOT NULL,
	state_by        text        NOT NULL DEFAULT '',
	prints          text[]      NOT NULL DEFAULT '{}',
	node            text        NOT NULL DEFAULT '' -- the cluster node whose Postfix queue holds it
);
-- One held record per node and Postfix queue ID (two MTAs can give two
-- messages one queue ID); holds without one never collide. Postfix reuses
-- short queue IDs once a queue file is gone, so records no longer held
-- may share an ID with a newer message.
CREATE UNIQUE INDEX holds_queue_id ON holds (node, queue_id) WHERE queue_id <> '' AND state = 'held';
CREATE INDEX holds_queue_id_all ON holds (queue_id, id DESC);
-- ListHolds: newest first, optionally by state, account or node.
CREATE INDEX holds_held_at ON holds (held_at DESC, id DESC);
CREATE INDEX holds_state_held_at ON holds (state, held_at DESC, id DESC);
CREATE INDEX holds_account_held_at ON holds (account, held_at DESC, id DESC);
CREATE INDEX holds_node_held_at ON holds (node, held_at DESC, id DESC);
CREATE INDEX holds_reasons ON holds USING gin (reasons);
-- Prune: records that left the hold queue, by when.
CREATE INDEX holds_left_at ON holds (state_at) WHERE state <> 'held';

CREATE TABLE audit (
	id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	time   timestamptz NOT NULL,
	actor  text        NOT NULL,
	action text        NOT NULL,
	target text        NOT NULL,
	detail text        NOT NULL DEFAULT ''
);
CREATE INDEX audit_time ON audit (time DESC, id DESC);
CREATE INDEX audit_target_time ON audit (target, time DESC, id DESC);

-- Keys are bytea: any bytes, ordered bytewise as Go orders strings.
CREATE TABLE snapshots (
	key   bytea PRIMARY KEY,
	value bytea NOT NULL
);

CREATE TABLE accounts (
	name     text COLLATE "C" PRIMARY KEY,
	state    text        NOT NULL CHECK (state IN ('normal', 'watch', 'restricted', 'locked')),
	state_at timestamptz NOT NULL,
	state_by text        NOT NULL DEFAULT '',
	reason   text        NOT NULL DEFAULT ''
);
CREATE INDEX accounts_state_at ON accounts (state, state_at DESC, name);
CREATE INDEX accounts_at ON accounts (state_at DESC, name);

-- Steps are JSON: read and written with their incident, never queried on
-- their own. Evidence has rows of its own (incident_evidence).
CREATE TABLE incidents (
	id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account  text        NOT NULL,
	state    text        NOT NULL CHECK (state IN ('open', 'confirmed', 'contained', 'resolved', 'dismissed')),
	severity text        NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
	playbook text        NOT NULL DEFAULT '',
	reasons  text[]      NOT NULL DEFAULT '{}',
	steps    jsonb       NOT NULL DEFAULT '[]',
	opened   timestamptz NOT NULL,
	updated  timestamptz NOT NULL,
	state_by text        NOT NULL DEFAULT '',
	note     text        NOT NULL DEFAULT ''
);
-- One active incident per account.
CREATE UNIQUE INDEX incidents_active_account ON incidents (account) WHERE state IN ('open', 'confirmed', 'contained');
CREATE INDEX incidents_updated ON incidents (updated DESC, id DESC);
CREATE INDEX incidents_account ON incidents (account, updated DESC, id DESC);

CREATE TABLE incident_evidence (
	incident_id bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
	seq         integer     NOT NULL, -- 0, 1, … in the order added
	time        timestamptz NOT NULL,
	reason      text        NOT NULL DEFAULT '',
	detail      text        NOT NULL DEFAULT '',
	hold_id     bigint      NOT NULL DEFAULT 0,
	queue_id    text        NOT NULL DEFAULT '',
	actor       text        NOT NULL DEFAULT '', -- Evidence.By
	PRIMARY KEY (incident_id, seq)
);
-- A message's finding is recorded once per reason.
CREATE UNIQUE INDEX incident_evidence_message ON incident_evidence (incident_id, queue_id, reason) WHERE queue_id <> '';

CREATE TABLE users (
	name    text COLLATE "C" PRIMARY KEY,
	role    text        NOT NULL CHECK (role IN ('admin', 'helpdesk', 'viewer')),
	hash    text        NOT NULL,
	created timestamptz NOT NULL,
	updated timestamptz NOT NULL
);

CREATE TABLE tokens (
	id         text COLLATE "C" PRIMARY KEY,
	name       text        NOT NULL,
	role       text        NOT NULL CHECK (role IN ('admin', 'helpdesk', 'viewer')),
	hash       bytea       NOT NULL,
	created    timestamptz NOT NULL,
	expires    timestamptz, -- NULL: never
	last_used  timestamptz, -- NULL: never used
	created_by text        NOT NULL DEFAULT ''
);

CREATE TABLE trust (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account       text        NOT NULL,
	client_family text        NOT NULL,
	until         timestamptz NOT NULL,
	created       timestamptz NOT NULL,
	created_by    text        NOT NULL DEFAULT '',
	note          text        NOT NULL DEFAULT '',
	hold_id       bigint      NOT NULL DEFAULT 0
);
CREATE INDEX trust_until ON trust (until, id);

-- One row that readiness writes, so /readyz knows writes reach the
-- database (a full disk, a read-only standby).
CREATE TABLE health (
	id integer     PRIMARY KEY CHECK (id = 1),
	at timestamptz NOT NULL
);
