"""Persistence: models, migrations, the batched writer, the read side (DESIGN.md 3.8)."""
