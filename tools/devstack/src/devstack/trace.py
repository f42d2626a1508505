"""A tombstone's trace from Jaeger's HTTP API as a readable tree: each span with its duration,
the process that ran it (pod or host), and its error, children below their parent in start order.

The Jaeger built for the local stack has no web UI; this is the readable view (``make trace``).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

from rich.text import Text
from rich.tree import Tree

from devstack.procs import StackError, http_get

Trace = dict[str, Any]
TRACE_ID = re.compile(r"^[0-9a-f]{16,32}$")
# Where a tombstone id is on the spans: the processor's spans name it, the producer's send span
# carries it as the record key.
SEARCHES = (("processor", "tombstone.id"), ("producer", "messaging.kafka.message.key"))


def _get(url: str) -> Any:
    status, body = http_get(url, timeout=10)
    if status == 0:
        raise StackError(
            f"no Jaeger answers at {url.split('/api/')[0]} (`make jaeger` builds it once; `make up` then starts it)"
        )
    if status != 200:
        return None
    return json.loads(body).get("data")


def find_trace(query_url: str, tombstone: str, lookback: str = "24h") -> Trace | None:
    """The trace of a tombstone id (or of a trace id), or None when Jaeger has none."""
    if TRACE_ID.match(tombstone):
        found = _get(f"{query_url}/api/traces/{tombstone}")
        if found:
            return found[0]
    for service, tag in SEARCHES:
        query = urllib.parse.urlencode({
            "service": service, "tags": json.dumps({tag: tombstone}), "lookback": lookback, "limit": 20,
        })
        found = _get(f"{query_url}/api/traces?{query}") or []
        if found:
            # the search returns matching spans' traces; fetch the newest one whole
            newest = max(found, key=lambda t: min(s["startTime"] for s in t["spans"]))
            return _get(f"{query_url}/api/traces/{newest['traceID']}")[0]
    return None


def _tags(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {item["key"]: item["value"] for item in items}


def duration(microseconds: int) -> str:
    if microseconds < 1_000:
        return f"{microseconds} µs"
    if microseconds < 1_000_000:
        return f"{microseconds / 1_000:.1f} ms"
    return f"{microseconds / 1_000_000:.2f} s"


def _where(process: dict[str, Any]) -> str:
    tags = _tags(process.get("tags", []))
    instance = tags.get("k8s.pod.name") or tags.get("service.instance.id") or tags.get("hostname") or "?"
    return f"{process['serviceName']}@{instance}"


def _error(span: dict[str, Any]) -> str | None:
    tags = _tags(span.get("tags", []))
    if tags.get("otel.status_code") != "ERROR" and tags.get("error") is not True:
        return None
    for log in span.get("logs", []):
        fields = _tags(log.get("fields", []))
        if "exception.message" in fields or "exception.type" in fields:
            return f"{fields.get('exception.type', 'error')}: {fields.get('exception.message', '')}".rstrip(": ")
    return tags.get("otel.status_description") or "error"


SHOWN_TAGS = ("tombstone.id", "batch", "attempt", "messaging.destination.partition.id", "messaging.kafka.offset")


def _label(span: dict[str, Any], processes: dict[str, Any]) -> Text:
    tags = _tags(span.get("tags", []))
    label = Text(span["operationName"], style="bold")
    shown = " ".join(f"{key.rsplit('.', 1)[-1]}={tags[key]}" for key in SHOWN_TAGS[1:] if key in tags)
    if shown:
        label.append(f" {shown}")
    label.append(f"  {duration(span['duration'])}", style="cyan")
    label.append(f"  {_where(processes[span['processID']])}", style="dim")
    if (error := _error(span)) is not None:
        label.append(f"  ✗ {error}", style="red")
    return label


def trace_tree(trace: Trace) -> Tree:
    """The spans as a tree: roots (spans whose parent is not in the trace) first, by start time."""
    spans = {span["spanID"]: span for span in trace["spans"]}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans.values():
        parent = next((ref["spanID"] for ref in span.get("references", [])
                       if ref["refType"] == "CHILD_OF" and ref["spanID"] in spans), None)
        children.setdefault(parent, []).append(span)
    start = min(span["startTime"] for span in spans.values())
    end = max(span["startTime"] + span["duration"] for span in spans.values())
    errors = sum(_error(span) is not None for span in spans.values())
    ids = {_tags(s.get("tags", [])).get("tombstone.id") for s in spans.values()} - {None}
    title = Text(f"trace {trace['traceID']}", style="bold")
    if ids:
        title.append(f"  tombstone {', '.join(sorted(ids))}")
    title.append(f"  {len(spans)} spans, {duration(end - start)}, {errors} with errors")
    tree = Tree(title)

    def add(node: Tree, parent: str | None) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s["startTime"]):
            add(node.add(_label(span, trace["processes"])), span["spanID"])

    add(tree, None)
    return tree
