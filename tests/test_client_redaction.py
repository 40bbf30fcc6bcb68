"""A token with spaces, reserved and non-ASCII characters is redacted in every form.

The fake server echoes the request's path and query string (the exact bytes
httpx sent) back in error replies, in the upper case httpx uses and in lower
case, as a proxy that normalizes percent-escapes might.
"""

import json
import logging
import re
import traceback
from urllib.parse import quote, quote_plus

import httpx
import pytest
from client_fixtures import FakeTA, Reply, envelope

from ta_cohort_mcp.client import TAClient, TAError

pytestmark = pytest.mark.anyio

HOSTILE = "canary-Q9 +/=&%?#ñ~tok"
WIRE = str(httpx.QueryParams({"token": HOSTILE})).removeprefix("token=")
# Compared in lower case, so "%2b" and "%2B" both count as a leak.
FORMS = {
    form.lower()
    for form in (
        HOSTILE,
        quote(HOSTILE),
        quote(HOSTILE, safe=""),
        quote_plus(HOSTILE),
        WIRE,
        json.dumps(HOSTILE)[1:-1],
    )
}


def leaks(text: str) -> list[str]:
    lowered = text.lower()
    return [form for form in FORMS if form in lowered]


def lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda match: match.group().lower(), text)


def exception_chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


async def echoed_target(fake_ta: FakeTA) -> str:
    """Send one successful call and return its request target as sent."""
    async with TAClient(fake_ta.base_url, HOSTILE) as client:
        await client.user_cluster_detail(102, cluster_id=970)
    target = fake_ta.last().target.decode("ascii")
    assert WIRE in target
    return target


def error_replies(echo: str) -> dict[str, Reply]:
    return {
        "return-message": envelope(code=-1, message=f"bad request {echo}"),
        "http-500": Reply(
            status=500, body={"return_code": -1, "return_message": f"at {echo}"}
        ),
        "http-404": Reply(
            status=404, body={"return_code": -1, "return_message": f"no {echo}"}
        ),
        "non-json": Reply(body=f"not json: {echo}"),
        "non-json-long": Reply(body=f"{echo} " * 40),
        "json-escaped": Reply(body=json.dumps({"x": echo, "t": HOSTILE})[:-1]),
    }


@pytest.mark.parametrize("case", list(error_replies("")))
@pytest.mark.parametrize("lowercase", [False, True], ids=["upper", "lower"])
async def test_hostile_token_redacted(
    fake_ta: FakeTA, caplog: pytest.LogCaptureFixture, case: str, lowercase: bool
) -> None:
    target = await echoed_target(fake_ta)
    echo = lower_escapes(target) if lowercase else target
    caplog.set_level(logging.DEBUG)
    fake_ta.program("user-cluster-detail", error_replies(echo)[case])
    async with TAClient(fake_ta.base_url, HOSTILE, read_retries=0) as client:
        with pytest.raises(TAError) as caught:
            await client.user_cluster_detail(102, cluster_id=970)
    error = caught.value
    assert "***" in str(error)
    assert leaks("".join(traceback.format_exception(error))) == []
    for link in exception_chain(error):
        assert leaks(str(link)) == []
        assert leaks(repr(link)) == []
        assert leaks(repr(vars(link))) == []
    for record in caplog.records:
        assert leaks(record.getMessage()) == []
        assert leaks(record.exc_text or "") == []
