"""Templates: format by URL scheme, Markdown vs text bodies, overrides, digests, validation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.notify.alerts import AlertBuilder
from cryptomon.notify.templates import (
    DEFAULTS,
    FIELDS,
    DigestItem,
    Renderer,
    check_override,
    format_for,
    render_digest,
)
from tests import stubs
from tests.unit.notify.factories import anomaly


@pytest.mark.parametrize(
    ("url", "configured", "expected"),
    [
        ("tgram://123:abc/456", "auto", "markdown"),
        ("discord://id/token", "auto", "markdown"),
        ("mailto://user:pw@example.com", "auto", "text"),
        ("twilio://sid:token@15551234567/15557654321", "auto", "text"),
        ("json://127.0.0.1:9/x", "auto", "text"),
        ("somethingnew://x", "auto", "text"),
        ("mailto://user:pw@example.com", "markdown", "markdown"),
        ("tgram://123:abc/456", "text", "text"),
    ],
)
def test_format_is_chosen_by_scheme_unless_configured(
    url: str, configured: str, expected: str
) -> None:
    """format: auto picks Markdown for chat schemes and text for email/SMS/unknown."""
    assert format_for(url, configured) == expected


def _fields() -> dict[str, object]:
    return dict(AlertBuilder(api_base_url="http://h:1").build(anomaly()).fields)  # type: ignore[union-attr]


def test_markdown_and_text_bodies_carry_the_same_facts() -> None:
    """Both formats show market, kind, value vs threshold, reasons, severity, time and link."""
    r = Renderer()
    md = r.render("anomaly", _fields(), "markdown")
    tx = r.render("anomaly", _fields(), "text")
    assert md.title == tx.title == "[P1] binance BTC-USDT: volume anomaly (high)"
    for fact in (
        "binance BTC-USDT",
        "7.5 vs threshold 3",
        "Z-score: 7.50",
        "high (P1)",
        "2023-11-14T22:13:20Z",
    ):
        assert fact in md.body
        assert fact in tx.body
    link = "http://h:1/api/v1/anomalies?exchange=binance&symbol=BTC-USDT&kind=volume"
    assert f"[Open in cryptomon]({link})" in md.body
    assert f"Link: {link}" in tx.body
    assert "**" not in tx.body
    assert "](" not in tx.body


def test_overrides_replace_title_and_body() -> None:
    """Config overrides are str.format templates over the event type's fields."""
    r = Renderer({"anomaly": {"title": "{symbol} {kind} {value:.1f}", "body": "see {link}"}})
    out = r.render("anomaly", _fields(), "markdown")
    assert out.title == "BTC-USDT volume 7.5"
    assert out.body.startswith("see http://h:1/api/v1/anomalies?")


def test_override_format_spec_on_a_missing_value_renders_a_dash() -> None:
    """A format spec on a value the event lacks (None) renders ``-``: the override is still
    used, not the built-in text."""
    r = Renderer({"anomaly": {"title": "{symbol} z={z_score:.2f}"}})
    out = r.render("anomaly", _fields(), "text")  # z_score is None here
    assert out.title == "BTC-USDT z=-"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope}", "unknown field {nope} for anomaly"),
        ("{symbol.__class__}", "unknown field {symbol.__class__}"),
        ("{value:zz}", "formats with sample values"),
        ("{unclosed", "a str.format template"),
    ],
)
def test_bad_override_is_rejected_with_a_reason(text: str, message: str) -> None:
    """Override validation names the unknown field or the formatting problem."""
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        check_override("anomaly", text)


def test_built_in_templates_use_only_their_event_types_fields() -> None:
    """Every built-in title, summary and line formats with its event type's fields only."""
    for event_type, tpl in DEFAULTS.items():
        for text in (tpl.title, tpl.summary, *(v for _, v in tpl.lines)):
            check_override(event_type, text)
    assert set(DEFAULTS) == set(FIELDS)


def test_digest_lists_every_item() -> None:
    """A digest has one line per collapsed alert, with its priority, time and market."""
    r = Renderer()
    rendered = r.render("anomaly", _fields(), "text")
    items = [
        DigestItem("P1", "2023-11-14T22:13:20Z", f"binance C{i}-USDT", rendered, "volume", 3)
        for i in range(30)
    ]
    title, body = render_digest("ops", items, "text", 60)
    assert title == "[digest] 30 alerts for ops (rate limit reached)"
    lines = body.splitlines()
    assert len(lines) == 31
    assert lines[1] == "* [P1] 2023-11-14T22:13:20Z binance C0-USDT: volume 7.5 vs 3 (high)"


def test_digest_lists_the_most_severe_then_latest_and_counts_the_rest_by_kind() -> None:
    """With ``max_items`` a digest lists that many alerts (the most severe, then the latest,
    in the order they came) and counts the others by kind; with ``max_chars`` it lists fewer
    to stay within the service's message size, and still counts every alert."""
    r = Renderer().render("anomaly", _fields(), "text")
    items = [
        DigestItem("P2", f"t{i}", f"binance C{i}-USDT", r, "price" if i % 2 else "volume", 2)
        for i in range(50)
    ]
    items[5] = items[5]._replace(priority="P0", rank=4)
    title, body = render_digest("ops", items, "text", 60, max_items=4)
    assert title == "[digest] 50 alerts for ops (rate limit reached)"
    lines = body.splitlines()
    assert [ln.split()[2] for ln in lines[1:-1]] == ["t5", "t47", "t48", "t49"]
    assert lines[-1] == "... and 46 more (by kind: volume 24, price 22)"
    _, short = render_digest("ops", items, "text", 60, max_items=40, max_chars=500)
    assert len(short) <= 500
    kept = len(short.splitlines()) - 2
    assert 0 < kept < 40
    assert short.splitlines()[1].split()[2] == "t5"  # the most severe stays
    assert f"... and {50 - kept} more" in short.splitlines()[-1]


