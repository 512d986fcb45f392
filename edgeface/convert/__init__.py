"""The convert stage: checkpoint -> ONNX (FP32 / FP16 / INT8 Q/DQ), OpenVINO IR, TensorRT engines + manifest.

Entry point for code: :func:`edgeface.convert.pipeline.convert_checkpoint`; for people: ``edgeface convert``.
"""
