"""oms.webhooks (signing and verifying outgoing messages) and oms.targets (where they may
go), as a receiver and the API see them."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import pytest

from oms import webhooks
from oms.targets import (
    LOOPBACK,
    AllowList,
    literal_address,
    refused_addresses,
    refused_url,
    why_forbidden,
)

BODY = b'{"type":"work_order","order_id":"A-1"}'
NOW = 1_767_225_600


def test_the_header_signs_the_timestamp_and_the_body() -> None:
    header = webhooks.sign("s3cret", BODY, timestamp=NOW)
    expected = hmac.new(b"s3cret", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    assert webhooks.verify("s3cret", header, BODY, now=NOW)


def test_a_changed_body_or_another_secret_fails() -> None:
    header = webhooks.sign("s3cret", BODY, timestamp=NOW)
    assert not webhooks.verify("s3cret", header, BODY + b" ", now=NOW)
    assert not webhooks.verify("other", header, BODY, now=NOW)
    assert not webhooks.verify([], header, BODY, now=NOW)
    assert not webhooks.verify("", header, BODY, now=NOW)


def test_a_changed_timestamp_fails() -> None:
    header = webhooks.sign("s3cret", BODY, timestamp=NOW)
    moved = header.replace(f"t={NOW}", f"t={NOW + 1}")
    assert not webhooks.verify("s3cret", moved, BODY, now=NOW)


def test_messages_older_than_five_minutes_or_from_the_future_fail() -> None:
    header = webhooks.sign("s3cret", BODY, timestamp=NOW)
    assert webhooks.verify("s3cret", header, BODY, now=NOW + 300)
    assert not webhooks.verify("s3cret", header, BODY, now=NOW + 301)  # a replay, later
    assert webhooks.verify("s3cret", header, BODY, now=NOW - 300)
    assert not webhooks.verify("s3cret", header, BODY, now=NOW - 301)  # signed ahead
    assert webhooks.verify("s3cret", header, BODY, now=NOW + 3000, tolerance=3600)


def test_the_clock_is_the_default() -> None:
    assert webhooks.verify("s3cret", webhooks.sign("s3cret", BODY), BODY)
    long_ago = webhooks.sign("s3cret", BODY, timestamp=1_000_000_000)  # 2001
    assert not webhooks.verify("s3cret", long_ago, BODY)


def test_during_a_rotation_either_secret_verifies() -> None:
    header = webhooks.sign(["new", "old"], BODY, timestamp=NOW)
    assert header.count("v1=") == 2
    assert webhooks.verify("new", header, BODY, now=NOW)
    assert webhooks.verify("old", header, BODY, now=NOW)
    assert webhooks.verify(["old", "unrelated"], header, BODY, now=NOW)
    assert not webhooks.verify("unrelated", header, BODY, now=NOW)


def test_a_str_body_is_its_utf8_bytes() -> None:
    text = '{"name":"Zoë"}'
    header = webhooks.sign("s3cret", text.encode(), timestamp=NOW)
    assert webhooks.verify("s3cret", header, text, now=NOW)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=abc",  # the old scheme
        "v1=abc",  # no timestamp
        "t=,v1=abc",
        "t=abc,v1=abc",
        "t=-5,v1=abc",
        "t=1e9,v1=abc",
        f"t={NOW},t={NOW},v1=abc",
        "t=99999999999999999999,v1=abc",
        f"t={NOW},v1=ünïcödé",
        f"t={NOW}",
        f"t={NOW},v0=abc",
    ],
)
def test_malformed_headers_fail_without_raising(header: str | None) -> None:
    assert webhooks.verify("s3cret", header, BODY, now=NOW) is False


def test_unknown_schemes_are_skipped_and_spaces_tolerated() -> None:
    header = webhooks.sign("s3cret", BODY, timestamp=NOW)
    t, v1 = header.split(",")
    assert webhooks.verify(
        "s3cret", f"{t}, v0=zzz, {v1.upper().replace('V1', 'v1')}", BODY, now=NOW
    )


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        webhooks.sign([], BODY)
    with pytest.raises(ValueError):
        webhooks.sign("", BODY)


# --------------------------------------------------------------------------- targets

NOTHING = AllowList.parse("")


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.1/hook",
        "http://127.0.0.1:8080/hook",
        "http://127.1/hook",  # short forms resolvers still accept
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[::]/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://224.0.0.1/hook",
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "http://api.localhost/hook",
        "http://100.64.0.1/hook",  # shared address space: not public
    ],
)
def test_urls_that_are_not_public_are_refused(url: str) -> None:
    assert refused_url(url, NOTHING) is not None


@pytest.mark.parametrize(
    "url",
    [
        "https://wms.example.com/work-orders",
        "http://93.184.216.34/hook",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
        "https://10.example.com/hook",  # a name: checked when a message is sent
    ],
)
def test_public_urls_and_names_are_accepted(url: str) -> None:
    assert refused_url(url, NOTHING) is None


def test_the_allow_list_permits_networks_and_names() -> None:
    loopback = AllowList.parse(LOOPBACK)
    assert refused_url("http://127.0.0.1:8080/hook", loopback) is None
    assert refused_url("http://[::1]:8080/hook", loopback) is None
    assert refused_url("http://localhost:8080/hook", loopback) is None
    assert refused_url("http://10.0.0.1/hook", loopback) is not None
    assert refused_url("http://169.254.169.254/", loopback) is not None
    assert refused_url("file:///etc/passwd", loopback) is not None  # never
    office = AllowList.parse(" 10.1.0.0/16 , wms.internal.,[fd00::/8]")
    assert refused_url("http://10.1.2.3/hook", office) is None
    assert refused_url("http://10.2.0.1/hook", office) is not None
    assert refused_url("http://[fd00::5]/hook", office) is None
    assert refused_url("http://WMS.internal/hook", office) is None


@pytest.mark.parametrize("entry", ["not a host", "10.0.0.0/33x", "http://x", "a@b"])
def test_a_malformed_allow_list_entry_is_named(entry: str) -> None:
    with pytest.raises(ValueError, match="OMS_OUTGOING_ALLOW"):
        AllowList.parse(f"127.0.0.1,{entry}")


def test_resolved_addresses_are_each_checked() -> None:
    assert refused_addresses("wms.example.com", ["93.184.216.34"], NOTHING) is None
    why = refused_addresses("evil.example.com", ["93.184.216.34", "10.0.0.7"], NOTHING)
    assert why is not None and "10.0.0.7" in why and "private" in why
    assert refused_addresses("meta", ["169.254.169.254"], NOTHING) is not None
    assert refused_addresses("v6", ["fe80::1%2"], NOTHING) is not None
    assert refused_addresses("wms.internal", ["10.0.0.7"], AllowList.parse("wms.internal")) is None
    assert refused_addresses("x", ["10.0.0.7"], AllowList.parse("10.0.0.0/24")) is None


def test_reasons_name_the_kind_of_address() -> None:
    def why(text: str) -> str | None:
        return why_forbidden(ipaddress.ip_address(text))

    assert why("127.0.0.1") == "a loopback address"
    assert "link-local" in str(why("169.254.169.254"))
    assert why("10.0.0.1") == "a private address"
    assert why("0.0.0.0") == "an unspecified address"
    assert why("ff02::1") == "a multicast address"
    assert why("8.8.8.8") is None
    assert literal_address("wms.example.com") is None
    assert literal_address("[::1]") == ipaddress.ip_address("::1")


def test_the_allow_list_setting_defaults_by_environment() -> None:
    from workers.settings import Settings

    development = Settings(env="development", outgoing_allow=None).outgoing_allow_list()
    assert development == AllowList.parse(LOOPBACK)
    production = Settings(env="production", outgoing_allow=None).outgoing_allow_list()
    assert production == NOTHING
    chosen = Settings(env="production", outgoing_allow="10.0.0.0/8").outgoing_allow_list()
    assert refused_url("http://10.1.1.1/", chosen) is None
    assert refused_url("http://127.0.0.1/", chosen) is not None


def test_a_malformed_allow_list_refuses_to_start() -> None:
    from workers.settings import Settings

    problems = Settings(env="development", outgoing_allow="10.0.0.0/8,not a host").refusals(
        api=True
    )
    assert problems == ["OMS_OUTGOING_ALLOW: 'not a host' is neither a CIDR nor a host"]
