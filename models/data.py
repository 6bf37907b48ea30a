"""NSL-KDD files as carried by the project, and the attack-to-class mapping."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from feature_extractor.record import CLASSES, FEATURE_NAMES, RowError, parse_features

DATA_DIR = Path(__file__).resolve().parent / "nsl_kdd"
TRAIN = DATA_DIR / "KDDTrain+.txt.gz"
TEST = DATA_DIR / "KDDTest+.txt.gz"
TEST21 = DATA_DIR / "KDDTest-21.txt.gz"

# KDD Cup 99 mapping, extended for KDDTest+ names. httptunnel is filed under R2L: it is remote
# access tunnelled through HTTP, not a privilege escalation on the host.
ATTACK_CLASS: dict[str, str] = {"normal": "normal"}
for _cls, _names in {
    "dos": "back land neptune pod smurf teardrop apache2 mailbomb processtable udpstorm",
    "probe": "ipsweep nmap portsweep satan mscan saint",
    "r2l": "ftp_write guess_passwd imap multihop phf spy warezclient warezmaster named sendmail "
           "snmpgetattack snmpguess worm xlock xsnoop httptunnel",
    "u2r": "buffer_overflow loadmodule perl rootkit ps sqlattack xterm",
}.items():
    for _name in _names.split():
        ATTACK_CLASS[_name] = _cls


@dataclass
class LabelledRows:
    """Feature rows with their class index (None where the file carries no label)."""

    path: str
    features: list[list]
    labels: list[int | None]
    attack_names: list[str | None]


def open_text(path: str | Path):
    path = str(path)
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="ascii", errors="replace")
    return open(path, encoding="ascii", errors="replace")


def read_rows(path: str | Path) -> LabelledRows:
    """Read NSL-KDD rows (41 features, optional label and difficulty) or the extractor's CSV.

    The extractor's `--meta` CSV (a header starting with `ts`) is accepted: its meta columns
    are skipped, and a `label`/`class` column, if present, gives the ground truth.
    """
    features: list[list] = []
    labels: list[int | None] = []
    names: list[str | None] = []
    offset = 0
    label_col: int | None = None
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            fields = line.split(",")
            if lineno == 1 and fields[0] == "ts":
                header = fields
                offset = header.index(FEATURE_NAMES[0])
                for cand in ("label", "class"):
                    if cand in header:
                        label_col = header.index(cand)
                continue
            try:
                row = parse_features(fields[offset:])
            except RowError as exc:
                raise RowError(f"{path}:{lineno}: {exc}") from None
            features.append(row)
            raw_label = None
            if label_col is not None and label_col < len(fields):
                raw_label = fields[label_col]
            elif offset == 0 and len(fields) > len(FEATURE_NAMES):
                raw_label = fields[len(FEATURE_NAMES)]
            labels.append(label_index(raw_label) if raw_label else None)
            names.append(raw_label)
    return LabelledRows(str(path), features, labels, names)


def label_index(raw: str) -> int:
    raw = raw.strip()
    if raw in CLASSES:
        return CLASSES.index(raw)
    try:
        return CLASSES.index(ATTACK_CLASS[raw])
    except KeyError:
        raise RowError(f"unknown label {raw!r}") from None


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
