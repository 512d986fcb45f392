"""Decode edgeface outputs inside a DeepStream pipeline, with the same code as every other runtime.

nvinfer configured by ``edgeface export deepstream`` attaches each face's raw output tensors as
``NvDsInferTensorMeta`` (one per object, batch axis stripped). The numpy part here turns those per-object
layers into the batch-of-one outputs :func:`edgeface.decode.decode` expects; only :func:`layer_arrays` and
:func:`make_probe` touch ``pyds`` (imported when called), so the decoding is testable without DeepStream.
:func:`box_crop` reproduces what nvinfer feeds a secondary model (the detector box, stretched, no
alignment), so its accuracy cost can be measured off the device.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np

from edgeface.card import (
    OUTPUT_ATTRIBUTES,
    OUTPUT_EXPECTATION,
    OUTPUT_LANDMARKS,
    OUTPUT_PROBS,
    ModelCard,
)
from edgeface.decode import decode
from edgeface.preprocess import PreprocessSpec

# NvDsInferDataType: FLOAT, HALF, INT8, INT32
DEEPSTREAM_DTYPES = {0: np.float32, 1: np.float16, 2: np.int8, 3: np.int32}


def per_object_sizes(card: ModelCard) -> dict[str, int]:
    """Elements each output holds for one face (the layer's numElements in the tensor meta)."""
    sizes = {
        OUTPUT_PROBS: card.label_space.num_bins if card.label_space else 0,
        OUTPUT_EXPECTATION: 1,
        OUTPUT_ATTRIBUTES: len(card.attributes or []),
        OUTPUT_LANDMARKS: 2 * card.num_landmarks,
    }
    return {name: sizes[name] for name in card.outputs}


def object_outputs(card: ModelCard, layers: Iterable[tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-object layers (name, values) -> {output name: float32 array with a batch axis of 1}.

    Layers the card does not list are ignored; a missing output or a wrong element count raises
    ValueError, since decoding it would silently give wrong ages or attributes.
    """
    by_name = {name: np.asarray(values) for name, values in layers}
    outputs = {}
    for name, size in per_object_sizes(card).items():
        if name not in by_name:
            raise ValueError(f"output layer {name!r} missing from the tensor meta (got {', '.join(by_name)})")
        values = by_name[name].astype(np.float32).reshape(-1)
        if values.size != size:
            raise ValueError(f"output layer {name!r} holds {values.size} values, the card expects {size}")
        outputs[name] = values.reshape(1) if name == OUTPUT_EXPECTATION else values.reshape(1, size)
    return outputs


def decode_object(card: ModelCard, layers: Iterable[tuple[str, np.ndarray]]) -> dict:
    """One face's result (age / attractiveness with std, or attributes, decisions and landmarks)."""
    return decode(card, object_outputs(card, layers))[0]


def box_crop(image_bgr: np.ndarray, box: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """What nvinfer gives a secondary model: the detector box (x, y, w, h) clipped to the frame and
    stretched bilinearly to the input size (``maintain-aspect-ratio=0``, ``scaling-filter=1``), no alignment."""
    h, w = image_bgr.shape[:2]
    x, y, bw, bh = (float(v) for v in box)
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(w, int(round(x + bw))), min(h, int(round(y + bh)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"box {list(box)} lies outside the {w}x{h} frame")
    crop = cv2.resize(image_bgr[y0:y1, x0:x1], (spec.input_size, spec.input_size), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB) if spec.color == "RGB" else crop


def load_card(card: ModelCard | str | Path) -> ModelCard:
    """A card object, or the ``card.json`` that ``edgeface export deepstream`` writes."""
    return card if isinstance(card, ModelCard) else ModelCard.from_json(Path(card).read_text())


def layer_arrays(pyds, tensor_meta) -> list[tuple[str, np.ndarray]]:
    """(layer name, copied values) for every output layer of one NvDsInferTensorMeta (host buffers)."""
    layers = []
    for i in range(int(tensor_meta.num_output_layers)):
        layer = pyds.get_nvds_LayerInfo(tensor_meta, i)
        if getattr(layer, "isInput", False):
            continue
        dtype = DEEPSTREAM_DTYPES[int(layer.dataType)]
        count = int(layer.inferDims.numElements)
        pointer = ctypes.cast(pyds.get_ptr(layer.buffer), ctypes.POINTER(ctypes.c_byte))
        raw = np.ctypeslib.as_array(pointer, shape=(count * np.dtype(dtype).itemsize,))
        # Copy: nvinfer recycles the buffer as soon as the probe returns.
        layers.append((str(layer.layerName), raw.view(dtype).copy()))
    return layers


def _walk(node, cast):
    while node is not None:
        yield cast(node.data)
        try:
            node = node.next
        except StopIteration:
            break


def make_probe(card: ModelCard | str | Path, gie_unique_id: int,
               on_result: Callable[[int, int, dict], None] | None = None) -> Callable:
    """A GStreamer buffer probe for the secondary GIE's source pad.

    For every face object carrying this GIE's tensor meta it decodes the result, writes a short label
    into the object's display text and calls ``on_result(frame_number, object_id, result)``.
    """
    card = load_card(card)

    def probe(pad, info, user_data=None):
        import pyds
        from gi.repository import Gst

        buffer = info.get_buffer()
        batch_meta = pyds.gst_buffer_get_nvds_batch_meta(hash(buffer))
        for frame_meta in _walk(batch_meta.frame_meta_list, pyds.NvDsFrameMeta.cast):
            for obj_meta in _walk(frame_meta.obj_meta_list, pyds.NvDsObjectMeta.cast):
                for user_meta in _walk(obj_meta.obj_user_meta_list, pyds.NvDsUserMeta.cast):
                    if user_meta.base_meta.meta_type != pyds.NvDsMetaType.NVDSINFER_TENSOR_OUTPUT_META:
                        continue
                    tensor_meta = pyds.NvDsInferTensorMeta.cast(user_meta.user_meta_data)
                    if tensor_meta.unique_id != gie_unique_id:
                        continue
                    result = decode_object(card, layer_arrays(pyds, tensor_meta))
                    obj_meta.text_params.display_text = result_label(card, result)
                    if on_result is not None:
                        on_result(int(frame_meta.frame_num), int(obj_meta.object_id), result)
        return Gst.PadProbeReturn.OK

    return probe


def result_label(card: ModelCard, result: dict) -> str:
    """A short on-screen label: "age 31.2" or the attributes decided true."""
    if card.task == "attributes":
        return ", ".join(name for name, on in result["decisions"].items() if on)
    return f"{card.task} {result[card.task]:.1f}"
