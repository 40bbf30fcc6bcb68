"""Confirm tokens of the two-step delete, for clients that cannot ask the user.

A first delete call without `confirm` gets a preview and a token. The token is
bound to one project and one cluster (by id or by name, and by the id the
preview showed), works once, and expires after `CONFIRM_TTL_SECONDS`. Redeeming
returns the previewed id, so a by-name delete can check that the name still
stands for the cluster the user saw.
"""

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

CONFIRM_TTL_SECONDS = 300.0
# Pending tokens kept at most; the oldest are dropped first.
MAX_PENDING = 1000

ClusterKey = tuple[int, str, str]


def cluster_key(
    project_id: int, *, cluster_id: int | None, name: str | None
) -> ClusterKey:
    """Return the key a token is bound to: project, "id" or "name", and the value."""
    if cluster_id is not None:
        return (project_id, "id", str(cluster_id))
    return (project_id, "name", name or "")


@dataclass(frozen=True)
class _Pending:
    keys: frozenset[ClusterKey]
    expires_at: float
    issued_for: str
    cluster_id: int | None


@dataclass(frozen=True)
class Redemption:
    """Outcome of redeeming a token: `reason` is None when it was valid.

    `cluster_id` is the cluster id the preview showed, when the issuer gave one.
    """

    reason: str | None
    cluster_id: int | None = None


class ConfirmationStore:
    """Issues and redeems single-use delete tokens; `clock` is monotonic seconds."""

    def __init__(
        self, clock: Callable[[], float], ttl_seconds: float = CONFIRM_TTL_SECONDS
    ) -> None:
        self._clock = clock
        self._ttl = ttl_seconds
        self._pending: dict[str, _Pending] = {}

    @property
    def ttl_seconds(self) -> float:
        """Seconds a token stays valid after it is issued."""
        return self._ttl

    def issue(
        self,
        key: ClusterKey,
        *,
        aliases: Iterable[ClusterKey] = (),
        issued_for: str = "",
        cluster_id: int | None = None,
    ) -> str:
        """Return a new token for deleting the cluster `key`.

        The token is also accepted for each key in `aliases`, which must name
        the same cluster, such as the id a by-name preview returned.
        `issued_for` describes the cluster in the message of a mismatch, and
        `cluster_id` is the previewed id that `redeem` returns.
        """
        self._drop_expired()
        while len(self._pending) >= MAX_PENDING:
            del self._pending[next(iter(self._pending))]
        token = secrets.token_urlsafe(12)
        keys = frozenset([key, *aliases])
        expires_at = self._clock() + self._ttl
        self._pending[token] = _Pending(keys, expires_at, issued_for, cluster_id)
        return token

    def redeem(self, token: str, key: ClusterKey) -> Redemption:
        """Consume `token` for `key` and return whether it was valid.

        A token given for another cluster stays pending for its own cluster.
        """
        self._drop_expired()
        pending = self._pending.get(token)
        if pending is None:
            return Redemption(
                "the confirm token is unknown or expired (tokens last "
                f"{self._ttl:g} seconds and work once)"
            )
        if key not in pending.keys:
            issued_for = f" ({pending.issued_for})" if pending.issued_for else ""
            return Redemption(
                "the confirm token was issued for another project or "
                f"cluster{issued_for}"
            )
        del self._pending[token]
        return Redemption(None, pending.cluster_id)

    def _drop_expired(self) -> None:
        now = self._clock()
        expired = [t for t, p in self._pending.items() if p.expires_at <= now]
        for token in expired:
            del self._pending[token]
