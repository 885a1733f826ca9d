"""Notifications: route hub events to apprise channels with dedup, rate limits, digests and
quiet hours; deliver off the hot path and publish every outcome as a ``NotificationRecord``."""
