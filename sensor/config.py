"""The YAML configuration: a declared schema of (key, type, default), validated at start-up.

Every error names the dotted key; the caller exits 78 (EX_CONFIG). The commented default
file is packaging/kdd-sensor.yaml, and tests check that it matches DEFAULTS here.
"""

from __future__ import annotations

import copy
import ipaddress
import os
from pathlib import Path
from typing import Any

from feature_extractor.extractor import MAX_INTERIM, ExtractorConfig, Timeouts
from feature_extractor.record import FLAGS

EX_CONFIG = 78
ATTACK_CLASSES = ("dos", "probe", "r2l", "u2r")

Number = (int, float)
# A SYN flood is many half-open connections to one host; one unanswered connection attempt is
# not, though the model calls a lone S0 to ssh or https DoS (none of NSL-KDD's normal S0 rows
# go there). 99.2% of KDDTrain+'s neptune S0 rows have at least 5 connections to their host
# in their 2 s window, against 3.4% of its normal S0 rows. Land is one packet by nature.
HALF_OPEN_DOS = {"class": "dos", "flag": "S0", "land": False, "type": "detection_filter",
                 "track": "by_dst", "count": 4, "seconds": 2}
# Service discovery and configuration sent to a group, not to a host (mDNS, LLMNR, SSDP,
# DHCP requests, IPv6 neighbour discovery): no NSL-KDD row looks like it (DARPA's 1998 network
# had none), and a workstation joining a LAN makes a dozen such records the model may call DoS
# or Probe. An attack reaches its victim at a unicast address, where alerts still go. A
# subnet's broadcast address depends on a netmask no capture carries: the link layer's
# broadcast address marks it instead (NetBIOS announcements to 192.168.1.255).
LOCAL_GROUPS = [*({"cidr": cidr, "track": "by_dst"}
                  for cidr in ("224.0.0.0/4", "255.255.255.255/32", "ff00::/8")),
                {"link_broadcast": True}]
# Leaves are (type or tuple of types, default). Nested dicts are sections.
SCHEMA: dict[str, Any] = {
    "interface": (str, "eth0"),
    "bpf": (str, ""),
    "snaplen": (int, 65535),
    "buffer_mb": (int, 64),
    "promiscuous": (bool, True),
    "stop_drain_seconds": (Number, 20.0),
    "user": (str, ""),
    "extractor": {
        "timeouts": {
            "tcp_attempt": (Number, 1.0),
            "tcp_established": (Number, 300.0),
            "tcp_closed": (Number, 1.0),
            "udp": (Number, 10.0),
        },
        "max_connections": (int, 200_000),
        "max_fragmented_datagrams": (int, 8192),
        "fragment_timeout": (Number, 30.0),
        "interim": (list, [60, 600, 3600]),
    },
    "model": {
        "path": (str, ""),
        "batch_size": (int, 256),
        "flush_ms": (int, 200),
        "cache_size": (int, 65536),
        "confidence": {c: (Number, 0.5) for c in ATTACK_CLASSES},
    },
    "alerts": {
        "eve": {"enabled": (bool, False), "path": (str, "-")},
        "fast": {"enabled": (bool, False), "path": (str, "-")},
        "syslog": {
            "enabled": (bool, False),
            "target": (str, "local"),
            "format": (str, "rfc5424"),
            "facility": (str, "local5"),
            "spool_dir": (str, "/var/lib/kdd-sensor/spool"),
            "spool_max_mb": (int, 64),
        },
        "cef": {"enabled": (bool, False), "path": (str, "-"), "format": (str, "cef")},
        "journald": {"enabled": (bool, False)},
        "thresholds": (list, [HALF_OPEN_DOS]),
        "suppress": (list, LOCAL_GROUPS),
    },
    "connections_log": (str, ""),
    "stats": {"interval": (int, 60), "prometheus": (str, "")},
}

CHOICES = {
    "alerts.syslog.format": ("rfc5424", "rfc3164"),
    "alerts.cef.format": ("cef", "leef"),
}
POSITIVE = ("snaplen", "buffer_mb", "extractor.max_connections", "model.batch_size",
            "extractor.max_fragmented_datagrams", "model.cache_size")