def test_numbers_never_render_in_exponent_notation() -> None:
    """A whale's notional, a tiny price and venue Decimals read as plain numbers, in the
    built-in templates and in overrides without a format spec; explicit specs are kept."""
    b = AlertBuilder(api_base_url="http://h:1")
    whale = b.build(anomaly(kind="whale", value=1_234_567.89, threshold=1_000_000.0))
    tiny = b.build(anomaly(kind="ma_deviation", value=0.0000123, threshold=0.00001))
    fill = b.build(
        stubs.fill(amount=Decimal("1E-8"), price=Decimal("65000.10000000"), fee=Decimal("0E-8"))
    )
    assert whale is not None
    assert tiny is not None
    assert fill is not None
    r = Renderer({"fill": {"body": "{amount} at {price:.2f}"}})
    w = r.render("anomaly", whale.fields, "text")
    assert "Value: 1234568 vs threshold 1000000" in w.body
    assert w.summary == "whale 1234568 vs 1000000 (high)"
    assert "Value: 0.0000123 vs threshold 0.00001" in r.render("anomaly", tiny.fields, "text").body
    f = r.render("fill", fill.fields, "text")
    assert f.title == "[P2] binance BTC-USDT: buy 0.00000001 BTC @ 65000.1 USDT"
    assert f.body == "0.00000001 at 65000.10"
    assert f.summary == "fill buy 0.00000001 BTC @ 65000.1 USDT"
    assert "Fee: 0 BNB" in Renderer().render("fill", fill.fields, "text").body


def test_markdown_escapes_text_fields_but_not_titles_links_or_text_bodies() -> None:
    """Markdown bodies and digest lines escape ``*``/``_``/``[`` in text fields; titles, the
    link and plain-text bodies show the text unchanged."""
    alert = AlertBuilder(api_base_url="http://h:1").build(
        anomaly(kind="price_change", reasons=("a*b [1m] c_d",))
    )
    assert alert is not None
    r = Renderer()
    md = r.render("anomaly", alert.fields, "markdown")
    tx = r.render("anomaly", alert.fields, "text")
    assert md.title == tx.title == "[P1] binance BTC-USDT: price_change anomaly (high)"
    assert r"**Reasons:** a\*b \[1m\] c\_d" in md.body
    assert "kind=price_change)" in md.body
    assert "Reasons: a*b [1m] c_d" in tx.body
    item = DigestItem("P1", "t", "binance BTC-USDT", md, "price_change", 3)
    _, body = render_digest("ops", [item], "markdown", 60)
    assert body.splitlines()[1] == r"- \[P1\] t binance BTC-USDT: price\_change 7.5 vs 3 (high)"


def test_auto_format_is_text_when_the_apprise_plugin_takes_no_markdown() -> None:
    """A chat scheme whose apprise plugin takes only text (WeCom's bot, Gotify without
    ?format=markdown) gets plain text; plugins that take Markdown or HTML keep Markdown."""
    assert format_for("wecombot://key", "auto", ["text"]) == "text"
    assert format_for("gotify://h/t", "auto", ["markdown"]) == "markdown"
    assert format_for("tgram://1:a/2", "auto", ["html", "markdown"]) == "markdown"
    assert format_for("wecombot://key", "markdown", ["text"]) == "markdown"  # configured wins


def test_fill_and_exit_messages_name_their_units() -> None:
    """A fill's and an exit's amount and price carry their units: a spot market's base and
    quote, a derivative's contracts and quote (the messages gave bare numbers: "buy 3 @ 65000"
    did not say whether 3 were coins or contracts)."""
    b = AlertBuilder(api_base_url="http://127.0.0.1:8080")
    spot = b.build(stubs.fill(amount=Decimal("0.5"), price=Decimal("65000")))
    perp = b.build(stubs.fill(amount=Decimal("3"), price=Decimal("65000"), symbol="BTC-USDT-PERP"))
    assert spot is not None
    assert perp is not None
    r = Renderer()
    assert r.render("fill", spot.fields, "text").summary == "fill buy 0.5 BTC @ 65000 USDT"
    assert r.render("fill", perp.fields, "text").summary == "fill buy 3 contracts @ 65000 USDT"


def test_auto_format_of_a_service_given_by_its_web_address_follows_its_plugin() -> None:
    """``https://discord.com/api/webhooks/...`` is the Discord plugin (scheme ``discord``):
    Markdown like ``discord://``; a plain https webhook stays text."""
    discord = "https://discord.com/api/webhooks/1/abc"
    assert format_for(discord, "auto", ["text", "markdown"], ["discord"]) == "markdown"
    assert format_for(discord, "text", ["text", "markdown"], ["discord"]) == "text"
    assert format_for("https://example.com/hook", "auto", None, ["json", "jsons"]) == "text"
