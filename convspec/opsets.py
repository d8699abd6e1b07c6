"""ONNX opsets convspec writes: torch-free, so the CLI can show them without importing torch."""

DEFAULT_OPSET = 18  # what torch's exporter is built around; runtimes from 2023 on read it
MIN_OPSET = 14  # below this torch's exporter emits opset 18 and onnx's converter cannot step down (no adapters)
MAX_OPSET = 26  # the newest opset onnxruntime (1.31, 1.32) loads; newer ones fail there, so refuse them up front
