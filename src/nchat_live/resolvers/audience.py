"""Audience: what a viewer session is watched from (country, device class, OS, browser) and the
player's playback reports, for the analytics distributions.

- Country: from the client address, looked up in a MaxMind-format database when NCHAT_GEOIP_DB
  names one (read with `maxminddb`), otherwise in the GeoLite2-derived country data that the
  `geoip2fast` package ships (offline). Private and reserved addresses have no country.
- Device class, OS and browser: from the user agent, with `ua-parser` (its bundled rules).
- Privacy: the address is not stored by default. viewer_join still needs *something* per client to
  count one anonymous viewer once and cap anonymous clients per address, so it gets a keyed
  pseudonym in 2001:db8::/32 (the IPv6 documentation prefix, never a real address): equal for
  equal addresses under the same key, not reversible without it. NCHAT_ANALYTICS_STORE_IP=true
  stores the address itself.

Every join goes through `viewers.join_stream` (GraphQL, websocket presence, WHEP), which applies
the process's policy: `configure(settings)` at start-up (runtime.py); until then, a random key.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import maxminddb
import ua_parser
from geoip2fast import GeoIP2Fast

from ..config import Settings
from ..db import Session
from ..errors import ValidationFailed

PSEUDONYM_NETWORK = ipaddress.IPv6Network("2001:db8::/32")
MAX_BITRATE_KBPS = 1_000_000
DEVICE_CLASSES = ("desktop", "mobile", "tablet", "tv", "bot", "other")
_TV_WORDS = ("smart-tv", "smarttv", "googletv", "appletv", "hbbtv", "roku", "tizen", "webos", "crkey", "aftb",
             "bravia", "playstation", "xbox")
_TABLET_WORDS = ("ipad", "tablet", "kindle", "silk/", "playbook")


@dataclass(frozen=True)
class Policy:
    store_ip: bool
    key: str
    geoip_db: Path | None


_policy = Policy(store_ip=False, key=secrets.token_hex(32), geoip_db=None)


def configure(settings: Settings) -> None:
    """The process's policy from its settings (the pseudonym key derives from the JWT secret, so
    every process of a deployment gives an address the same pseudonym)."""
    global _policy
    _policy = Policy(settings.analytics_store_ip, "nchat-audience:" + settings.jwt_secret, settings.geoip_db)


def policy() -> Policy:
    return _policy


@dataclass(frozen=True)
class ClientProfile:
    country: str | None
    device_class: str
    os_family: str | None
    browser_family: str | None


@functools.cache
def _bundled_geoip() -> GeoIP2Fast:
    # The IPv4+IPv6 country file the package ships (about 0.2 s to load, once per process).
    return GeoIP2Fast(verbose=False, geoip2fast_data_file="geoip2fast-ipv6.dat.gz")


@functools.cache
def _maxmind(path: Path) -> Any:
    return maxminddb.open_database(str(path))


def country_of(ip: str | None, geoip_db: Path | None = None) -> str | None:
    """The ISO 3166 alpha-2 country of a public address; None when unknown, private or invalid.
    `geoip_db`: a MaxMind-format file (default: the policy's, else the bundled data)."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if not address.is_global:
        return None
    geoip_db = geoip_db or _policy.geoip_db
    if geoip_db is not None:
        record = _maxmind(geoip_db).get(str(address))
        code = None
        if isinstance(record, dict):
            for key in ("country", "registered_country"):
                part = record.get(key)
                if isinstance(part, dict) and isinstance(part.get("iso_code"), str):
                    code = part["iso_code"]
                    break
    else:
        code = _bundled_geoip().lookup(str(address)).country_code
    return code.upper() if isinstance(code, str) and len(code) == 2 and code.isalpha() else None


def device_of(user_agent: str | None) -> tuple[str, str | None, str | None]:
    """(device class, OS family, browser family) of a user agent."""
    if not user_agent:
        return "other", None, None
    parsed = ua_parser.parse(user_agent[:512])
    browser = parsed.user_agent.family if parsed.user_agent and parsed.user_agent.family != "Other" else None
    os_family = parsed.os.family if parsed.os and parsed.os.family != "Other" else None
    device = parsed.device.family if parsed.device else "Other"
    text = user_agent.lower()
    if device == "Spider" or "bot" in text or "crawler" in text or "spider" in text:
        kind = "bot"
    elif any(w in text for w in _TV_WORDS):
        kind = "tv"
    elif any(w in text for w in _TABLET_WORDS) or (os_family == "Android" and "mobile" not in text):
        kind = "tablet"
    elif "mobi" in text or os_family in ("iOS", "Android", "Windows Phone", "KaiOS"):
        kind = "mobile"
    elif os_family is not None or browser is not None:
        kind = "desktop"
    else:
        kind = "other"
    return kind, (os_family or None) and os_family[:64], (browser or None) and browser[:64]


def describe(ip: str | None, user_agent: str | None, geoip_db: Path | None = None) -> ClientProfile:
    kind, os_family, browser = device_of(user_agent)
    return ClientProfile(country_of(ip, geoip_db), kind, os_family, browser)


def stored_address(ip: str | None, *, store_ip: bool | None = None, key: str | None = None) -> str | None:
    """What viewer_join keeps for the client: the address when configured, else its pseudonym
    (`store_ip` and `key` default to the policy's)."""
    store_ip = _policy.store_ip if store_ip is None else store_ip
    key = _policy.key if key is None else key
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if store_ip:
        return str(address)
    digest = hmac.new(key.encode(), b"nchat-viewer-address:" + address.packed, hashlib.sha256).digest()
    host = int.from_bytes(digest[:12], "big")
    return str(PSEUDONYM_NETWORK[host])


async def record_client(session: Session, session_id: str, profile: ClientProfile) -> bool:
    """Describe the caller's open viewer session (the first description stays)."""
    return bool(await session.fetchval(
        "SELECT nchat.viewer_describe($1, $2, $3, $4, $5)",
        session_id, profile.country, profile.device_class, profile.os_family, profile.browser_family,
    ))


async def record_playback(session: Session, session_id: str, bitrate_kbps: int) -> bool:
    """One playback bitrate sample (kbit/s) from the viewer's player."""
    if not 0 <= bitrate_kbps <= MAX_BITRATE_KBPS:
        raise ValidationFailed(f"bitrateKbps {bitrate_kbps} is outside 0..{MAX_BITRATE_KBPS}")
    return bool(await session.fetchval("SELECT nchat.viewer_playback($1, $2)", session_id, bitrate_kbps))
