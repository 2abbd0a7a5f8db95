"""The use case: send one attempt of a MESSAGE chrono to whoever still needs the text, record it,
and line up the next attempt for those who did not get it."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from chronoflow_contracts.runs import RunCompleted, RunRequested
from chronoflow_contracts.waha import SendErrorCode, WahaSendReply, WahaSendRequest
from chronoflow_executor_message import domain
from chronoflow_executor_message.domain import Recipient
from chronoflow_executor_message.gateway import TextSender
from chronoflow_executor_message.metrics import ExecutorMetrics
from chronoflow_platform.executor import rules
from chronoflow_platform.executor.runs import RunLedger

log = logging.getLogger(__name__)

#: The longest single pause when the gateway says the session's pacing is full; the question
#: is then asked again (progress is the gateway's to grant, this only bounds one sleep).
MAX_PACED_SLEEP_S = 30.0

Sleep = Callable[[float], Awaitable[None]]


class MessageExecutor:
    """Sends a RunRequested's text to its recipients and records RunStarted and RunCompleted.

    Idempotent per run: a redelivered request asks the gateway again for each recipient, and
    the gateway's record (keyed by occurrence and chat) answers without sending twice;
    JetStream drops the second RunStarted and RunCompleted, and the retry follows the outcome
    recorded first.
    """

    def __init__(
        self,
        *,
        ledger: RunLedger,
        gateway: TextSender,
        metrics: ExecutorMetrics,
        jitter: Callable[[], float] = random.random,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._ledger = ledger
        self._gateway = gateway
        self._metrics = metrics
        self._jitter = jitter
        self._sleep = sleep

    async def execute(self, request: RunRequested) -> RunCompleted:
        """Run the attempt and record it; returns the outcome history holds for this run."""
        run = self._ledger.open(request)
        await run.wait_started()
        recipients, stop, session = await self._send_all(request)
        finished = run.finish()
        self._metrics.runs.target_duration.observe(finished.elapsed)

        verdict = domain.judge(recipients, stop)
        policy = request.definition.config.retry
        due = rules.next_attempt(verdict, policy, request.attempt, finished.at, self._jitter())
        recorded = domain.finish(
            recipients,
            will_retry=due is not None,
            reason=verdict.error_message or "the run ended",
        )
        return await self._ledger.close(
            run,
            finished,
            status=verdict.status,
            due=due,
            http_status=verdict.http_status,
            error_message=verdict.error_message,
            result=domain.result(
                recorded,
                channel_id=request.definition.channel_id,
                session=session,
                next_attempt_at=due,
            ),
            # Who already has the text: the next attempt sends only to the others.
            carry_result=True,
        )

    async def give_up(self, request: RunRequested, reason: str) -> None:
        """Record a final failure for a request the executor could not process at all."""
        await self._ledger.give_up(request, reason)

    async def _send_all(
        self, request: RunRequested
    ) -> tuple[list[Recipient], WahaSendReply | None, str | None]:
        """Each recipient still in need, one after the other; stops early when the session or
        WhatsApp says so. Returns the recipients, the answer that stopped it, the session."""
        definition = request.definition
        problem = domain.definition_problem(definition)
        if problem is not None:
            refusal = WahaSendReply(ok=False, code=SendErrorCode.INVALID_REQUEST, error=problem)
            return [], refusal, None
        assert definition.channel_id is not None
        assert definition.message_template is not None
        recipients = domain.plan(definition.recipients, request.carried_result)
        session: str | None = None
        for index, recipient in enumerate(recipients):
            if recipient.settled or recipient.chat_id is None:
                continue
            reply = await self._send_one(
                WahaSendRequest(
                    channel_id=definition.channel_id,
                    chat_id=recipient.chat_id,
                    text=definition.message_template,
                    idempotency_key=domain.idempotency_key(
                        request.occurrence_id, recipient.chat_id
                    ),
                )
            )
            session = reply.session or session
            recipients[index] = domain.after_reply(recipient, reply, request.attempt)
            if domain.stops_the_attempt(reply):
                log.info(
                    "run %s stops after %s: %s", request.run_id, recipient.chat_id, reply.error
                )
                return recipients, reply, session
        return recipients, None, session

    async def _send_one(self, send: WahaSendRequest) -> WahaSendReply:
        while True:
            reply = await self._gateway.send(send)
            if reply.ok or reply.code is not SendErrorCode.PACED:
                return reply
            # The session's pacing is full: the text waits its turn, not another attempt.
            await self._sleep(min(reply.retry_after or 1.0, MAX_PACED_SLEEP_S))