OUTPUT_PATHS = ("alerts.eve.path", "alerts.fast.path", "alerts.cef.path", "connections_log")


class ConfigError(Exception):
    def __init__(self, key: str, problem: str, source: str | None = None):
        where = f"{source}: " if source else ""
        super().__init__(f"config error: {where}{key}: {problem}")
        self.key = key


def defaults(schema: dict = SCHEMA) -> dict:
    return {k: defaults(v) if isinstance(v, dict) else copy.deepcopy(v[1])
            for k, v in schema.items()}


class Config(dict):
    """The validated configuration: a plain nested dict with a few typed views."""

    def get_path(self, dotted: str):
        node: Any = self
        for part in dotted.split("."):
            node = node[part]
        return node

    def extractor_config(self) -> ExtractorConfig:
        ex = self["extractor"]
        return ExtractorConfig(
            timeouts=Timeouts(**{k: float(v) for k, v in ex["timeouts"].items()}),
            max_connections=ex["max_connections"],
            max_fragmented_datagrams=ex["max_fragmented_datagrams"],
            fragment_timeout=float(ex["fragment_timeout"]),
            interim=tuple(float(age) for age in ex["interim"]),
        )


def load_config(path: str | None, overrides: dict | None = None) -> Config:
    """Defaults, then the file, then command-line overrides (dotted keys); all validated."""
    merged = defaults()
    source = None
    if path:
        import yaml  # only a file needs the parser: 30 ms of every start-up without one

        source = path
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError("(file)", exc.strerror or str(exc), path) from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError("(file)", f"not valid YAML: {exc}".replace("\n", " "), path) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("(top level)", "must be a mapping of keys", path)
        _merge(merged, loaded, SCHEMA, "", source)
    for dotted, value in (overrides or {}).items():
        node = merged
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    cfg = Config(merged)
    _check(cfg, source)
    return cfg


def _merge(into: dict, given: dict, schema: dict, prefix: str, source: str | None) -> None:
    for key, value in given.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            raise ConfigError(dotted, f"unknown key (known here: {', '.join(schema)})", source)
        spec = schema[key]
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise ConfigError(dotted, "must be a mapping", source)
            _merge(into[key], value, spec, dotted + ".", source)
            continue
        kind = spec[0]
        if value is None:
            continue
        if isinstance(value, bool) and kind is not bool:
            raise ConfigError(dotted, f"must be {_kind_name(kind)}, not a boolean", source)
        if not isinstance(value, kind):
            raise ConfigError(dotted, f"must be {_kind_name(kind)}, got {value!r}", source)
        into[key] = value


def _kind_name(kind) -> str:
    if kind is Number:
        return "a number"
    return {str: "a string", int: "an integer", bool: "true or false", list: "a list"}[kind]


def _check(cfg: Config, source: str | None) -> None:
    for key, choices in CHOICES.items():
        if cfg.get_path(key) not in choices:
            raise ConfigError(key, f"must be one of {', '.join(choices)}", source)
    for key in POSITIVE:
        if cfg.get_path(key) <= 0:
            raise ConfigError(key, "must be positive", source)
    for name, value in cfg["extractor"]["timeouts"].items():
        if value <= 0:
            raise ConfigError(f"extractor.timeouts.{name}", "must be positive", source)
    ages = cfg["extractor"]["interim"]
    if (len(ages) > MAX_INTERIM or not all(isinstance(a, Number) and not isinstance(a, bool)
                                           for a in ages)
            or any(b <= a for a, b in zip([0, *ages], ages, strict=False))):
        raise ConfigError("extractor.interim", f"must be at most {MAX_INTERIM} increasing "
                          "positive numbers of seconds", source)
    for cls, value in cfg["model"]["confidence"].items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"model.confidence.{cls}", "must be between 0 and 1", source)
    if cfg["model"]["path"] and not Path(cfg["model"]["path"]).is_file():
        raise ConfigError("model.path", f"no such file: {cfg['model']['path']}", source)
    for key in OUTPUT_PATHS:
        value = cfg.get_path(key)
        if value and value != "-":
            parent = Path(value).parent
            if not parent.is_dir() or not os.access(parent, os.W_OK):
                raise ConfigError(key, f"directory {parent} does not exist or is not writable",
                                  source)
    target = cfg["alerts"]["syslog"]["target"]
    if target != "local" and not target.startswith(("udp://", "tcp://", "unix://")):
        raise ConfigError("alerts.syslog.target",
                          "must be local, unix:///path, udp://host:port or tcp://host:port", source)
    for key, value in (("stats.interval", cfg["stats"]["interval"]),
                       ("stop_drain_seconds", cfg["stop_drain_seconds"])):
        if value < 0:
            raise ConfigError(key, "must not be negative", source)
    _check_rules(cfg, source)


