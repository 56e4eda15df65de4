"""ONNX export of a run's model, and a predictor that runs the export with ONNX Runtime.

`export_onnx` writes the checkpoint's model as ONNX with a dynamic batch axis; the class names,
preprocessing, temperature and source checkpoint (with its SHA-256) travel in the model's metadata, so
`OnnxPredictor` needs nothing but the .onnx file. With `int8_faces`, the export is quantised to int8
(static, per channel, QDQ) with activation ranges calibrated on those faces: about 3x faster on a CPU
(benchmarks/onnx_speed.py). Inputs still go through the one `to_model_input`, so ONNX and PyTorch see
identical tensors. ONNX Runtime is an optional extra (`pip install 'fer-studio[onnx]'`).

`BACKENDS` names how a checkpoint run is executed: `torch`, `onnx` (an fp32 export, made once and cached
under the cache folder) and `auto`, the fastest available: the run's own int8 export (`model.int8.onnx`,
written by `fer export RUN --int8`, shipped for the default model) when ONNX Runtime is installed and the
export matches the checkpoint, else the fp32 export, else PyTorch.
"""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from fer.runs.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, preprocessing_from_checkpoint
from fer.core.constants import Preprocessing
from fer.core.errors import UserError
from fer.core.files import atomic_write, cache_dir, sha256_of
from fer.inference.predictor import Predictor
from fer.data.preprocess import to_model_input

OPSET = 18
ONNX_INSTALL = "pip install 'fer-studio[onnx]'"
INPUT, OUTPUT = "faces", "logits"
INT8_FILE, FP32_FILE = "model.int8.onnx", "model.onnx"  # exports kept beside a run's best.pt
BACKENDS = ("auto", "torch", "onnx")
CALIBRATION_FACES = 512  # enough for stable int8 activation ranges; more changes accuracy by < 0.1 point
log = logging.getLogger(__name__)


class OnnxUnavailable(UserError):
    """onnx / onnxruntime are not installed."""


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise OnnxUnavailable(f"ONNX export and inference need {module}, an optional extra: {ONNX_INSTALL}") from None


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = OPSET,
                int8_faces: Optional[np.ndarray] = None) -> Path:
    """Export a checkpoint's model to `out` (dynamic batch, opset `opset`) with its metadata; int8 when
    calibration faces (uint8 N×48×48, never a test split) are given."""
    onnx = _require("onnx")
    _require("onnxscript")  # the exporter's dependency
    checkpoint, out = Path(checkpoint), Path(out)
    ckpt = load_checkpoint(checkpoint)
    model, spec = model_from_checkpoint(ckpt).eval(), preprocessing_from_checkpoint(ckpt)
    example = torch.zeros(2, spec.in_chans, spec.input_size, spec.input_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(model, (example,), input_names=[INPUT], output_names=[OUTPUT], opset_version=opset,
                                dynamic_shapes=({0: batch},),
                                dynamo=True, verbose=False)
    program.optimize()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        program.save(str(fp32))
        final = _quantize_int8(fp32, Path(tmp), int8_faces, spec) if int8_faces is not None else fp32
        proto = onnx.load(str(final))
    calibration = ckpt.get("calibration") if isinstance(ckpt.get("calibration"), dict) else {}
    meta = {"fer.class_names": json.dumps(list(ckpt["class_names"])),
            "fer.preprocessing": json.dumps(dict(ckpt["preprocessing"])),
            "fer.temperature": str(float(calibration.get("temperature", 1.0))),
            "fer.model": json.dumps({"name": ckpt["model"]["name"], "epoch": int(ckpt.get("epoch", 0))}),
            "fer.source": f"{checkpoint.resolve().parent.name}/{checkpoint.name}",
            "fer.source_sha256": sha256_of(checkpoint),
            "fer.opset": str(opset), "fer.precision": "int8" if int8_faces is not None else "fp32",
            **({"fer.int8_calibration_faces": str(len(int8_faces))} if int8_faces is not None else {})}
    onnx.helper.set_model_props(proto, meta)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda f: f.write(proto.SerializeToString()))
    return out


