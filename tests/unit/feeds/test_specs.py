"""Where each configured exchange's specs come from: saved file, recording, simulator, venue."""

from __future__ import annotations

from pathlib import Path

from cryptomon.config import ExchangeConfig
from cryptomon.feeds.specs import recording_specs, spec_sources
from cryptomon.market.specs_file import save_specs, specs_file
from cryptomon.sim.instruments import simulator_specs


def test_a_replay_prefers_the_specs_saved_beside_the_recording(tmp_path: Path) -> None:
    """``instruments.SIMULATOR.json`` beside the files is what a replay's units come from."""
    (tmp_path / "SIMULATOR.0").write_text("")
    save_specs(specs_file(tmp_path, "simulator"), simulator_specs(["BTC-USDT"]))
    config = ExchangeConfig(
        name="simulator", source="replay", files=[str(tmp_path / "SIMULATOR.0")]
    )
    assert [spec.symbol for spec in recording_specs(config)] == ["BTC-USDT"]


def test_a_replay_without_saved_specs_reads_the_recorded_rest_answers(
    shared_data: Path,
) -> None:
    """HUOBI_SWAP's recording holds its contract lists: the specs come from there."""
    config = ExchangeConfig(
        name="huobi_swap", source="replay", files=[str(shared_data / "HUOBI_SWAP.0")]
    )
    sources = spec_sources([config])
    assert not sources.loaders
    assert {spec.exchange for spec in sources.static} == {"huobi_swap"}
    assert any(spec.inverse for spec in sources.static)


def test_live_exchanges_get_venue_loaders_and_the_offline_simulator_its_own_specs() -> None:
    """A known venue is asked over REST; the simulator without an address serves its specs;
    a venue without a known format has neither (its markets stream without units)."""
    configs = [
        ExchangeConfig(name="okx", symbols=["BTC-USDT"]),
        ExchangeConfig(name="simulator", symbols=["ETH-USDT"]),
        ExchangeConfig(name="bitfinex", symbols=["BTC-USD"]),
    ]
    sources = spec_sources(configs)
    assert set(sources.loaders) == {"okx"}
    assert [spec.symbol for spec in sources.static] == ["ETH-USDT"]
