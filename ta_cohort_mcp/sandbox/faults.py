"""Fault injection and request counting for the sandbox, off until a test adds rules.

A `FaultPlan` is an ordered list of `FaultRule`s. Each rule names an endpoint (the
path after `/open/`, such as `user-cluster-add`, or `*` for every endpoint), a kind
and a count: the rule applies to the next `count` matching requests, or to every
matching request when `count` is None.

How a request meets the plan, in rule order:

- every matching `latency` rule delays the request by its `seconds`;
- the first matching rule of any other request kind (`http_500`, `http_429`,
  `drop`, `malformed`, `html`, `return_code`) replaces the response; later rules
  of those kinds are left untouched for the next request;
- `slow_refresh` rules are not used by requests. A refresh started by a matching
  endpoint (add, update, refresh, or a restart) consumes one and steps its
  progress over `seconds`.

`RequestStats` counts each request that reached an `/open/` endpoint, before any
fault applies.
"""

import logging
import threading
from collections import Counter
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

logger = logging.getLogger(__name__)

# The fourteen endpoints of the Open API for clusters and tags, by path after /open/.
ENDPOINTS: tuple[str, ...] = (
    "user-cluster-add",
    "user-cluster-detail",
    "user-cluster-update",
    "user-cluster-update-by-name",
    "user-cluster-delete",
    "delete-user-cluster-by-name",
    "user-cluster-list",
    "user-cluster-refresh",
    "user-cluster-refresh-by-name",
    "user-cluster-refresh-progress",
    "user-cluster-refresh-progress-by-name",
    "import-id-cluster-add",
    "import-id-cluster-modify",
    "import-id-cluster-modify-by-name",
)
ANY_ENDPOINT = "*"


class FaultKind(StrEnum):
    """Effect of a fault rule on a matching request or refresh."""

    LATENCY = "latency"
    HTTP_500 = "http_500"
    HTTP_429 = "http_429"
    DROP = "drop"
    MALFORMED = "malformed"
    HTML = "html"
    RETURN_CODE = "return_code"
    SLOW_REFRESH = "slow_refresh"


# Kinds that replace the response of the request they match.
RESPONSE_KINDS = frozenset(
    {
        FaultKind.HTTP_500,
        FaultKind.HTTP_429,
        FaultKind.DROP,
        FaultKind.MALFORMED,
        FaultKind.HTML,
        FaultKind.RETURN_CODE,
    }
)


class FaultRule(BaseModel):
    """One fault: which endpoint, what kind, how many times, and its settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    endpoint: str = Field(
        default=ANY_ENDPOINT,
        description="Endpoint path after /open/, such as user-cluster-add, or *.",
    )
    count: int | None = Field(
        default=None,
        ge=1,
        description="Apply to the next `count` matching requests; None means always.",
    )
    seconds: float = Field(
        default=1.0,
        ge=0,
        le=300,
        description="Delay of latency, or duration of slow_refresh, in seconds.",
    )
    retry_after: int = Field(
        default=1, ge=0, description="Retry-After header of http_429, in seconds."
    )
    return_code: int = Field(default=-1, description="Code sent by return_code.")
    return_message: str = Field(
        default="fault injected by the sandbox",
        description="Message sent by return_code.",
    )

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        if value != ANY_ENDPOINT and value not in ENDPOINTS:
            raise ValueError(
                f"unknown endpoint {value!r}; use * or one of {', '.join(ENDPOINTS)}"
            )
        return value

    def matches(self, endpoint: str) -> bool:
        """Return whether this rule applies to `endpoint`."""
        return self.endpoint in (ANY_ENDPOINT, endpoint)


class FaultPlan:
    """The active fault rules, safe to change from any thread while requests run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Each entry is a rule and its remaining count (None: unlimited).
        self._entries: list[tuple[FaultRule, int | None]] = []

    def add(
        self,
        kind: FaultKind | str,
        endpoint: str = ANY_ENDPOINT,
        *,
        count: int | None = None,
        seconds: float = 1.0,
        retry_after: int = 1,
        return_code: int = -1,
        return_message: str = "fault injected by the sandbox",
    ) -> FaultRule:
        """Append a rule built from the arguments and return it.

        Raises pydantic.ValidationError for an unknown kind or endpoint.
        """
        rule = FaultRule(
            kind=FaultKind(kind),
            endpoint=endpoint,
            count=count,
            seconds=seconds,
            retry_after=retry_after,
            return_code=return_code,
            return_message=return_message,
        )
        self.add_rules([rule])
        return rule

    def add_rules(self, rules: Iterable[FaultRule]) -> None:
        """Append `rules` in order."""
        new = [(rule, rule.count) for rule in rules]
        with self._lock:
            self._entries.extend(new)
        for rule, _ in new:
            logger.info(
                "fault rule added: %s",
                rule.model_dump(mode="json", exclude_defaults=True),
            )

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._entries.clear()

    def rules(self) -> list[FaultRule]:
        """Return the rules that can still apply, in order."""
        with self._lock:
            return [rule for rule, _ in self._entries]

    def take_request_faults(self, endpoint: str) -> list[FaultRule]:
        """Consume and return the rules that apply to one request to `endpoint`.

        The result lists the matching latency rules, then at most one rule that
        replaces the response.
        """
        taken: list[FaultRule] = []
        response_taken = False
        with self._lock:
            for index, (rule, _) in enumerate(self._entries):
                if not rule.matches(endpoint):
                    continue
                if rule.kind is FaultKind.LATENCY:
                    taken.append(rule)
                    self._use(index)
                elif rule.kind in RESPONSE_KINDS and not response_taken:
                    taken.append(rule)
                    response_taken = True
                    self._use(index)
            self._drop_used()
        return taken

    def take_slow_refresh(self, endpoint: str) -> FaultRule | None:
        """Consume and return the first slow_refresh rule matching `endpoint`."""
        with self._lock:
            for index, (rule, _) in enumerate(self._entries):
                if rule.kind is FaultKind.SLOW_REFRESH and rule.matches(endpoint):
                    self._use(index)
                    self._drop_used()
                    return rule
        return None

    def _use(self, index: int) -> None:
        rule, remaining = self._entries[index]
        if remaining is not None:
            self._entries[index] = (rule, remaining - 1)

    def _drop_used(self) -> None:
        self._entries = [
            (rule, remaining)
            for rule, remaining in self._entries
            if remaining is None or remaining > 0
        ]


class RequestStats:
    """Count of requests per endpoint, safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def record(self, endpoint: str) -> None:
        """Count one request to `endpoint`."""
        with self._lock:
            self._counts[endpoint] += 1

    def __getitem__(self, endpoint: str) -> int:
        with self._lock:
            return self._counts[endpoint]

    def counts(self) -> dict[str, int]:
        """Return a copy of the counts, by endpoint."""
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        """Number of requests counted over all endpoints."""
        with self._lock:
            return sum(self._counts.values())

    def reset(self) -> None:
        """Set every count to zero."""
        with self._lock:
            self._counts.clear()
