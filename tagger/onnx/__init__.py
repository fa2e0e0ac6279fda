"""ONNX export and a torch-free runtime: :mod:`.export` writes the directory, :mod:`.runtime` predicts
with onnxruntime, :mod:`.decode` holds the CRF's decoding algorithms in numpy."""
