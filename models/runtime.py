"""The shipped model in LiteRT: one interpreter thread, batched calls, no TensorFlow needed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from feature_extractor.record import CLASSES
from models.encoding import Encoding, EncodingMismatch

MODEL_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = MODEL_DIR / "kdd_cnn_lstm.tflite"

# Ops that would need TensorFlow's Flex delegate or carry state between invoke() calls.
FORBIDDEN_OPS = ("FlexDelegate", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE",
                 "CALL_ONCE", "UNIDIRECTIONAL_SEQUENCE_LSTM")


MAX_BATCH = 256


class ModelError(RuntimeError):
    """A model file that cannot be used: missing, unreadable, or not matching the extractor."""


def metadata_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def _interpreter(model_path: Path, threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise ModelError("the LiteRT runtime is missing: pip install ai-edge-litert") from exc
    try:
        return Interpreter(model_path=str(model_path), num_threads=threads)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{model_path}: cannot load model: {exc}") from exc


def op_names(model_path: Path) -> list[str]:
    interp = _interpreter(model_path, 1)
    return sorted({op["op_name"] for op in interp._get_ops_details()})


class ModelFile:
    """The int8 model alone: encoded rows in, class probabilities out, in padded batches.
    Training checks an export with it before the metadata exists."""

    def __init__(self, model_path: Path | str, threads: int = 1):
        self.path = Path(model_path)
        self.threads = threads
        probe = _interpreter(self.path, threads)
        self.width = int(probe.get_input_details()[0]["shape"][1])
        # One interpreter per power-of-two batch size: resizing reallocates every tensor.
        self._by_batch: dict[int, tuple] = {}

    def _sized(self, batch: int):
        entry = self._by_batch.get(batch)
        if entry is None:
            interp = _interpreter(self.path, self.threads)
            inp = interp.get_input_details()[0]["index"]
            interp.resize_tensor_input(inp, [batch, self.width, 1])
            interp.allocate_tensors()
            entry = self._by_batch[batch] = (interp, inp, interp.get_output_details()[0]["index"])
        return entry

    def predict_encoded(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for encoded rows (n, width), n up to MAX_BATCH, padded to 2**k."""
        n = len(x)
        if n == 0:
            return np.zeros((0, len(CLASSES)), dtype=np.float32)
        if n > MAX_BATCH:
            return self.predict_encoded_batched(x, MAX_BATCH)
        batch = 1 << (n - 1).bit_length()
        interp, inp, out = self._sized(batch)
        padded = np.zeros((batch, self.width, 1), dtype=np.float32)
        padded[:n, :, 0] = x
        interp.set_tensor(inp, padded)
        interp.invoke()
        return interp.get_tensor(out)[:n].copy()

    def predict_encoded_batched(self, x: np.ndarray, batch_size: int = MAX_BATCH) -> np.ndarray:
        out = [self.predict_encoded(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(CLASSES)), dtype=np.float32)


class Classifier(ModelFile):
    """A model file with its metadata: encodes feature rows, refuses a mismatched model."""

    def __init__(self, model_path: Path | str = DEFAULT_MODEL, threads: int = 1):
        path = Path(model_path)
        meta_file = metadata_path(path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        try:
            self.metadata = json.loads(meta_file.read_text())
        except FileNotFoundError:
            raise ModelError(f"{meta_file}: model metadata not found") from None
        except json.JSONDecodeError as exc:
            raise ModelError(f"{meta_file}: metadata is not JSON: {exc}") from None
        if self.metadata.get("class_names") != list(CLASSES):
            raise ModelError(f"{meta_file}: class_names do not match {list(CLASSES)}")
        try:
            self.encoding = Encoding.from_metadata(self.metadata.get("encoding", {}))
        except EncodingMismatch as exc:
            raise ModelError(f"{meta_file}: {exc}") from None
        self.version = str(self.metadata.get("model_version", "unknown"))
        super().__init__(path, threads)
        if self.width != self.encoding.width:
            raise ModelError(f"{self.path}: model input width {self.width} does not match the "
                             f"encoding's {self.encoding.width}")

    def predict(self, rows: list[list], batch_size: int = MAX_BATCH) -> np.ndarray:
        return self.predict_encoded_batched(self.encoding.encode(rows), batch_size)
