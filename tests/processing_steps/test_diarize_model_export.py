"""The committed voice_encoder.onnx is what tools/export_speaker_model.py makes from the wheel.

Slow, and it needs torch, Resemblyzer and onnx, which no env of this project holds (the
diarize env is torch-free; the pyannote env has torch but not Resemblyzer). So it skips,
saying so, unless run by a maintainer in a throw-away env that has them::

    uv run --no-project --with-editable . --with resemblyzer==0.1.4 --with "setuptools<81" \\
        --with onnx --with onnxruntime --with torch --with pytest \\
        python -m pytest -p no:cacheprovider tests/processing_steps/test_diarize_model_export.py
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEEDED = ("torch", "resemblyzer", "onnx", "onnxruntime", "numpy")
MISSING = [name for name in NEEDED if importlib.util.find_spec(name) is None]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"re-exporting the voice encoder needs {', '.join(MISSING)} (no env of ours "
        "has torch with Resemblyzer; see this file's docstring for the command)",
    ),
]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "export_speaker_model", ROOT / "tools" / "export_speaker_model.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["export_speaker_model"] = module
    spec.loader.exec_module(module)
    return module


def test_a_fresh_export_matches_the_committed_model() -> None:
    import warnings

    import numpy as np
    import onnx
    import onnxruntime
    from onnx import numpy_helper

    tool = _tool()
    with warnings.catch_warnings():  # webrtcvad's pkg_resources notice, not ours
        warnings.simplefilter("ignore")
        fresh = tool.build_model(tool.load_state(tool.weights_path()))
    committed = onnx.load(str(tool.MODEL))
    # the same weights, to the bit, under the same names
    ours = {t.name: numpy_helper.to_array(t) for t in committed.graph.initializer}
    theirs = {t.name: numpy_helper.to_array(t) for t in fresh.graph.initializer}
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)
    # and the same numbers out of both, and out of Resemblyzer's torch model
    mels = np.random.default_rng(1).random((4, 160, 40), dtype=np.float32)
    run = [
        onnxruntime.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            ["embeds"], {"mels": mels}
        )[0]
        for m in (committed, fresh)
    ]
    np.testing.assert_allclose(run[0], run[1], atol=1e-6)
    assert np.min(np.sum(run[0] * tool.torch_embeds(mels), axis=1)) >= 0.99999
    assert fresh.SerializeToString() == tool.MODEL.read_bytes()
