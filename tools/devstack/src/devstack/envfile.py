"""The checkout's ``.env`` as ``make up`` leaves it: the user's own lines kept, the stack's
variables that they lack added in one marked block, which ``make down`` removes again.

A variable the user set to something else is not overridden: ``make up`` refuses and names it,
because silently pointing the services elsewhere than the user wrote is worse than stopping.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from dotenv import dotenv_values

from devstack.procs import StackError

BEGIN = "# >>> added by `make up` for the local stack; `make down` removes this block >>>\n"
END = "# <<< added by `make up` <<<\n"


@dataclass(frozen=True)
class Merged:
    text: str  # the new content of .env
    added: list[str]  # the stack's variables the block holds, in order


def without_block(text: str) -> str:
    """``text`` without the block ``make up`` added (the user's lines, as they wrote them)."""
    start = text.find(BEGIN)
    if start < 0:
        return text
    end = text.find(END, start)
    return text[:start] + (text[end + len(END):] if end >= 0 else "")


def merge(text: str, stack_env: dict[str, str]) -> Merged:
    """The ``.env`` (``text``; empty when there is none) completed with ``stack_env``: the
    variables its own lines lack go into the block; refuses when its lines set one to another
    value."""
    user_text = without_block(text)
    theirs = dotenv_values(stream=io.StringIO(user_text))
    different = {
        name: value for name, value in theirs.items()
        if name in stack_env and value is not None and value != stack_env[name]
    }
    if different:
        lines = "; ".join(f"{name}={value} (the stack: {stack_env[name]})" for name, value in different.items())
        raise StackError(
            f".env sets what the local stack would set otherwise: {lines}. Remove or change those "
            "lines (make up then adds the stack's values to .env), or delete .env"
        )
    added = [name for name in stack_env if theirs.get(name) is None]
    if not added:
        return Merged(user_text, [])
    if user_text and not user_text.endswith("\n"):
        user_text += "\n"
    block = BEGIN + "".join(f"{name}={stack_env[name]}\n" for name in added) + END
    return Merged(user_text + block, added)
