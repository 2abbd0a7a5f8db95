"""Outgoing HTTP for ChronoFlow's executors: the egress guard, the pooled client, capped reads."""

from chronoflow_egress.client import (
    ALLOWED_SCHEMES,
    DEFAULT_USER_AGENT,
    GuardedClient,
    GuardedTransport,
    build_client,
)
from chronoflow_egress.decision import (
    BlockReason,
    Decision,
    EgressBlocked,
    check_address,
    classify,
    literal_address,
)
from chronoflow_egress.exchange import (
    MAX_BODY_BYTES,
    SENSITIVE_HEADERS,
    CappedResponse,
    read_capped,
    redirect_request,
    send_capped,
)
from chronoflow_egress.metrics import EgressMetrics
from chronoflow_egress.policy import (
    ALLOW_ENV_VAR,
    DEVELOPMENT_ALLOWLIST,
    AllowEntry,
    EgressConfigError,
    EgressPolicy,
    EgressSettings,
    egress_policy,
    parse_allowlist,
)
from chronoflow_egress.resolver import GuardedResolver, StaticResolver

__all__ = [
    "ALLOWED_SCHEMES",
    "ALLOW_ENV_VAR",
    "DEFAULT_USER_AGENT",
    "DEVELOPMENT_ALLOWLIST",
    "MAX_BODY_BYTES",
    "SENSITIVE_HEADERS",
    "AllowEntry",
    "BlockReason",
    "CappedResponse",
    "Decision",
    "EgressBlocked",
    "EgressConfigError",
    "EgressMetrics",
    "EgressPolicy",
    "EgressSettings",
    "GuardedClient",
    "GuardedResolver",
    "GuardedTransport",
    "StaticResolver",
    "build_client",
    "check_address",
    "classify",
    "egress_policy",
    "literal_address",
    "parse_allowlist",
    "read_capped",
    "redirect_request",
    "send_capped",
]
