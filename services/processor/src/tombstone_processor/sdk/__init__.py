"""Every use of resonate-sdk's internals, and every workaround of its behaviour, in one place.

The processor is pinned to resonate-sdk 0.8.1 (services/processor/pyproject.toml), and
``tests/unit/test_sdk_internals.py`` fails when the pinned SDK changes under these modules:

- :mod:`.event_stream`: the SDK's ``SSEConnection`` ends its stream for good 300 s after it
  connects (aiohttp's default total timeout, which its reconnect loop does not catch), and keeps
  a stream from a vanished server open and silent; ours has no total timeout, reconnects a silent
  stream, and restarts its loop (overrides ``_read_stream`` and ``_sse_loop``).
- :mod:`.heartbeat`: the SDK renews every task in one ``task.heartbeat``, which the server
  refuses unless all share one origin; ours sends one per origin.
- :mod:`.connection`: the SDK's ``HttpConnection`` returns a 401/403 as the request's answer, so
  a refused token would dead-letter tombstones; ours raises it as a connection failure and stops
  the processor.
- :mod:`.stopping`: ``Resonate.stop()`` closes its transport before it joins the jobs in flight,
  so a step finishing during the stop could not record its result (reads ``_connections`` and
  ``_runtime.bg_tasks``); and the SDK logs each execution a stop cuts short as an error.

The workflow's deadline-only sleep (``workflow.sleep_until_deadline``) uses only the SDK's public
``ctx.promise``; why it replaces ``ctx.sleep`` is told there.
"""
