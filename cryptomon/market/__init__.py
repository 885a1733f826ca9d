"""Market layer: instrument specs (units, tick, lot) and per-market state below the subsystems."""