def _quantize_int8(fp32: Path, tmp: Path, faces: np.ndarray, spec: Preprocessing) -> Path:
    """Static int8 (QDQ, per-channel weights, uint8 activations) calibrated on `faces`."""
    _require("onnxruntime")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(faces) == 0:
        raise ValueError("int8 quantisation needs calibration faces")
    inputs = to_model_input(torch.from_numpy(np.ascontiguousarray(faces, dtype=np.uint8))[:, None], spec).numpy()

    class Faces(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{INPUT: inputs[i:i + 64]} for i in range(0, len(inputs), 64)])

        def get_next(self):
            return next(self.batches, None)

    prepared, int8 = tmp / "prepared.onnx", tmp / "int8.onnx"
    quant_pre_process(str(fp32), str(prepared))  # shape inference and folding, as ORT recommends before QDQ
    # Dynamic quantisation is about 5x slower than fp32 here (ConvInteger kernels; benchmarks/onnx_speed.py).
    quantize_static(str(prepared), str(int8), Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return int8


def calibration_faces(run_dir: Path, data_path: Optional[str] = None, n: int = CALIBRATION_FACES) -> np.ndarray:
    """Up to `n` faces of the run's validation split (seeded), for int8 activation ranges; never a test split."""
    from fer.data import load_run_data, split_index
    from fer.runs.store import read_config

    cfg = read_config(run_dir)
    data = load_run_data(cfg, data_path)
    index, _ = split_index(cfg, data, "val")
    chosen = np.random.default_rng(0).permutation(index)[:n]
    return data.images[np.sort(chosen)]


def export_into_run(run_dir: Path, checkpoint: str = "best", int8: bool = False,
                    data_path: Optional[str] = None) -> Path:
    """Export a run's checkpoint as `model.onnx` or `model.int8.onnx` in its folder (what `auto` picks up)."""
    from fer.runs.writer import save_model_export

    faces = calibration_faces(run_dir, data_path) if int8 else None
    with tempfile.TemporaryDirectory() as tmp:
        out = export_onnx(run_dir / f"{checkpoint}.pt", Path(tmp) / "model.onnx", int8_faces=faces)
        return save_model_export(run_dir, INT8_FILE if int8 else FP32_FILE, out.read_bytes())


def onnx_available() -> bool:
    """Whether ONNX Runtime is installed (the `onnx` extra)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cached_export(checkpoint: Path, digest: str) -> Path:
    """An fp32 ONNX export of `checkpoint` (whose SHA-256 is `digest`), made once under the cache folder."""
    out = cache_dir() / "onnx" / f"{digest[:24]}.onnx"
    if not out.is_file():
        export_onnx(checkpoint, out)
    return out


def checkpoint_predictor(checkpoint: Path, backend: str = "torch", **options: Any) -> Predictor:
    """The checkpoint's predictor on `backend` (auto: the fastest available; see the module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    checkpoint = Path(checkpoint)
    torch_options = {k: v for k, v in options.items() if k != "threads"}  # PyTorch keeps the caller's threads
    if backend == "torch" or (backend == "auto" and not onnx_available()):
        return Predictor.from_checkpoint(checkpoint, **torch_options)
    onnx_options = {k: v for k, v in options.items() if k in ("tta", "batch_size", "threads")}
    onnx_options["name"] = options.get("name") or checkpoint.parent.name
    digest = sha256_of(checkpoint)
    if backend == "auto" and checkpoint.name == "best.pt":
        for candidate in (checkpoint.parent / INT8_FILE, checkpoint.parent / FP32_FILE):
            if not candidate.is_file():
                continue
            try:
                predictor = OnnxPredictor(candidate, **onnx_options)
            except Exception:  # noqa: BLE001 - a damaged export: the next choice serves
                continue
            if predictor.metadata.get("fer.source_sha256") == digest:  # a retrained best.pt makes it stale
                return predictor
    if backend == "onnx":
        return OnnxPredictor(cached_export(checkpoint, digest), **onnx_options)
    try:
        return OnnxPredictor(cached_export(checkpoint, digest), **onnx_options)
    except (CheckpointError, OSError):
        raise  # a refused or unreadable checkpoint is the user's answer, not a reason to try PyTorch
    except Exception as e:  # noqa: BLE001 - a model the exporter cannot handle still predicts
        log.warning("ONNX export of %s failed (%s); using PyTorch", checkpoint, e)
        return Predictor.from_checkpoint(checkpoint, **torch_options)


class OnnxPredictor(Predictor):
    """A Predictor whose model is an ONNX export run by ONNX Runtime (CPU); same inputs, same TTA."""

    def __init__(self, path: str | Path, tta: str = "none", batch_size: int = 64, threads: int = 0,
                 name: str = "") -> None:
        ort = _require("onnxruntime")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.metadata: Dict[str, str] = self.session.get_modelmeta().custom_metadata_map
        meta = self.metadata
        super().__init__(torch.nn.Identity(), json.loads(meta["fer.class_names"]),
                         Preprocessing(**json.loads(meta["fer.preprocessing"])), name=name or Path(path).stem,
                         tta=tta, batch_size=batch_size,
                         provenance={"checkpoint": "onnx", "precision": meta.get("fer.precision", "fp32")},
                         temperature=float(meta.get("fer.temperature", 1.0)))
        self.model = None  # no PyTorch module: Grad-CAM needs the run's checkpoint
        self.backend = f"onnxruntime-{meta.get('fer.precision', 'fp32')}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs → logits through ONNX Runtime."""
        out = self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(out)
