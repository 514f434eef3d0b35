"""SQL of operator accounts and their console sessions (:mod:`engine.store.operators`)."""

from __future__ import annotations

from typing import Final

CREATE_OPERATOR: Final = "INSERT INTO engine_operator (name, password_hash) VALUES ($1, $2) RETURNING id"
LIST_OPERATORS: Final = """
SELECT o.name, o.created_at, o.password_changed_at, o.last_login_at,
       (SELECT count(*) FROM engine_console_session s
         WHERE s.operator_id = o.id AND s.expires_at > now())::int AS sessions
FROM engine_operator o ORDER BY o.name
"""
DELETE_OPERATOR: Final = "DELETE FROM engine_operator WHERE name = $1 RETURNING id"
# A new password ends every session of the operator (a stolen cookie stops working with the old password).
SET_PASSWORD: Final = """
UPDATE engine_operator SET password_hash = $2, password_changed_at = now() WHERE name = $1 RETURNING id
"""
END_OPERATOR_SESSIONS: Final = "DELETE FROM engine_console_session WHERE operator_id = $1"
LOGIN_FACTS: Final = "SELECT id, name, password_hash FROM engine_operator WHERE name = $1"
UPGRADE_HASH: Final = "UPDATE engine_operator SET password_hash = $2 WHERE id = $1"

# ---- sessions (the cookie's token is never stored: only its sha256) ---------------------------
OPEN_SESSION: Final = """
WITH logged_in AS (UPDATE engine_operator SET last_login_at = now() WHERE id = $2)
INSERT INTO engine_console_session (id_hash, operator_id, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
"""
DROP_EXPIRED_SESSIONS: Final = "DELETE FROM engine_console_session WHERE expires_at <= now()"
# $1 id hash, $2 idle limit (s). stale: seen_at is worth refreshing (at most one write a minute per session).
SESSION: Final = """
SELECT o.id, o.name, s.seen_at < now() - interval '60 seconds' AS stale
FROM engine_console_session s JOIN engine_operator o ON o.id = s.operator_id
WHERE s.id_hash = $1 AND s.expires_at > now() AND s.seen_at > now() - make_interval(secs => $2)
"""
TOUCH_SESSION: Final = "UPDATE engine_console_session SET seen_at = now() WHERE id_hash = $1"
END_SESSION: Final = "DELETE FROM engine_console_session WHERE id_hash = $1"
