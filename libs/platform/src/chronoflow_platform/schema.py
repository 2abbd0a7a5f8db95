"""The Postgres read models (projections) and service tables, as SQLAlchemy Core tables.

Migrations in ``chronoflow_platform.migrations`` create exactly these; a test keeps them equal.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

chronos = Table(
    "chronos",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("cron", Text, nullable=False),
    Column("timezone", Text, nullable=False),
    Column("schedule", JSONB, nullable=False),
    Column("target_type", String(16), nullable=False),
    Column("method", String(16)),
    Column("url", Text),
    Column("headers", JSONB, nullable=False),
    Column("payload", JSONB),
    Column("channel_id", String(36)),
    Column("message_template", Text),
    Column("recipients", JSONB, nullable=False),
    Column("function_id", String(36)),
    Column("extras", JSONB, nullable=False),
    Column("config", JSONB, nullable=False),
    Column("is_active", Boolean, nullable=False),
    # The next occurrence as the api computed it with the last definition change; the
    # scheduler's later choices live in ``chrono_run_state`` (see there).
    Column("next_run_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The stream sequence of the chrono's last event: the optimistic-concurrency version.
    Column("version", BigInteger, nullable=False),
    Index("ix_chronos_active_id", "is_active", "id"),
    Index("ix_chronos_target_type_id", "target_type", "id"),
)

# Folded from the runs stream only, so the two streams can be applied in any interleaving and
# a rebuild still arrives at identical tables. The api shows ``next_run_at`` from here when
# ``next_run_version`` has caught up with the chrono's version, else ``chronos.next_run_at``.
chrono_run_state = Table(
    "chrono_run_state",
    metadata,
    Column("chrono_id", String(36), primary_key=True),
    Column("last_run_at", DateTime(timezone=True)),
    Column("last_run_status", String(16)),
    Column("last_run_id", String(36)),
    Column("next_run_at", DateTime(timezone=True)),
    Column("next_run_version", BigInteger),
)

chrono_runs = Table(
    "chrono_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("chrono_id", String(36), nullable=False),
    Column("occurrence_id", String(36), nullable=False),
    Column("scheduled_for", DateTime(timezone=True), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("target_type", String(16)),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("duration_ms", Integer),
    Column("http_status", Integer),
    Column("response_snippet", Text),
    Column("error_message", Text),
    Column("result", JSONB),
    Column("will_retry", Boolean, nullable=False),
    # Newest first for GET /chronos/{id}/runs; the run id breaks ties.
    Index("ix_chrono_runs_chrono_sched", "chrono_id", "scheduled_for", "attempt", "id"),
)

channels = Table(
    "channels",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("provider", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("config", JSONB, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", BigInteger, nullable=False),
    Index("ix_channels_session", "provider", "config"),
)

functions = Table(
    "functions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("runtime", String(32), nullable=False),
    Column("limits", JSONB, nullable=False),
    Column("channel_id", String(36)),
    Column("function_version", Integer, nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", BigInteger, nullable=False),
)

# Function state is written by the function executor with compare-and-set on ``revision``;
# it is not a projection of events, so a rebuild of the read models keeps it.
function_state = Table(
    "function_state",
    metadata,
    Column("function_id", String(36), primary_key=True),
    Column("state", JSONB, nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# How far each projection has applied each stream; committed with the change it marks.
projection_checkpoints = Table(
    "projection_checkpoints",
    metadata,
    Column("stream", String(64), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", Text, nullable=False),
    # sha256 of the key: a leaked table does not leak usable keys (keys are long random tokens).
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

#: The tables a rebuild drops and replays from the streams.
PROJECTION_TABLES = (
    chronos,
    chrono_run_state,
    chrono_runs,
    channels,
    functions,
    projection_checkpoints,
)
