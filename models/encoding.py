"""The one encoding of the 41 features into the model's input vector.

Training fits it, the metadata file carries it, and the sensor rebuilds it from that file, so
the two can never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter

import numpy as np

from feature_extractor.record import CATEGORICAL, FEATURE_NAMES, RATE_FEATURES

# Counts with heavy tails (bytes span nine orders of magnitude): log1p before min-max scaling.
LOG_FEATURES: tuple[str, ...] = (
    "duration", "src_bytes", "dst_bytes", "wrong_fragment", "urgent", "hot",
    "num_failed_logins", "num_compromised", "num_root", "num_file_creations", "num_shells",
    "num_access_files", "count", "srv_count", "dst_host_count", "dst_host_srv_count",
)

NUMERIC_FEATURES: tuple[str, ...] = tuple(n for n in FEATURE_NAMES if n not in CATEGORICAL)
_NUMERIC_IDX = [FEATURE_NAMES.index(n) for n in NUMERIC_FEATURES]
_NUMERIC_OF = itemgetter(*_NUMERIC_IDX)  # a row's numeric values in one C call
_LOG_MASK = np.array([n in LOG_FEATURES for n in NUMERIC_FEATURES])
_RATE_MASK = np.array([n in RATE_FEATURES for n in NUMERIC_FEATURES])


class EncodingMismatch(ValueError):
    """A model whose metadata does not describe what this extractor produces."""


@dataclass
class Encoding:
    vocabularies: dict[str, tuple[str, ...]]
    minimum: np.ndarray
    maximum: np.ndarray

    @property
    def width(self) -> int:
        return sum(len(v) for v in self.vocabularies.values()) + len(NUMERIC_FEATURES)

    @classmethod
    def fit(cls, rows: list[list]) -> Encoding:
        """Fit scaling on training rows only; vocabularies are the extractor's own."""
        numeric = _log(_numeric(rows))
        return cls(dict(CATEGORICAL), numeric.min(axis=0), numeric.max(axis=0))

    def encode(self, rows: list[list]) -> np.ndarray:
        """Rows of 41 values to float32 vectors: one-hots (unseen values all zeros), scaled numbers."""
        n = len(rows)
        parts = []
        for name, vocab in self.vocabularies.items():
            col = FEATURE_NAMES.index(name)
            lookup = {v: i for i, v in enumerate(vocab)}
            onehot = np.zeros((n, len(vocab)), dtype=np.float32)
            idx = np.fromiter((lookup.get(r[col], -1) for r in rows), dtype=np.int64, count=n)
            seen = idx >= 0
            onehot[np.nonzero(seen)[0], idx[seen]] = 1.0
            parts.append(onehot)
        span = np.where(self.maximum > self.minimum, self.maximum - self.minimum, 1.0)
        numeric = _numeric(rows)
        numeric[:, _RATE_MASK] = np.round(numeric[:, _RATE_MASK], 2)  # as NSL-KDD stores them
        scaled = (_log(numeric) - self.minimum) / span
        parts.append(np.clip(scaled, 0.0, 1.0).astype(np.float32))
        return np.concatenate(parts, axis=1)

    def to_metadata(self) -> dict:
        return {
            "feature_names": list(FEATURE_NAMES),
            "vocabularies": {k: list(v) for k, v in self.vocabularies.items()},
            "numeric_features": list(NUMERIC_FEATURES),
            "log_features": list(LOG_FEATURES),
            "minimum": [float(x) for x in self.minimum],
            "maximum": [float(x) for x in self.maximum],
        }

    @classmethod
    def from_metadata(cls, meta: dict) -> Encoding:
        """Rebuild the encoding, refusing metadata that disagrees with the extractor."""
        checks = {
            "feature_names": list(FEATURE_NAMES),
            "numeric_features": list(NUMERIC_FEATURES),
            "log_features": list(LOG_FEATURES),
            "vocabularies": {k: list(v) for k, v in CATEGORICAL.items()},
        }
        for key, expected in checks.items():
            if meta.get(key) != expected:
                raise EncodingMismatch(
                    f"model metadata '{key}' does not match this extractor's features")
        vocab = {k: tuple(v) for k, v in meta["vocabularies"].items()}
        lo = np.array(meta["minimum"], dtype=np.float64)
        hi = np.array(meta["maximum"], dtype=np.float64)
        if lo.shape != (len(NUMERIC_FEATURES),) or hi.shape != lo.shape:
            raise EncodingMismatch("model metadata scaling has the wrong length")
        return cls(vocab, lo, hi)


def _numeric(rows: list[list]) -> np.ndarray:
    return np.array([_NUMERIC_OF(r) for r in rows], dtype=np.float64).reshape(
        len(rows), len(_NUMERIC_IDX))


def _log(values: np.ndarray) -> np.ndarray:
    out = values.copy()
    out[:, _LOG_MASK] = np.log1p(out[:, _LOG_MASK])
    return out
