"""The JSON examples of the API reference, as its text gives them and mended.

Each file under data/reference/ is one example copied verbatim from the API
reference, typos included. `load_example` mends the known typos: a missing comma
after `taPropQuota` in the custom tag example, a missing closing quote in the
detail error example, and a trailing comma in the progress example. The custom tag
example's `uceCalcuSymbol` is left as it is: the models accept it as an alias of
`comparator`.
"""

import json
from pathlib import Path
from typing import Any

DIRECTORY = Path(__file__).parent / "data" / "reference"

# Exact text fragments of the reference's typos, and their mended form.
MENDS = [
    (
        '        }\n              "uceCalcuSymbol"',
        '        },\n              "uceCalcuSymbol"',
    ),
    ('"The parameter (token) is empty\n', '"The parameter (token) is empty"\n'),
    ('"progress": 80,\n  }', '"progress": 80\n  }'),
]

REQUEST_EXAMPLES = [
    "add-cluster.request",
    "add-tag-custom.request",
    "add-tag-firstlast.request",
    "add-tag-quota.request",
    "update.request",
    "update-by-name.request",
    "list.request",
]
RESPONSE_EXAMPLES = [
    "add.response",
    "error.response",
    "detail.response",
    "detail-error.response",
    "update.response",
    "list.response",
    "progress.response",
    "import-add.response",
    "import-modify.response",
]


def raw_example(name: str) -> str:
    """Return the example's text exactly as the reference prints it."""
    return (DIRECTORY / f"{name}.json.txt").read_text(encoding="utf-8")


def load_example(name: str) -> Any:
    """Return the example parsed as JSON, with the reference's typos mended."""
    text = raw_example(name)
    for typo, mended in MENDS:
        text = text.replace(typo, mended)
    return json.loads(text)


def canonical(example: Any) -> Any:
    """Return the example as the models serialise it: `uceCalcuSymbol` as `comparator`."""
    if isinstance(example, list):
        return [canonical(item) for item in example]
    if not isinstance(example, dict):
        return example
    return {
        ("comparator" if key == "uceCalcuSymbol" else key): canonical(value)
        for key, value in example.items()
    }
