"""ONNX -> OpenVINO IR (FP32, FP16 weights) and INT8 through NNCF post-training quantisation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeface.card import RT_INFO_CARD, ModelCard
from edgeface.convert.heads import openvino_head_nodes

if TYPE_CHECKING:
    from edgeface.convert.pipeline import BuildJob

NNCF_RANGE_ESTIMATORS = {"minmax": "MINMAX", "percentile": "MEAN_QUANTILE", "entropy": "HISTOGRAM"}


def _read_onnx(onnx_path: str | Path, card: ModelCard):
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    model.set_rt_info(card.to_json(), RT_INFO_CARD)
    return model


def convert_ir(onnx_path: str | Path, xml_path: str | Path, card: ModelCard, fp16: bool) -> dict:
    """Write ``xml_path`` (+ .bin); FP16 stores compressed weights, computation precision is the device's choice."""
    import openvino as ov

    ov.save_model(_read_onnx(onnx_path, card), str(xml_path), compress_to_fp16=fp16)
    return {"compress_to_fp16": fp16}


def quantize_ir(onnx_path: str | Path, xml_path: str | Path, card: ModelCard, calib_x: np.ndarray,
                method: str = "minmax") -> dict:
    """NNCF INT8 (symmetric preset) on the calibration inputs, heads in the ignored scope.

    NNCF has no entropy calibration: ``method`` maps to its range estimators (minmax -> MINMAX,
    percentile -> MEAN_QUANTILE, entropy -> HISTOGRAM).
    """
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    nncf.set_log_level(logging.ERROR)
    model = _read_onnx(onnx_path, card)
    ignored = openvino_head_nodes(model)
    estimator = getattr(RangeEstimatorParametersSet, NNCF_RANGE_ESTIMATORS[method])
    dataset = nncf.Dataset([calib_x[i: i + 1] for i in range(len(calib_x))])
    quantized = nncf.quantize(
        model, dataset, preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=len(calib_x),
        ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
        advanced_parameters=AdvancedQuantizationParameters(activations_range_estimator_params=estimator),
    )
    ov.save_model(quantized, str(xml_path), compress_to_fp16=False)
    return {"method": method, "nncf_range_estimator": NNCF_RANGE_ESTIMATORS[method], "fp32_nodes": ignored,
            "calibration_images": int(len(calib_x))}


def build_ir(job: BuildJob) -> dict:
    """The ``openvino`` / ``openvino-fp16`` targets' build function: the precision says whether to compress."""
    return convert_ir(job.src, job.out, job.card, fp16=job.target.precision == "fp16")


def build_int8(job: BuildJob) -> dict:
    """The ``openvino-int8`` target's build function."""
    return quantize_ir(job.src, job.out, job.card, job.calib_x, job.options.calib_method)
