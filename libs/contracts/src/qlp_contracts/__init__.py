"""QLP event contracts: the topic registry, the event catalogue and the codegen tool.

The generated protobuf bindings live in the sibling package ``qlp``
(``from qlp.identity.v1 import events_pb2``); this package adds what the
services need around them:

- ``qlp_contracts.catalog``: CloudEvent type <-> message class, decoding, Kafka keys.
- ``qlp_contracts.topics``: topic names, partitions, retention and dead-letter topics.
- ``qlp_contracts.codegen``: ``python -m qlp_contracts.codegen generate|check|snapshot|compat``.
- ``qlp_contracts.compat``: the wire-compatibility rules ``compat`` applies.
"""
