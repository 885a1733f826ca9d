"""NATS JetStream bridge for the scale-out roles (DESIGN.md section 8).

- :mod:`cryptomon.bus.collector`: the collector role's publisher (market data batches,
  instrument specs, health) with a bounded buffer while NATS is away;
- :mod:`cryptomon.bus.source`: the brain role's feed source (durable pull consumer);
- :mod:`cryptomon.bus.outbound`: anomalies, signals, orders and fills for other services;
- :mod:`cryptomon.bus.lease`: the single-writer trading lease in a JetStream KV bucket.

Subjects (``<prefix>`` = ``bus.subject_prefix``, default ``cryptomon``) are listed in
:mod:`cryptomon.bus.subjects`; the wire formats in :mod:`cryptomon.bus.codec` (market data)
and :mod:`cryptomon.bus.outbound` (JSON events).
"""
