"""Shared paths and helpers for the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from feature_extractor.capture_file import read_captures
from feature_extractor.extractor import Extractor, ExtractorConfig
from feature_extractor.record import FEATURE_NAMES

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "pcaps"
SYNTHETIC = PCAPS / "synthetic"
PUBLIC = PCAPS / "public"
SHARED = ROOT.parent / "shared"
SHARED_PCAPS = SHARED / "pcaps" / "public"
IS_ROOT = os.geteuid() == 0


def extract_file(*paths: Path, config: ExtractorConfig | None = None) -> tuple[list, Extractor]:
    """Run the extractor over captures; records as dicts of meta + the 41 named features."""
    ex = Extractor(config)
    for ts, linktype, frame in read_captures([str(p) for p in paths]):
        ex.packet(ts, linktype, frame)
    ex.finish()
    rows = []
    for r in ex.drain():
        row = dict(zip(FEATURE_NAMES, r.features, strict=True))
        row.update(ts=r.ts, src_ip=r.src_ip, src_port=r.src_port, dst_ip=r.dst_ip,
                   dst_port=r.dst_port, proto=r.proto, emit_ts=r.emit_ts, record=r)
        rows.append(row)
    return rows, ex


def shared_pcap(name: str) -> Path:
    """A public capture: the project's copy, or shared/'s for those we may not redistribute."""
    for base in (PUBLIC, SHARED_PCAPS):
        if (base / name).exists():
            return base / name
    pytest.skip(f"{name} is not available (not redistributable, and no ../shared here)")
