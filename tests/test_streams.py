"""Stream provisioning is idempotent, and the schedules stream fires ``@at`` messages.

The second test is the mechanism the scheduler relies on, checked against a real nats-server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType

from chronoflow_contracts import names, new_id
from chronoflow_platform import jetstream
from chronoflow_platform.jetstream import stream_configs

ALL_STREAMS = (names.EVENTS_STREAM, names.RUNS_STREAM, names.WORK_STREAM, names.SCHEDULES_STREAM)


async def test_provisioning_twice_changes_nothing(js: JetStreamContext) -> None:
    before = {s: (await js.stream_info(s)) for s in ALL_STREAMS}
    await jetstream.provision_streams(js, duplicate_window=120.0)
    await jetstream.provision_streams(js, duplicate_window=120.0)
    after = {s: (await js.stream_info(s)) for s in ALL_STREAMS}
    for name in ALL_STREAMS:
        assert after[name].config == before[name].config
        assert after[name].created == before[name].created  # not re-created
        assert after[name].config.storage == StorageType.FILE


async def test_provisioning_updates_a_changed_setting_in_place(js: JetStreamContext) -> None:
    await jetstream.provision_streams(js, duplicate_window=60.0)
    info = await js.stream_info(names.EVENTS_STREAM)
    assert info.config.duplicate_window == 60.0
    await jetstream.provision_streams(js, duplicate_window=120.0)
    assert (await js.stream_info(names.EVENTS_STREAM)).config.duplicate_window == 120.0


def test_no_stream_uses_interest_retention() -> None:
    # Interest retention loses schedules (and events nobody listens to yet).
    for cfg in stream_configs(duplicate_window=60):
        assert cfg.retention in (RetentionPolicy.LIMITS, RetentionPolicy.WORK_QUEUE)
    schedules = next(c for c in stream_configs(duplicate_window=60) if c.name == "CF_SCHEDULES")
    assert schedules.allow_msg_schedules
    assert schedules.max_msgs_per_subject == 1


async def test_schedule_message_fires_into_its_target_and_replacement_wins(
    js: JetStreamContext,
) -> None:
    chrono_id = new_id()
    fired = names.schedule_fired_subject(chrono_id)
    sub = await js.pull_subscribe(fired, durable=f"t-{chrono_id}", stream=names.SCHEDULES_STREAM)
    due = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)

    async def schedule(body: bytes, msg_id: str) -> None:
        await js.publish(
            names.schedule_subject(chrono_id),
            body,
            headers={
                names.SCHEDULE: f"@at {due.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                names.SCHEDULE_TARGET: fired,
                names.MSG_ID: msg_id,
                names.DUE_AT: due.isoformat(),
            },
        )

    await schedule(b"first", f"chrono-{chrono_id}-1")
    # Re-publishing replaces the pending schedule: only the second one may fire.
    await schedule(b"second", f"chrono-{chrono_id}-2")

    msgs = await sub.fetch(1, timeout=15)
    fired_at = datetime.now(UTC)
    assert [m.data for m in msgs] == [b"second"]
    assert msgs[0].headers is not None
    assert msgs[0].headers[names.DUE_AT] == due.isoformat()
    assert fired_at >= due - timedelta(milliseconds=500)
    await msgs[0].ack()
    # Nothing else fires: the first schedule was replaced, not queued.
    await sub.unsubscribe()
    info = await js.consumer_info(names.SCHEDULES_STREAM, f"t-{chrono_id}")
    assert info.num_pending == 0
    await js.delete_consumer(names.SCHEDULES_STREAM, f"t-{chrono_id}")
