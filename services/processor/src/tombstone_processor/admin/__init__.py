"""``record-admin``: the operator's day-two command.

``dlq list`` and ``dlq replay`` read and redrive the dead-letter topic (:mod:`.letters`),
``status`` tells one tombstone's story from the topics and the server (:mod:`.story`), ``cancel``
stops one running workflow at its next step boundary (:mod:`.workflows`). :mod:`.cli` is the
command line around them.
"""
