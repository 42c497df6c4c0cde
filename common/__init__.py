"""Code both sides of the project share and neither owns.

- ``common.onnx_runtime`` (torch-free): how an ONNX Runtime session is made and fed. Serving,
  bundle assembly and the exporters' parity checks all go through it, so a model is checked the
  way it is served.
- ``common.torch_runtime`` (torch): device choice, DDP set-up, recipes, atomic checkpoints, ONNX
  export with its parity check; used by both trainers (``vision``, ``recsys``).
"""
