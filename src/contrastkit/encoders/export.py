"""Export a saved model to ONNX (and int8) through sentence-transformers' own ONNX backend.

:func:`export_onnx` loads a sentence-transformers folder (one contrastkit
saves, e.g. a run's ``final/``) with ``SentenceTransformer(folder,
backend="onnx")``, which converts the transformer with Optimum, and writes
the graph as ``onnx/model.onnx``; with ``int8`` it also runs
sentence-transformers' ``export_dynamic_quantized_onnx_model`` (dynamic
int8 quantization, no calibration data) for the given CPU instruction set,
which writes ``onnx/model_<q>int8_<config>.onnx``. The result is the model
folder plus its ``onnx/`` subfolder, so the same folder serves both backends::

    contrastkit export runs/quickstart/final --onnx --int8

    from sentence_transformers import SentenceTransformer
    fp32 = SentenceTransformer("runs/quickstart/final", backend="onnx")
    int8 = SentenceTransformer(
        "runs/quickstart/final", backend="onnx", model_kwargs={"file_name": "onnx/model_quint8_avx2.onnx"}
    )

Tokenization, pooling, normalisation, ``max_seq_length`` and prompts stay
those of the folder: only the transformer runs in ONNX Runtime.

It needs the ``export`` extra (``pip install 'contrastkit[export]'``:
``optimum-onnx[onnxruntime]``, which pulls ``optimum``, ``onnx`` and
``onnxruntime``; optimum-onnx 0.1 requires ``transformers<4.58``, so pip then
picks sentence-transformers 5). Without it, :func:`export_unavailable` says
why and :func:`export_onnx` raises :class:`ExportError`. The export is
written to a temporary folder and moved into place at the end: an existing
``onnx/`` is replaced only by a complete one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from contrastkit.errors import ContrastkitError

QuantizationConfig = Literal["arm64", "avx2", "avx512", "avx512_vnni"]
QUANTIZATION_CONFIGS: tuple[QuantizationConfig, ...] = ("arm64", "avx2", "avx512", "avx512_vnni")
ONNX_DIR = "onnx"
INSTALL_HINT = "install the export extra: pip install 'contrastkit[export]'"


class ExportError(ContrastkitError, ValueError):
    """The model cannot be exported (not a text model, the extra missing, a bad option); the message says why."""


def export_unavailable() -> str | None:
    """Why sentence-transformers' ONNX backend cannot run here (the import error), or None when it can."""
    try:
        import onnxruntime  # noqa: F401
        from optimum.onnxruntime import ORTModelForFeatureExtraction, ORTQuantizer  # noqa: F401
    except Exception as err:  # ImportError, or an optimum built for another transformers release
        return f"{type(err).__name__}: {err}"
    return None


def _check_text_model(folder: Path) -> None:
    """A sentence-transformers folder whose first module is a Transformer (what the ONNX backend converts)."""
    from contrastkit.encoders.io import check_remote_code, read_st_folder

    st = read_st_folder(folder)
    if st is None:
        raise ExportError(f"{folder}: no modules.json (export a sentence-transformers folder, e.g. a run's final/)")
    if st.modules[0].kind != "Transformer":
        raise ExportError(
            f"{folder / 'modules.json'}: the first module is {st.modules[0].kind}; the ONNX backend converts a "
            "Transformer module (static embeddings need no export)"
        )
    check_remote_code(st.modules[0].folder, trust_remote_code=False)  # the folder's own code never runs


def export_onnx(
    folder: str | Path,
    out: str | Path | None = None,
    *,
    int8: bool = False,
    quantization: QuantizationConfig = "avx2",
) -> list[Path]:
    """Write ``onnx/model.onnx`` (and with ``int8`` the quantized graph) for the model in ``folder``.

    Args:
        folder: a sentence-transformers folder with a Transformer module, or
            the alias ``all-MiniLM-L6-v2`` (then ``out`` is required).
        out: where the exported model goes: None adds ``onnx/`` to ``folder``
            itself; another path gets a copy of ``folder`` plus ``onnx/``
            (replaced if it exists).
        int8: also write sentence-transformers' dynamic int8 quantization.
        quantization: its configuration (the CPU instruction set it targets).

    Returns:
        The ``.onnx`` files written, under the output folder.

    Raises:
        ExportError: the extra is missing, the folder is not a text model, or
            ``quantization`` is unknown; nothing is written then.
    """
    from contrastkit.encoders.auto import resolve_model_path
    from contrastkit.encoders.io import save_atomically

    if quantization not in QUANTIZATION_CONFIGS:
        raise ExportError(f"quantization {quantization!r} is not one of {', '.join(QUANTIZATION_CONFIGS)}")
    source = resolve_model_path(folder)
    if out is None and source != Path(folder):
        raise ExportError(f"{folder} is an installed package's model: pass an output folder")
    _check_text_model(source)
    reason = export_unavailable()
    if reason is not None:
        raise ExportError(f"sentence-transformers' ONNX backend is not usable here ({reason}); {INSTALL_HINT}")
    target = Path(out).absolute() if out is not None else source.absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.onnx-", dir=target.parent) as tmp:
        graphs = _convert(source, Path(tmp) / "st", int8=int8, quantization=quantization)
        if target == source.absolute():
            _replace_dir(graphs, target / ONNX_DIR)
        else:

            def write(dest: Path) -> None:
                shutil.copytree(source, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(ONNX_DIR))
                shutil.copytree(graphs, dest / ONNX_DIR)

            save_atomically(target, write)
    return sorted((target / ONNX_DIR).glob("*.onnx"))


def _convert(source: Path, work: Path, *, int8: bool, quantization: QuantizationConfig) -> Path:
    """Run the ONNX backend (and the quantizer) on ``source``; returns the folder holding the ``.onnx`` files."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    model = SentenceTransformer(
        str(source), backend="onnx", device="cpu", local_files_only=True, trust_remote_code=False
    )
    model.save_pretrained(str(work))
    if int8:
        export_dynamic_quantized_onnx_model(model, quantization, str(work))
    return work / ONNX_DIR


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing ``target`` is renamed aside first and removed after."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    shutil.move(str(new), str(target))
    shutil.rmtree(old, ignore_errors=True)