THRESHOLD_KEYS = {"class": str, "flag": str, "land": bool, "type": str, "track": str,
                  "count": int, "seconds": Number}
THRESHOLD_TYPES = ("limit", "threshold", "both", "detection_filter")


def _check_class(rule: dict, key: str, source: str | None) -> None:
    """A threshold or suppress rule's `class`: an attack class, or any (the default)."""
    if rule.get("class", "any") not in (*ATTACK_CLASSES, "any"):
        raise ConfigError(f"{key}.class", f"must be one of {', '.join(ATTACK_CLASSES)}, any",
                          source)


def _check_rules(cfg: Config, source: str | None) -> None:
    for i, rule in enumerate(cfg["alerts"]["thresholds"]):
        key = f"alerts.thresholds[{i}]"
        if not isinstance(rule, dict):
            raise ConfigError(key, "must be a mapping", source)
        for k, v in rule.items():
            if k not in THRESHOLD_KEYS:
                raise ConfigError(f"{key}.{k}", "unknown key", source)
            if not isinstance(v, THRESHOLD_KEYS[k]) or (
                    isinstance(v, bool) and THRESHOLD_KEYS[k] is not bool):
                raise ConfigError(f"{key}.{k}", f"must be {_kind_name(THRESHOLD_KEYS[k])}", source)
        for k in ("type", "track", "count", "seconds"):
            if k not in rule:
                raise ConfigError(f"{key}.{k}", "missing", source)
        if rule["type"] not in THRESHOLD_TYPES:
            raise ConfigError(f"{key}.type", f"must be one of {', '.join(THRESHOLD_TYPES)}",
                              source)
        if "flag" in rule and rule["flag"] not in FLAGS:
            raise ConfigError(f"{key}.flag", f"must be one of {', '.join(FLAGS)}", source)
        if rule["track"] not in ("by_src", "by_dst", "by_both", "by_rule"):
            raise ConfigError(f"{key}.track", "must be by_src, by_dst, by_both or by_rule", source)
        _check_class(rule, key, source)
        if rule["count"] <= 0 or rule["seconds"] <= 0:
            raise ConfigError(f"{key}.count", "count and seconds must be positive", source)
    for i, rule in enumerate(cfg["alerts"]["suppress"]):
        key = f"alerts.suppress[{i}]"
        if not isinstance(rule, dict) or ("cidr" in rule) == ("link_broadcast" in rule):
            raise ConfigError(key, "must be a mapping with either a cidr or link_broadcast", source)
        for k in rule:
            if k not in ("cidr", "track", "class", "link_broadcast"):
                raise ConfigError(f"{key}.{k}", "unknown key", source)
        _check_class(rule, key, source)
        if "link_broadcast" in rule:
            if not isinstance(rule["link_broadcast"], bool):
                raise ConfigError(f"{key}.link_broadcast", "must be true or false", source)
            if "track" in rule:
                raise ConfigError(f"{key}.track", "a link_broadcast rule has no track", source)
            continue
        try:
            ipaddress.ip_network(str(rule["cidr"]), strict=False)
        except ValueError:
            raise ConfigError(f"{key}.cidr", f"not a network: {rule['cidr']!r}", source) from None
        if rule.get("track", "by_either") not in ("by_src", "by_dst", "by_either"):
            raise ConfigError(f"{key}.track", "must be by_src, by_dst or by_either", source)
