-- Which process wrote a node's last heartbeat: two running processes
-- under one node name (a cloned host, a copied configuration) write in
-- turn, and each sees the other's (store.Commands.Heartbeat). Additive:
-- a node of the previous version keeps writing its heartbeat ('').
ALTER TABLE nodes ADD COLUMN instance text NOT NULL DEFAULT '';

-- A hold's commands not carried out yet: shown on the hold, and a second
-- one refused while one waits.
CREATE INDEX node_commands_waiting ON node_commands (hold_id) WHERE state IN ('pending', 'running');
