"""Which graph nodes form the output heads that stay in FP32 (softmax, expectation, sigmoid, landmarks).

The same rule serves the ONNX FP16 converter's block list, ONNX Runtime's ``nodes_to_exclude`` and NNCF's
ignored scope: every Softmax / Sigmoid and what follows it, plus what feeds them back to the trunk's last
pooling: linear layers, shape-only ops (Flatten, Concat, Gather, ...) and the global pooling.
"""

from __future__ import annotations

from dataclasses import dataclass

HEAD_OPS = {"softmax", "sigmoid"}
LINEAR_OPS = {"gemm", "matmul", "add"}  # MatMul + Add is a Linear in OpenVINO / unfused graphs
PASS_THROUGH_OPS = {"flatten", "reshape", "concat", "gather", "squeeze", "unsqueeze", "cast", "convert", "identity"}
# Between the trunk and the linear layers: quantising the pooled features would feed INT8 error straight
# into the FP32 head, so these stay FP32 as well.
FEATURE_OPS = {"globalaveragepool", "reducemean", "averagepool", "avgpool", "adaptiveavgpool"}


@dataclass(frozen=True)
class GraphNode:
    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def head_node_names(nodes: list[GraphNode]) -> list[str]:
    """Names of the head nodes in ``nodes`` (graph order kept)."""
    producer = {out: n for n in nodes for out in n.outputs}
    consumers: dict[str, list[GraphNode]] = {}
    for n in nodes:
        for i in n.inputs:
            consumers.setdefault(i, []).append(n)
    heads: set[str] = set()
    roots = [n for n in nodes if n.op_type.lower() in HEAD_OPS]
    stack = list(roots)
    while stack:  # downstream of every softmax / sigmoid
        node = stack.pop()
        if node.name in heads:
            continue
        heads.add(node.name)
        stack += [c for out in node.outputs for c in consumers.get(out, [])]
    for root in roots:  # upstream, to and including the linear layers feeding the heads
        stack = [producer[i] for i in root.inputs if i in producer]
        while stack:
            node = stack.pop()
            op = node.op_type.lower()
            if node.name in heads or op not in LINEAR_OPS | PASS_THROUGH_OPS | FEATURE_OPS:
                continue
            heads.add(node.name)
            stack += [producer[i] for i in node.inputs if i in producer]
    return [n.name for n in nodes if n.name in heads]


def onnx_nodes(model) -> list[GraphNode]:
    """An onnx.ModelProto's nodes as :class:`GraphNode` (nodes without a name get their first output's)."""
    return [GraphNode(n.name or n.output[0], n.op_type, tuple(n.input), tuple(n.output)) for n in model.graph.node]


def onnx_head_nodes(model) -> list[str]:
    return head_node_names(onnx_nodes(model))


def openvino_head_nodes(model) -> list[str]:
    """Friendly names of the head ops of an ``openvino.Model``."""
    nodes = []
    for op in model.get_ordered_ops():
        inputs = tuple(f"{i.get_source_output().get_node().get_friendly_name()}:{i.get_source_output().get_index()}"
                       for i in op.inputs())
        outputs = tuple(f"{op.get_friendly_name()}:{k}" for k in range(op.get_output_size()))
        nodes.append(GraphNode(op.get_friendly_name(), op.get_type_name(), inputs, outputs))
    return head_node_names(nodes)
