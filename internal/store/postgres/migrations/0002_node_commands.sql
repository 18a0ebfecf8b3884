-- Actions on held messages carried out by the node whose Postfix queue
-- holds them, asked for by any node (cluster mode).
CREATE TABLE node_commands (
	id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	node       text        NOT NULL,
	op         text        NOT NULL CHECK (op IN ('released', 'deleted')),
	hold_id    bigint      NOT NULL,
	actor      text        NOT NULL,
	from_node  text        NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL,
	state      text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'failed')),
	detail     text        NOT NULL DEFAULT '',
	done_at    timestamptz
);
CREATE INDEX node_commands_pending ON node_commands (node, id) WHERE state = 'pending';

-- Every node's last sign of life.
CREATE TABLE nodes (
	node    text        PRIMARY KEY,
	seen_at timestamptz NOT NULL,
	version text        NOT NULL DEFAULT ''
);
